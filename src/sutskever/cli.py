"""The `sutskever` command: list | data | run | eval | sample | reproduce | report | scaling.

Bad input is one line on stderr and exit status 2; Ctrl-C during training saves a checkpoint and
exits with status 130 (`--resume` continues).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sutskever import recipes
from sutskever.errors import UserError

console = Console()
err_console = Console(stderr=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, instead of usage + message
        raise UserError(f"{message}; see `{self.prog} --help`")


def _device(name: str) -> Any:
    from sutskever.environment import pick_device

    return pick_device(name)


# ---- list --------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> None:
    from sutskever.reproduce import load_claim_status

    table = Table(title="sutskever recipes")
    for col in ("recipe", "paper", "presets", "data", "claims"):
        table.add_column(col, overflow="fold")
    for r in recipes.all():
        status = load_claim_status(Path(args.out), r)
        claims = f"{len(r.claims)} claims; " + (
            ", ".join(f"{h}/{t} hold ({s})" for s, (h, t) in status.items()) or "not reproduced "
            "yet")
        table.add_row(r.name, f"{r.title} ({r.authors.split(',')[0].split()[-1]} et al. "
                      f"{r.year}{_arxiv(r)})", ", ".join(r.presets()), r.data_note, claims)
    console.print(table)


def _arxiv(recipe: Any) -> str:
    return f", arXiv:{recipe.arxiv}" if recipe.arxiv else ""


# ---- data --------------------------------------------------------------------------------------
def cmd_data_list(args: argparse.Namespace) -> None:
    from sutskever.data.genres import datasets as genre_datasets
    from sutskever.data.images import datasets as image_datasets
    from sutskever.data.text import datasets
    from sutskever.data.tokens import datasets as token_datasets

    table = Table(title="data sets")
    for col in ("name", "description", "present", "location / how to get it"):
        table.add_column(col, overflow="fold")
    table.add_row("point-sets", "Pointer Networks tasks: uniform points, exact solver targets",
                  "generated", "built on first use, cached under $SUTSKEVER_CACHE")
    for d in [*datasets(), *token_datasets(), *image_datasets(), *genre_datasets()]:
        table.add_row(str(d["name"]), str(d["description"]), "yes" if d["present"] else "no",
                      str(d["location"]))
    console.print(table)


def cmd_data_prepare(args: argparse.Namespace) -> None:
    import json

    from sutskever.data.tokens import prepare

    directory = prepare(args.corpus, args.tokenizer, args.path, log=console.print)
    meta_file = directory / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {"splits": {}}
    counts = ", ".join(f"{split} {info['tokens']:,} tokens" for split, info in
                       meta["splits"].items())
    console.print(f"{args.corpus}/{args.tokenizer}: {directory} ({counts or 'as given'})")


# ---- run ---------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> None:
    from sutskever.train import RunSpec, train
    from sutskever.train.distributed import init_from_env, ranks

    recipe = recipes.get(args.recipe)
    cfg = recipe.configure(args.preset, args.set)
    out = Path(args.out) if args.out else Path("runs") / recipe.name / f"{args.preset}-s{args.seed}"
    spec = RunSpec(recipe.name, args.preset, _overrides_dict(args.set), args.seed)
    device = init_from_env(args.device)  # under torchrun: join the process group (DDP)
    start = time.perf_counter()
    # a recipe may train a run itself (GPipe: one process per pipeline stage)
    summary = None if args.resume or ranks().world > 1 else recipe.train_pipelined(cfg, out, spec)
    if summary is None:
        summary = train(recipe, cfg, out, spec, device=device, resume=args.resume,
                        console=err_console)
    if ranks().main:
        console.print(f"run finished in {time.perf_counter() - start:.0f} s: {out}")
        _print_metrics(summary["metrics"], title=f"{recipe.name} / {args.preset} (test)")


def _overrides_dict(overrides: Sequence[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides if "=" in o)


# ---- eval --------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> None:
    from sutskever.train import evaluate_run
    from sutskever.train.checkpoint import atomic_write_json
    from sutskever.train.runs import load_model

    device = _device(args.device)
    loaded = [load_model(Path(d), args.set, device) for d in args.run_dirs]
    recipe, cfg, record, model = loaded[0]
    data = recipe.build_data(cfg, record.get("seed", 0))
    if args.split not in data.splits:
        raise UserError(f"unknown split {args.split!r}; choose one of: {', '.join(data.splits)}")
    if len(loaded) == 1:
        run_dir = Path(args.run_dirs[0])
        result = evaluate_run(recipe, model, cfg, data, run_dir, args.split)
        atomic_write_json(run_dir / f"eval-{args.split}.json", result)
        _print_metrics(result["metrics"], title=f"{run_dir} ({args.split})")
        return
    for d, (r, c, _, _) in zip(args.run_dirs[1:], loaded[1:], strict=True):
        if r is not recipe or c.data != cfg.data:
            raise UserError(f"{d} is not a run of the same recipe and data as "
                            f"{args.run_dirs[0]}; an ensemble needs both")
    metrics = recipe.evaluate_ensemble([m for *_, m in loaded], cfg, data, args.split)
    _print_metrics(metrics, title=f"ensemble of {len(loaded)} runs ({args.split})")


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from sutskever.train.runs import load_model

    if args.temperature <= 0:
        raise UserError("--temperature must be positive")
    if args.top_k is not None and args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    recipe, cfg, record, model = load_model(Path(args.run_dir), [], _device(args.device))
    data = recipe.build_data(cfg, record.get("seed", 0))
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    print(recipe.sample(model, cfg, data, args.prompt, args.length, args.temperature,
                        generator, top_k=args.top_k))


def cmd_translate(args: argparse.Namespace) -> None:
    from sutskever.train.runs import load_model

    device = _device(args.device)
    loaded = [load_model(Path(d), [], device) for d in args.run_dirs]
    recipe, cfg, record, _ = loaded[0]
    if not hasattr(recipe, "translate"):
        raise UserError(f"{args.run_dirs[0]} is a {recipe.name} run; translate needs a seq2seq "
                        f"run")
    if any(r is not recipe or c.data != cfg.data for r, c, _, _ in loaded[1:]):
        raise UserError("an ensemble needs runs of the same recipe and data")
    if args.beam < 1:
        raise UserError("--beam must be at least 1")
    data = recipe.build_data(cfg, record.get("seed", 0))
    print(recipe.translate([m for *_, m in loaded], cfg, data, [args.sentence], args.beam)[0])


# ---- reproduce ---------------------------------------------------------------------------------
def cmd_reproduce(args: argparse.Namespace) -> None:
    from sutskever.environment import environment
    from sutskever.report.plots import plot_claims
    from sutskever.report.results import update_results
    from sutskever.reproduce import reproduce

    if args.all == bool(args.recipes):
        raise UserError("name the recipes to reproduce or pass --all (not both)")
    chosen = recipes.all() if args.all else [recipes.get(name) for name in args.recipes]
    device = _device(args.device)
    out = Path(args.out)
    for recipe in chosen:
        recipe.scale(args.preset)  # a wrong scale name fails before any training
    for recipe in chosen:
        console.rule(f"{recipe.name}: {recipe.title} ({recipe.year})")
        start = time.perf_counter()
        only = args.claims.split(",") if args.claims else None
        results = reproduce(recipe, args.preset, args.seeds, out, device, err_console, only,
                            args.jobs)
        minutes = (time.perf_counter() - start) / 60
        _print_claims(recipe, results, args.preset)
        plot_claims(out / recipe.name / f"claims-{args.preset}.png",
                    [r.__dict__ for r in results if r.holds is not None])
        command = (f"sutskever reproduce {recipe.name} --preset {args.preset} "
                   f"--seeds {args.seeds}")
        if args.claims:
            command += f" --claims {args.claims}"
        if args.jobs > 1:
            command += f" --jobs {args.jobs}"
        section = _results_section(recipe, results, args.preset, args.seeds, command,
                                   environment(device), out, only)
        if args.results:
            update_results(args.results, recipe.name, section)
        ran = [r for r in results if r.holds is not None]
        console.print(f"{recipe.name}: {sum(bool(r.holds) for r in ran)}/{len(ran)} claims "
                      f"hold at preset {args.preset} ({minutes:.1f} min); runs in "
                      f"{out / recipe.name}")


def _print_claims(recipe: Any, results: Sequence[Any], scale: str) -> None:
    table = Table(title=f"{recipe.title} ({recipe.year}): paper vs ours, preset {scale}")
    for col in ("claim", "paper", "ours", "criterion", "status", "setting differs"):
        table.add_column(col, overflow="fold")
    for r in results:
        status = {True: "[green]reproduced", False: "[red]not reproduced",
                  None: "[yellow]not run"}[r.holds]
        table.add_row(r.text, r.paper, r.ours, r.criterion, status, r.setting)
    console.print(table)


def _results_section(recipe: Any, results: Sequence[Any], scale: str, seeds: int, command: str,
                     env: dict, out: Path, only: Sequence[str] | None) -> str:
    from sutskever.report.results import markdown_table
    from sutskever.reproduce import chosen_claims, run_dir_for, seeds_for

    runs, total_train_s, undefined = [], 0.0, False
    for arm in recipe.claim_arms(scale, chosen_claims(recipe, scale, only)):
        summaries = [json.loads((run_dir_for(out, recipe, scale, arm, seed) / "summary.json")
                                .read_text()) for seed in range(seeds_for(recipe, arm, seeds))]
        metrics = {k: _mean([s["metrics"][k] for s in summaries]) for k in summaries[0]["metrics"]}
        train_s = [s["train_time_s"] for s in summaries]
        rate = _mean([s["samples_per_s"] for s in summaries])
        mfu = _mean([s.get("mfu") for s in summaries])
        total_train_s += sum(train_s)
        undefined = undefined or None in metrics.values()
        runs.append((arm, len(summaries), summaries[0]["steps"], f"{_mean(train_s):.0f}",
                     f"{rate:,.0f}", "-" if mfu is None else f"{100 * mfu:.0f}%",
                     ", ".join(f"{k} {_num(v)}" for k, v in metrics.items())))
    status = {True: "reproduced", False: "**not reproduced**", None: "not run"}
    claims = [(r.text, r.paper, r.ours, r.criterion, status[r.holds], r.setting)
              for r in results]
    return "\n".join([
        f"## {recipe.name}: {recipe.title} ({recipe.authors}, {recipe.year}{_arxiv(recipe)})",
        "",
        f"Command: `{command}`  ",
        f"Hardware: {env['hardware']}; torch {env['torch']}; commit {env['commit']}; "
        f"{time.strftime('%Y-%m-%d')}  ",
        f"Training time of the runs below: {total_train_s / 60:.1f} min in all", "",
        f"Preset `{scale}`: {recipe.scale_notes.get(scale, 'see the recipe module')}.", "",
        markdown_table(["claim", "paper", "ours", "criterion", "status", "setting differs"],
                       claims), "",
        "Runs (final evaluation, mean over seeds; MFU: model FLOP/s over the device's measured "
        "matmul peak" + ("; FAIL: a metric with no value for these runs, e.g. the Pointer "
                         "Networks' area coverage when over 1% of outputs are not simple "
                         "polygons, or a share of a gain that is not positive" if undefined
                         else "") + "):", "",
        markdown_table(["arm", "seeds", "steps", "train s", "samples/s", "MFU", "metrics"],
                       runs),
    ]) + "\n"


def _mean(values: list[float | None]) -> float | None:
    return None if None in values else sum(values) / len(values)


def _num(v: float | None) -> str:
    # undefined (null) marks a metric the paper calls FAIL, e.g. area coverage
    return "FAIL" if v is None or v != v else f"{v:.4g}"


# ---- report ------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> None:
    columns, summaries = [], []
    for d in args.run_dirs:
        path = Path(d) / "summary.json"
        try:
            summaries.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise UserError(f"{d} has no summary.json; is it a finished run directory?") from None
        except json.JSONDecodeError:
            raise UserError(f"{path} is corrupt; run `sutskever eval {d}` to rebuild it"
                            ) from None
        columns.append(str(d))
    keys = list(dict.fromkeys(k for s in summaries for k in s["metrics"]))
    table = Table(title="runs")
    table.add_column("metric")
    for c in columns:
        table.add_column(c, overflow="fold")
    for extra in ("steps", "train_time_s", "samples_per_s"):
        table.add_row(extra, *[_num(s.get(extra)) for s in summaries])
    for k in keys:
        table.add_row(k, *[_num(s["metrics"][k]) if k in s["metrics"] else "-"
                           for s in summaries])
    console.print(table)


def _print_metrics(metrics: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, _num(v))
    console.print(table)


# ---- entry point -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sutskever", description="Ilya Sutskever's landmark systems as recipes, "
                "reproduced against the papers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="recipes, papers, presets, data and claim status")
    s.add_argument("--out", default="runs", help="where reproduce wrote its runs")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("data", help="the data sets: what is present and how to get the rest")
    data_sub = s.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    data_sub.add_parser("list", help="list the data sets").set_defaults(func=cmd_data_list)
    s = data_sub.add_parser("prepare", help="tokenise a GPT corpus into memory-mapped token "
                            "files (done on first use otherwise)")
    s.add_argument("corpus", help="shakespeare | web | brown | tinystories | text | ...")
    s.add_argument("--tokenizer", default="char", help="char | gpt2")
    s.add_argument("--path", help="the corpus's files, for corpora that do not ship")
    s.set_defaults(func=cmd_data_prepare)

    s = sub.add_parser("run", help="train one preset of a recipe into a run directory")
    s.add_argument("recipe")
    s.add_argument("--preset", default="quick")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=0.5 (repeatable)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    s.add_argument("--out", help="run directory (default runs/RECIPE/PRESET-sSEED)")
    s.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("eval", help="reload a run's checkpoint and evaluate it (several run "
                       "directories: their ensemble)")
    s.add_argument("run_dirs", nargs="+", metavar="run_dir")
    s.add_argument("--split", default="test")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluation-time override, e.g. --set eval.beam=1")
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="generate text from a trained language model")
    s.add_argument("run_dir")
    s.add_argument("--prompt", default="", help="text to start from")
    s.add_argument("--length", "--words", type=int, default=200,
                   help="tokens (words, characters or BPE tokens) to generate")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int, help="sample only from the k likeliest tokens")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("translate", help="translate sentences with seq2seq runs (several run "
                       "directories: their ensemble)")
    s.add_argument("run_dirs", nargs="+", metavar="run_dir")
    s.add_argument("sentence", help="the source sentence")
    s.add_argument("--beam", type=int, default=12)
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_translate)

    s = sub.add_parser("reproduce", help="run what the claims need; print paper vs ours")
    s.add_argument("recipes", nargs="*")
    s.add_argument("--all", action="store_true", help="every registered recipe")
    s.add_argument("--preset", default="quick", help="scale: smoke | quick | paper")
    s.add_argument("--seeds", type=int, default=3, help="seeds per effect claim")
    s.add_argument("--claims", help="comma-separated claim ids to run (default: all)")
    s.add_argument("--jobs", type=int, default=1, help="runs trained at once, in worker "
                   "processes sharing the CPU threads (default 1)")
    s.add_argument("--out", default="runs")
    s.add_argument("--results", default="RESULTS.md", help="file to write (empty: none)")
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_reproduce)

    s = sub.add_parser("report", help="compare finished run directories")
    s.add_argument("run_dirs", nargs="+")
    s.set_defaults(func=cmd_report)

    from sutskever.scaling.cli import add_scaling_parser

    add_scaling_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from sutskever.train import Interrupted

    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "seeds", 1) < 1:
            raise UserError("--seeds must be at least 1")
        if getattr(args, "jobs", 1) < 1:
            raise UserError("--jobs must be at least 1")
        args.func(args)
    except UserError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except Interrupted as e:
        err_console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        return 130
    except KeyboardInterrupt:  # outside training (evaluation, data generation): nothing to save
        err_console.print("interrupted", markup=False)
        return 130
    finally:
        from sutskever.train.distributed import shutdown

        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
