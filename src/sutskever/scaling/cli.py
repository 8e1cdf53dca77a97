"""`sutskever scaling fit | plan | sweep`: fit scaling laws to runs, plan a compute budget, and
train our own GPT sweep to fit.

The fitters are those of Kaplan et al. 2020 (arXiv:2001.08361), Hoffmann et al. 2022
(arXiv:2203.15556, Approaches 1-3, Approach 3 by the procedure of Besiroglu et al. 2024,
arXiv:2404.10102) and Muennighoff et al. 2023 (arXiv:2305.16264, repeated data); see the modules
of `sutskever.scaling`. Handlers take the parsed arguments and raise UserError on bad input.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sutskever.errors import UserError
from sutskever.scaling.chinchilla import (
    Approach1Fit,
    Approach2Fit,
    Approach3Fit,
    fit_approach1,
    fit_approach2,
    fit_approach3,
)
from sutskever.scaling.data_constrained import R_STAR_D, fit_r_star
from sutskever.scaling.fitfile import PlanModel, fit_record, read_plan_model
from sutskever.scaling.kaplan import KaplanFit, fit_kaplan
from sutskever.scaling.plan import Plan, plan_compute, plan_from_frontier
from sutskever.scaling.runs import Runs, chinchilla_runs, read_runs
from sutskever.scaling.stats import Estimate, format_estimate

__all__ = ["add_scaling_parser", "cmd_fit", "cmd_plan", "cmd_sweep"]

BUILTIN = "chinchilla"  # RUNS value naming the shipped Hoffmann et al. / Epoch AI data
EPOCH_DROPPED = 5  # Epoch AI drop the 5 highest-loss runs of that data

_FIT_HELP = """\
RUNS.csv columns (names matched ignoring case, spaces, underscores): N (or params, parameters,
Model Size), D (or tokens) and/or C (or flops, Training FLOP), loss; optional run (run_id) and
step for training curves (Approach 1), U (unique_tokens) for --law data-constrained. Values must
be positive numbers. RUNS may be `chinchilla` for the shipped Hoffmann et al. 2022 Figure 4 data
(Epoch AI's extraction; the 5 highest losses dropped as Epoch AI did, so Approach 3 reproduces
their refit)."""


def add_scaling_parser(subparsers: Any) -> None:
    """Add `scaling fit`, `scaling plan` and `scaling sweep` to an argparse subparsers action."""
    scaling = subparsers.add_parser(
        "scaling", help="fit scaling laws to training runs and plan a compute budget",
        description="Scaling laws: Kaplan et al. 2020, Chinchilla (Hoffmann et al. 2022), "
                    "data-constrained (Muennighoff et al. 2023).")
    sub = scaling.add_subparsers(dest="scaling_command", required=True, metavar="{fit,plan,sweep}")

    fit = sub.add_parser("fit", help="fit a scaling law to a CSV of runs; prints parameters "
                         "with bootstrap intervals, writes fit.json and plots",
                         description=_FIT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("runs", metavar="RUNS.csv", help="CSV of runs, or `chinchilla`")
    fit.add_argument("--law", choices=("chinchilla", "kaplan", "data-constrained"),
                     default="chinchilla", help="which law (default chinchilla)")
    fit.add_argument("--approach", type=int, choices=(1, 2, 3), default=3,
                     help="Chinchilla approach: 1 envelope, 2 isoFLOP parabolas, 3 parametric "
                          "L = E + A/N^alpha + B/D^beta (default 3)")
    fit.add_argument("--bootstrap", type=int, default=200, metavar="N",
                     help="bootstrap replicates for the intervals (default 200; 0: none)")
    fit.add_argument("--confidence", type=float, default=0.95, help="interval level (0.95)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    fit.add_argument("--out", default="scaling-fit", metavar="DIR",
                     help="where fit.json and the plots go (default ./scaling-fit)")
    fit.add_argument("--drop-highest", type=int, default=None, metavar="K",
                     help="drop the K runs of highest loss first (default 5 for `chinchilla`, "
                          "else 0)")
    fit.add_argument("--budget", type=float, default=None, metavar="C",
                     help="FLOPs at which to report N_opt, D_opt, tokens per parameter "
                          "(default: the largest C in the runs)")
    fit.add_argument("--budget-tolerance", type=float, default=0.025, metavar="DECADES",
                     help="Approach 2: runs whose log10 C differ by less join one isoFLOP "
                          "budget (default 0.025)")
    fit.add_argument("--base-fit", default=None, metavar="FIT.json",
                     help="--law data-constrained: the Approach 3 fit on unique data")
    fit.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    fit.set_defaults(func=cmd_fit)

    plan = sub.add_parser("plan", help="N_opt, D_opt, tokens per parameter and predicted loss "
                          "for a FLOP budget (optionally with a unique-token limit)")
    plan.add_argument("--flops", type=float, required=True, metavar="C",
                      help="training compute in FLOPs (C = 6 N D), e.g. 1e21")
    plan.add_argument("--unique-tokens", type=float, default=None, metavar="U",
                      help="unique tokens available; adds the best (N, epochs) under repetition")
    plan.add_argument("--fit", default=None, metavar="FIT.json",
                      help="a fit.json from `scaling fit` (default: Approach 3 fitted now on the "
                           "shipped Chinchilla data, Epoch AI's procedure)")
    plan.add_argument("--r-star", type=float, default=R_STAR_D,
                      help=f"R*_D of the repeated-data law (default {R_STAR_D}, Muennighoff "
                           "et al.)")
    plan.add_argument("--bootstrap", type=int, default=100, metavar="N",
                      help="bootstrap replicates when fitting the default law (default 100)")
    plan.add_argument("--seed", type=int, default=0)
    plan.set_defaults(func=cmd_plan)

    sweep = sub.add_parser(
        "sweep", help="train the GPT sweep of the scaling-laws recipe (isoFLOP budgets x model "
        "sizes, and repeated-data runs) and write the runs CSV that `scaling fit` reads",
        description="Trains every run of the scaling-laws recipe's sweep at a preset; a finished "
                    "run is reused, an interrupted one resumes. Writes "
                    "OUT/scaling-laws/sweep-PRESET/runs.csv (the isoFLOP runs) and "
                    "repeated-runs.csv, in the columns run, N, D, C, U, loss.")
    sweep.add_argument("--preset", default="quick", help="smoke | quick | paper (default quick)")
    sweep.add_argument("--out", default="runs", help="where the run directories go (runs)")
    sweep.add_argument("--jobs", type=int, default=1,
                       help="runs trained at once, in worker processes (default 1)")
    sweep.add_argument("--no-repeated", action="store_true",
                       help="only the isoFLOP runs, not the repeated-data ones")
    sweep.add_argument("--device", default="auto")
    sweep.set_defaults(func=cmd_sweep)


# ---- fit ---------------------------------------------------------------------------------------
def _load_runs(name: str, drop_highest: int | None) -> tuple[Runs, int]:
    if name == BUILTIN and not Path(name).exists():
        k = EPOCH_DROPPED if drop_highest is None else drop_highest
        return chinchilla_runs(drop_highest=k), k
    k = drop_highest or 0
    return read_runs(name).drop_highest_losses(k), k


def _check_common(bootstrap: int, confidence: float = 0.95) -> None:
    if bootstrap < 0:
        raise UserError(f"--bootstrap {bootstrap} must be 0 or a positive number of replicates")
    if not 0 < confidence < 1:
        raise UserError(f"--confidence {confidence} must lie strictly between 0 and 1, e.g. 0.95")


def _estimates_table(title: str, estimates: dict[str, Estimate]) -> Table:
    conf = next((e.confidence for e in estimates.values() if e.confidence), None)
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column(f"{conf:.0%} interval" if conf else "interval", justify="right")
    for name, e in estimates.items():
        interval = "" if e.low is None else (f"[{format_estimate(Estimate(e.low))}, "
                                             f"{format_estimate(Estimate(e.high))}]")
        table.add_row(name, format_estimate(Estimate(e.value)), interval)
    return table


def cmd_fit(args: argparse.Namespace) -> None:
    """`scaling fit`: fit, print the table, write fit.json and the plots into --out."""
    from sutskever.train.checkpoint import atomic_write_json  # imports torch: only when used

    _check_common(args.bootstrap, args.confidence)
    if args.budget is not None and not args.budget > 0:
        raise UserError(f"--budget {args.budget} must be a positive number of FLOPs")
    runs, dropped = _load_runs(args.runs, args.drop_highest)
    console = Console()
    kw = {"bootstrap": args.bootstrap, "seed": args.seed, "confidence": args.confidence}
    start = time.perf_counter()
    fit: Any
    if args.law == "kaplan":
        fit = fit_kaplan(runs, **kw)
        title, ests = "Kaplan et al. 2020 power laws", fit.estimates()
    elif args.law == "data-constrained":
        if args.base_fit is None:
            raise UserError("--law data-constrained needs --base-fit FIT.json, an Approach 3 fit "
                            "on unique-data runs (`sutskever scaling fit RUNS.csv`)")
        base = read_plan_model(args.base_fit)
        if base.law is None:
            raise UserError(f"--base-fit {args.base_fit} is not an Approach 3 fit; fit one with "
                            "`sutskever scaling fit RUNS.csv --approach 3`")
        fit = fit_r_star(runs, base.law, **kw)
        title, ests = "Muennighoff et al. 2023 repeated-data decay", {"R*_D": fit.r_star}
    elif args.approach == 1:
        fit = fit_approach1(runs, **kw)
        title, ests = "Chinchilla Approach 1 (envelope)", fit.estimates(args.budget)
    elif args.approach == 2:
        fit = fit_approach2(runs, tolerance_decades=args.budget_tolerance, **kw)
        title, ests = "Chinchilla Approach 2 (isoFLOP parabolas)", fit.estimates(args.budget)
    else:
        fit = fit_approach3(runs, **kw)
        title, ests = "Chinchilla Approach 3 (parametric loss)", fit.estimates(args.budget)
    seconds = time.perf_counter() - start
    budget = args.budget
    if budget is None and isinstance(fit, (Approach1Fit, Approach2Fit, Approach3Fit)):
        budget = float(runs.c.max())
    where = f"; N_opt, D_opt, tokens per parameter at C = {budget:.3g} FLOPs" if budget else ""
    console.print(f"{title}: {runs.source}, {len(runs)} runs{where}", soft_wrap=True)
    console.print(_estimates_table(title, ests))
    _print_fit_notes(console, fit, dropped, seconds)

    out = Path(args.out)
    record = fit_record(fit, source=runs.source, points=len(runs), dropped=dropped,
                        seed=args.seed, budget=budget)
    atomic_write_json(out / "fit.json", record)
    paths = [out / "fit.json"]
    if not args.no_plots and not args.law == "data-constrained":
        from sutskever.scaling.plots import plot_fit  # matplotlib only when plotting

        paths += plot_fit(fit, out)
    console.print("wrote " + ", ".join(str(p) for p in paths))


def _print_fit_notes(console: Console, fit: Any, dropped: int, seconds: float) -> None:
    notes = []
    if dropped:
        notes.append(f"dropped the {dropped} runs of highest loss")
    if isinstance(fit, Approach3Fit):
        notes.append(f"{fit.starts} L-BFGS starts ({fit.starts_converged} converged, "
                     f"{fit.starts_at_optimum} at the best optimum) in {fit.seconds:.1f} s; "
                     f"Huber objective {fit.objective:.10g}")
    if isinstance(fit, Approach2Fit):
        notes.append(f"{len(fit.parabolas)} isoFLOP budgets used, {len(fit.skipped)} skipped")
        if fit.samples is not None:
            notes.append(f"{fit.replicates_used}/{len(fit.samples)} bootstrap replicates usable")
    if isinstance(fit, Approach1Fit):
        notes.append(f"{fit.flops.size} envelope points from "
                     f"{'training curves' if fit.from_curves else 'final losses (Pareto set)'}")
    if isinstance(fit, KaplanFit):
        notes.append(f"envelope points: L(N) {fit.n.x.size}, L(D) {fit.d.x.size}, "
                     f"L(C) {fit.c.x.size}")
    if getattr(fit, "at_bound", False):
        notes.append("R* sits on its search bound: the runs do not determine it")
    notes.append(f"total {seconds:.1f} s")
    console.print("; ".join(notes))


# ---- plan --------------------------------------------------------------------------------------
def _default_model(bootstrap: int, seed: int) -> PlanModel:
    fit = fit_approach3(chinchilla_runs(drop_highest=EPOCH_DROPPED), bootstrap=bootstrap,
                        seed=seed)
    return PlanModel(fit.law, fit.sample_law(), None, None, fit.confidence,
                     "Approach 3 on the shipped Chinchilla data (Epoch AI's procedure, "
                     f"{bootstrap} bootstrap replicates)")


def _plan_table(plan: Plan) -> Table:
    rows: dict[str, Estimate | str] = {
        "N_opt (parameters)": plan.n_opt, "D_opt (tokens)": plan.d_opt,
        "tokens per parameter": plan.tokens_per_parameter,
        "predicted loss": plan.loss if plan.loss is not None else "(no loss law in this fit)",
    }
    r = plan.repeated
    if r is not None:
        rows.update({
            "U (unique tokens)": Estimate(r.unique_tokens),
            "best N with U": Estimate(r.n), "its tokens D": Estimate(r.d),
            "epochs over U": Estimate(r.epochs),
            "effective tokens D'": Estimate(r.effective_tokens),
            "loss with U": r.loss, "loss cost vs unlimited data": r.cost,
            "loss of N_opt, D_opt repeating U": Estimate(r.loss_if_ignored),
        })
    conf = plan.n_opt.confidence
    table = Table(title=f"plan for C = {plan.flops:.3g} FLOPs")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column(f"{conf:.0%} interval" if conf else "interval", justify="right")
    for name, e in rows.items():
        if isinstance(e, str):
            table.add_row(name, e, "")
            continue
        interval = "" if e.low is None else (f"[{format_estimate(Estimate(e.low))}, "
                                             f"{format_estimate(Estimate(e.high))}]")
        table.add_row(name, format_estimate(Estimate(e.value)), interval)
    return table


def cmd_plan(args: argparse.Namespace) -> None:
    """`scaling plan`: the compute-optimal split of --flops, and the best run under a data limit."""
    _check_common(args.bootstrap)
    if not args.flops > 0:
        raise UserError(f"--flops {args.flops} must be a positive number of FLOPs such as 1e21")
    if args.unique_tokens is not None and not args.unique_tokens > 0:
        raise UserError(f"--unique-tokens {args.unique_tokens} must be a positive token count")
    if not args.r_star > 0:
        raise UserError(f"--r-star {args.r_star} must be positive (Muennighoff et al.: 15.39)")
    model = (read_plan_model(args.fit) if args.fit is not None
             else _default_model(args.bootstrap, args.seed))
    if model.law is not None:
        plan = plan_compute(model.law, args.flops, samples=model.law_samples,
                            unique_tokens=args.unique_tokens, r_star=args.r_star,
                            confidence=model.confidence)
    else:
        if args.unique_tokens is not None:
            raise UserError("--unique-tokens needs a loss law: pass an Approach 3 fit.json "
                            "(`sutskever scaling fit RUNS.csv --approach 3`)")
        assert model.frontier is not None
        plan = plan_from_frontier(model.frontier, args.flops, samples=model.frontier_samples,
                                  confidence=model.confidence)
    console = Console()
    console.print(f"law: {model.description}", soft_wrap=True)
    console.print(_plan_table(plan))


# ---- sweep -------------------------------------------------------------------------------------
def cmd_sweep(args: argparse.Namespace) -> None:
    from sutskever import recipes
    from sutskever.environment import pick_device
    from sutskever.recipes.scaling_laws import write_runs_csv
    from sutskever.reproduce import ensure_runs

    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs} must be at least 1")
    recipe = recipes.get("scaling-laws")
    recipe.scale(args.preset)
    claims = [c for c in recipe.claims if not (args.no_repeated and c.id == "repeated-data")]
    arms = recipe.claim_arms(args.preset, claims)
    out = Path(args.out)
    console = Console(stderr=True)
    done = ensure_runs(recipe, args.preset, [(arm, 0) for arm in arms], out,
                       pick_device(args.device), console, args.jobs)
    records = recipe.records(args.preset, {arm: [done[arm, 0]] for arm in arms})
    paths = write_runs_csv(out / recipe.name / f"sweep-{args.preset}", records)
    table = Table(title=f"scaling-laws sweep, preset {args.preset}")
    for col in ("run", "N", "D", "C", "U", "loss"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, r in records.items():
        table.add_row(name, *(f"{r[k]:.4g}" for k in ("N", "D", "C", "U", "loss")))
    Console().print(table)
    Console().print(f"wrote {', '.join(map(str, paths))}; fit the isoFLOP runs with "
                    f"`sutskever scaling fit {paths[0]} --approach 2`")
