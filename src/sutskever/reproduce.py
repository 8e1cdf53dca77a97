"""`sutskever reproduce`: run what a recipe's claims need and check each claim.

For every arm the claims name, train (or reuse, or resume) one run per seed at the chosen scale
under `OUT/<recipe>/<scale>-<arm>-s<seed>`; then score each claim from the runs' summaries:
value claims against their threshold, effect claims as a difference of means over seeds.

An arm may build on another arm's run: a string config value "arm:NAME" (e.g.
`train.init_from="arm:pretrain"`) stands for the run directory of arm NAME at the same scale and
seed, which is trained first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from sutskever.config import apply_overrides, from_dict, to_dict
from sutskever.errors import UserError
from sutskever.recipes.base import Claim, Recipe, claim_runnable
from sutskever.train import RunSpec, train
from sutskever.train.checkpoint import atomic_write_json, find_checkpoint
from sutskever.train.trainer import CHECKPOINT_DIR, CONFIG_FILE, SUMMARY_FILE


@dataclass
class ClaimResult:
    id: str
    text: str
    kind: str
    paper: str
    ours: str
    criterion: str
    holds: bool | None  # None: not run (the claim needs a setting this scale does not have)
    setting: str
    seeds: int
    bars: list[dict]  # for the plot: label, paper, mean, std


def run_dir_for(out: Path, recipe: Recipe, scale: str, arm: str, seed: int) -> Path:
    return out / recipe.name / f"{scale}-{arm}-s{seed}"


def seeds_for(recipe: Recipe, arm: str, seeds: int) -> int:
    """Effect claims (and the fit claims of a recipe that fits over seeds) are measured over
    `seeds` seeds; value-only arms over one."""
    if recipe.fit_over_seeds and any(c.kind == "fit" for c in recipe.claims):
        return seeds
    effect = any(c.kind == "effect" and arm in (c.arm, c.baseline) for c in recipe.claims)
    return seeds if effect else 1


ARM_REF = "arm:"


def arm_references(cfg: Any, prefix: str = "") -> dict[str, str]:
    """{config key: arm} of the config's "arm:NAME" values (runs this config builds on)."""
    refs: dict[str, str] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            refs.update(arm_references(value, f"{prefix}{f.name}."))
        elif isinstance(value, str) and value.startswith(ARM_REF):
            refs[prefix + f.name] = value[len(ARM_REF):]
    return refs


def resolved_config(recipe: Recipe, scale: str, arm: str, seed: int, out: Path) -> Any:
    """The arm's config with each "arm:NAME" replaced by that arm's run directory."""
    cfg = recipe.arm_config(scale, arm)
    refs = arm_references(cfg)
    return apply_overrides(cfg, {key: str(run_dir_for(out, recipe, scale, dep, seed))
                                 for key, dep in refs.items()})


def dependencies(recipe: Recipe, scale: str, arm: str, seen: tuple[str, ...] = ()) -> list[str]:
    """The arms `arm` builds on, directly or not, each before those that build on it."""
    if arm in seen:
        raise UserError(f"recipe {recipe.name!r}: arms {' -> '.join((*seen, arm))} build on "
                        f"each other in a cycle")
    order: list[str] = []
    for dep in arm_references(recipe.arm_config(scale, arm)).values():
        try:
            recipe.arm_overrides(scale, dep)
        except KeyError:
            raise UserError(f"recipe {recipe.name!r}: arm {arm!r} builds on unknown arm "
                            f"{dep!r}") from None
        for a in (*dependencies(recipe, scale, dep, (*seen, arm)), dep):
            if a not in order:
                order.append(a)
    return order


def ensure_run(recipe: Recipe, scale: str, arm: str, seed: int, out: Path,
               device: torch.device, console: Console) -> dict:
    """Train the run unless an identical finished one exists; resume an unfinished one. The
    runs it builds on are ensured first."""
    for dep in dependencies(recipe, scale, arm):
        ensure_run(recipe, scale, dep, seed, out, device, console)
    cfg = resolved_config(recipe, scale, arm, seed, out)
    run_dir = run_dir_for(out, recipe, scale, arm, seed)
    summary_path = run_dir / SUMMARY_FILE
    if summary_path.exists():
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
        if _same_config(saved.get("config"), cfg):
            console.print(f"  reuse  {run_dir}")
            return json.loads(summary_path.read_text())
        console.print(f"  stale  {run_dir} (config changed): training again")
        summary_path.unlink()
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    resume = find_checkpoint(run_dir / CHECKPOINT_DIR) is not None
    start = time.perf_counter()
    spec = RunSpec(recipe.name, scale, dict(recipe.arm_overrides(scale, arm)), seed)
    summary = train(recipe, cfg, run_dir, spec, device=device, resume=resume, console=console)
    console.print(f"  {'resumed' if resume else 'trained'} {run_dir} "
                  f"in {time.perf_counter() - start:.0f} s")
    return summary


def _same_config(saved: dict | None, cfg: Any) -> bool:
    """Whether a finished run was trained with `cfg`. Fields added to the config since the run
    count at their defaults (what the code did before they existed)."""
    if saved is None:
        return False
    try:
        old = from_dict(type(cfg), saved)
    except (UserError, TypeError, ValueError):  # a field removed or retyped since
        return False
    return json.loads(json.dumps(to_dict(old))) == json.loads(json.dumps(to_dict(cfg)))


def chosen_claims(recipe: Recipe, scale: str, only: Sequence[str] | None = None) -> list[Claim]:
    """The claims to run at `scale`: those selected (all by default) whose settings hold."""
    if only:
        unknown = sorted(set(only) - {c.id for c in recipe.claims})
        if unknown:
            raise UserError(f"recipe {recipe.name!r} has no claim {unknown[0]!r}; its claims: "
                            f"{', '.join(c.id for c in recipe.claims)}")
    return [c for c in recipe.claims
            if (not only or c.id in only) and claim_runnable(recipe, c, scale)]


def ensure_runs(recipe: Recipe, scale: str, wanted: Sequence[tuple[str, int]], out: Path,
                device: torch.device, console: Console,
                jobs: int = 1) -> dict[tuple[str, int], dict]:
    """`ensure_run` for each (arm, seed); `jobs` > 1 trains that many at once in worker
    processes that share the CPU threads between them."""
    if jobs <= 1 or len(wanted) <= 1:
        return {(arm, seed): ensure_run(recipe, scale, arm, seed, out, device, console)
                for arm, seed in wanted}
    # in waves: the runs others build on (depth 0) first, then those built on them, ...
    depth: dict[str, int] = {}
    for arm in dict.fromkeys(a for a, _ in wanted):
        for a in (*dependencies(recipe, scale, arm), arm):
            depth[a] = max((depth[d] + 1 for d in dependencies(recipe, scale, a)), default=0)
    runs = list(dict.fromkeys((a, seed) for arm, seed in wanted
                              for a in (*dependencies(recipe, scale, arm), arm)))
    threads = max(1, torch.get_num_threads() // jobs)
    console.print(f"  training {len(runs)} runs, {jobs} at a time, {threads} thread(s) each")
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads,))
    done: dict[tuple[str, int], dict] = {}
    try:
        for wave in range(max(depth.values()) + 1):
            futures = {(arm, seed): pool.submit(_ensure_run_job, recipe.name, scale, arm, seed,
                                                str(out), str(device))
                       for arm, seed in runs if depth[arm] == wave}
            done.update({key: future.result() for key, future in futures.items()})
        return {key: done[key] for key in wanted}
    finally:  # on an error or Ctrl-C, start no further runs (the running ones checkpoint)
        pool.shutdown(wait=True, cancel_futures=True)


def _ensure_run_job(name: str, scale: str, arm: str, seed: int, out: str, device: str) -> dict:
    from sutskever import recipes

    return ensure_run(recipes.get(name), scale, arm, seed, Path(out), torch.device(device),
                      Console(stderr=True))


def reproduce(recipe: Recipe, scale: str, seeds: int, out: Path, device: torch.device,
              console: Console, only: Sequence[str] | None = None,
              jobs: int = 1) -> list[ClaimResult]:
    """Run what the chosen claims need and check them; the other claims are `not run`."""
    chosen = chosen_claims(recipe, scale, only)
    arms = recipe.claim_arms(scale, chosen)
    done = ensure_runs(recipe, scale, [(arm, seed) for arm in arms
                                       for seed in range(seeds_for(recipe, arm, seeds))],
                       out, device, console, jobs)
    summaries = {arm: [done[arm, seed] for seed in range(seeds_for(recipe, arm, seeds))]
                 for arm in arms}
    fits = [c for c in chosen if c.kind == "fit"]
    scored = ({r.id: r for r in recipe.score_claims(scale, fits, summaries, out / recipe.name)}
              if fits else {})
    results = [scored[c.id] if c.id in scored else check_claim(c, summaries) if c in chosen
               else not_run(c, _why_not(recipe, c, scale)) for c in recipe.claims]
    atomic_write_json(out / recipe.name / f"reproduce-{scale}.json",
                      {"recipe": recipe.name, "scale": scale, "seeds": seeds,
                       "claims": [asdict(r) for r in results]})
    return results


def _why_not(recipe: Recipe, claim: Claim, scale: str) -> str:
    if claim.scales is not None and scale not in claim.scales:
        return f"runs at preset {' or '.join(claim.scales)}"
    if not claim_runnable(recipe, claim, scale):
        return "needs " + ", ".join(f"{k}={v}" for k, v in (claim.requires or {}).items())
    return "not selected (--claims)"


def not_run(claim: Claim, reason: str) -> ClaimResult:
    return ClaimResult(claim.id, claim.text, claim.kind, _paper(claim.paper), "not run",
                       reason, None, claim.setting, 0, [])


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _values(summaries: list[dict], metric: str) -> list[float]:
    try:
        values = [s["metrics"][metric] for s in summaries]
        return [math.nan if v is None else float(v) for v in values]  # None: undefined (FAIL)
    except KeyError:
        raise KeyError(f"metric {metric!r} is missing from the run summaries") from None


def mean_spread(values: list[float]) -> str:
    """`mean ± sample standard deviation` of per-seed values, as every claim reports them."""
    if any(math.isnan(v) for v in values):
        return "undefined"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4g}" if abs(mean) < 10 else f"{mean:.1f}"
    spread = statistics.stdev(values)
    return f"{mean:.4g} ± {spread:.2g}" if abs(mean) < 10 else f"{mean:.1f} ± {spread:.1f}"


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and spread; NaN when a value is undefined (a claim on it then does not hold)."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def check_claim(claim: Claim, summaries: dict[str, list[dict]]) -> ClaimResult:
    if claim.kind == "power-law":
        return _check_power_law(claim, summaries)
    ours = _values(summaries[claim.arm], claim.metric)
    mean, std = _stats(ours)
    sign = 1.0 if claim.higher_is_better else -1.0
    if claim.kind == "value":
        if claim.reference is not None:
            label = claim.reference_label
            ref = _values(summaries[claim.arm], claim.reference)
            ref_mean = statistics.fmean(ref)
            threshold = claim.factor * ref_mean
            criterion = (f"{'≥' if claim.higher_is_better else '≤'} {claim.factor:g} × "
                         f"{label} = {threshold:.4g}")
            paper = f"{claim.paper:g} ({label} {claim.paper_reference:g})"
            ours_text = f"{mean_spread(ours)} ({label} {ref_mean:.4g})"
            bars = [{"label": "model", "paper": claim.paper, "mean": mean, "std": std},
                    {"label": label, "paper": claim.paper_reference, "mean": ref_mean,
                     "std": _stats(ref)[1]}]
        else:
            if claim.threshold is not None:
                threshold = claim.threshold
                criterion = f"{'≥' if claim.higher_is_better else '≤'} {threshold:g}"
            else:
                assert claim.paper is not None, f"claim {claim.id} needs a threshold"
                threshold = claim.factor * claim.paper
                criterion = (f"{'≥' if claim.higher_is_better else '≤'} {claim.factor:g} × "
                             f"paper = {threshold:.4g}")
            paper, ours_text = _paper(claim.paper), mean_spread(ours)
            bars = [{"label": claim.metric, "paper": claim.paper, "mean": mean, "std": std}]
        holds = sign * (mean - threshold) >= 0
        return ClaimResult(claim.id, claim.text, claim.kind, paper, ours_text, criterion, holds,
                           claim.setting, len(ours), bars)
    base_arm = claim.baseline or claim.arm
    base = _values(summaries[base_arm], claim.baseline_metric or claim.metric)
    base_mean, base_std = _stats(base)
    diffs = [sign * (a - b) for a, b in zip(ours, base, strict=False)]
    diff_mean, diff_std = _stats(diffs)
    holds = diff_mean > claim.margin
    spread = f" ± {diff_std:.2g}" if len(diffs) > 1 else ""
    return ClaimResult(
        claim.id, claim.text, claim.kind,
        paper=(f"{_paper(claim.paper)} vs {_paper(claim.paper_baseline)}"
               if claim.paper is not None else "-"),
        ours=f"{mean_spread(ours)} vs {mean_spread(base)} (Δ {diff_mean:+.3g}{spread})",
        criterion=f"Δ > {claim.margin:g} over {len(diffs)} seed(s)",
        holds=holds, setting=claim.setting, seeds=len(diffs),
        bars=[{"label": claim.arm, "paper": claim.paper, "mean": mean, "std": std},
              {"label": claim.baseline or claim.baseline_metric or "", "paper":
               claim.paper_baseline, "mean": base_mean, "std": base_std}])


def _check_power_law(claim: Claim, summaries: dict[str, list[dict]]) -> ClaimResult:
    """Least squares of log(metric) on log(x_metric) over the arms (each the mean of its seeds)."""
    arms = (claim.arm, *claim.trend_arms)
    x = np.array([statistics.fmean(_values(summaries[a], claim.x_metric)) for a in arms])
    y = np.array([statistics.fmean(_values(summaries[a], claim.metric)) for a in arms])
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    residual = np.log(y) - (slope * np.log(x) + intercept)
    r2 = 1.0 - float(residual @ residual) / float(((np.log(y) - np.log(y).mean()) ** 2).sum())
    exponent = -float(slope)
    r2_min = claim.threshold if claim.threshold is not None else 0.9
    holds = exponent > claim.margin and r2 >= r2_min
    points = ", ".join(f"{a:.3g}: {b:.4g}" for a, b in zip(x, y, strict=True))
    return ClaimResult(
        claim.id, claim.text, claim.kind, paper=_paper(claim.paper),
        ours=f"exponent {exponent:.3f}, R² {r2:.3f} ({claim.x_metric} → {claim.metric}: "
             f"{points})",
        criterion=f"exponent > {claim.margin:g} and R² ≥ {r2_min:g} over {len(arms)} runs",
        holds=bool(holds), setting=claim.setting, seeds=1,
        bars=[{"label": f"{a:.3g}", "paper": None, "mean": float(b), "std": 0.0}
              for a, b in zip(x, y, strict=True)])


def load_claim_status(out: Path, recipe: Recipe) -> dict[str, Any]:
    """The latest reproduce results for `list`: {scale: (holding, total)}."""
    status = {}
    for path in sorted((out / recipe.name).glob("reproduce-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        claims = data.get("claims", [])
        status[data.get("scale", "?")] = (sum(bool(c["holds"]) for c in claims),
                                          sum(c["holds"] is not None for c in claims))
    return status
