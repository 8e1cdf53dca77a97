"""fit.json: what `sutskever scaling fit` writes and `sutskever scaling plan --fit` reads.

It records the fits of `kaplan.py` (Kaplan et al. 2020, arXiv:2001.08361), `chinchilla.py`
(Hoffmann et al. 2022, arXiv:2203.15556, Approaches 1-3) and `data_constrained.py`
(Muennighoff et al. 2023, arXiv:2305.16264).

One JSON object: `format`, `law` ("chinchilla", "kaplan" or "data-constrained"), `approach`,
`source`, `points`, `estimates` (name -> value, low, high, confidence), the fitted law
(`chinchilla` {E, A, B, alpha, beta} or `frontier` {a, log_k}) and `bootstrap` (replicates,
seed, confidence and the samples of each fitted parameter, so that a plan can recompute its own
intervals).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sutskever.errors import UserError
from sutskever.scaling.chinchilla import Approach1Fit, Approach2Fit, Approach3Fit, Frontier
from sutskever.scaling.data_constrained import RStarFit
from sutskever.scaling.kaplan import KaplanFit
from sutskever.scaling.laws import ChinchillaLaw

__all__ = ["FORMAT", "fit_record", "PlanModel", "read_plan_model"]

FORMAT = "sutskever.scaling.fit/1"

AnyFit = Approach1Fit | Approach2Fit | Approach3Fit | KaplanFit | RStarFit


def fit_record(fit: AnyFit, *, source: str, points: int, dropped: int = 0,
               seed: int = 0, budget: float | None = None) -> dict[str, Any]:
    """The JSON-ready record of a fit."""
    rec: dict[str, Any] = {"format": FORMAT, "source": source, "points": points,
                           "dropped_highest": dropped}
    samples: dict[str, list[float]] = {}
    if isinstance(fit, Approach3Fit):
        rec.update(law="chinchilla", approach=3, chinchilla=fit.law.to_dict(),
                   objective=fit.objective, huber_delta=fit.delta, starts=fit.starts,
                   starts_converged=fit.starts_converged,
                   starts_at_optimum=fit.starts_at_optimum, fit_seconds=fit.seconds)
        ests = fit.estimates(budget)
        if fit.samples is not None:
            samples = {k: fit.samples[:, j].tolist()
                       for j, k in enumerate(("E", "A", "B", "alpha", "beta"))}
    elif isinstance(fit, (Approach1Fit, Approach2Fit)):
        rec.update(law="chinchilla", approach=1 if isinstance(fit, Approach1Fit) else 2,
                   frontier={"a": fit.frontier.a, "log_k": fit.frontier.log_k})
        ests = fit.estimates(budget)
        if fit.samples is not None:
            samples = {"a": fit.samples[:, 0].tolist(), "log_k": fit.samples[:, 1].tolist()}
    elif isinstance(fit, KaplanFit):
        rec.update(law="kaplan", approach=None, kaplan_joint={
            "N_c": fit.joint.n_c, "D_c": fit.joint.d_c, "alpha_N": fit.joint.alpha_n,
            "alpha_D": fit.joint.alpha_d})
        ests = fit.estimates()
    else:
        rec.update(law="data-constrained", approach=None, base_law=fit.law.to_dict(),
                   repeated_runs=fit.repeated, at_bound=fit.at_bound, objective=fit.objective)
        ests = {"R_star_D": fit.r_star}
        if fit.samples is not None:
            samples = {"R_star_D": np.asarray(fit.samples).tolist()}
    rec["budget"] = budget
    rec["estimates"] = {k: v.to_dict() for k, v in ests.items()}
    conf = next(iter(ests.values())).confidence if ests else None
    rec["bootstrap"] = {"replicates": len(next(iter(samples.values()), [])), "seed": seed,
                        "confidence": conf, "samples": samples}
    return rec


@dataclass(frozen=True, eq=False)
class PlanModel:
    """What a plan needs from a fit: the law (or frontier) and its bootstrap samples."""

    law: ChinchillaLaw | None
    law_samples: ChinchillaLaw | None  # fields are arrays (B,)
    frontier: Frontier | None
    frontier_samples: np.ndarray | None  # (B, 2) a, log k
    confidence: float
    description: str


def read_plan_model(path: str | Path) -> PlanModel:
    """The Chinchilla law (Approach 3) or frontier (Approaches 1, 2) in a fit.json."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"fit file '{path}' does not exist; write one with `sutskever scaling fit "
                        "RUNS.csv --out DIR` (DIR/fit.json)")
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"fit file '{path}' is not valid JSON ({e}); pass the fit.json that "
                        "`sutskever scaling fit` wrote") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise UserError(f"fit file '{path}' is not a {FORMAT} record; pass the fit.json that "
                        "`sutskever scaling fit` wrote")
    boot = rec.get("bootstrap") or {}
    samples = boot.get("samples") or {}
    conf = float(boot.get("confidence") or 0.95)
    desc = f"{rec.get('law')} approach {rec.get('approach')} fit of {rec.get('source')}"
    try:
        if rec.get("law") == "chinchilla" and rec.get("approach") == 3:
            law = ChinchillaLaw(**{k: float(v) for k, v in rec["chinchilla"].items()})
            s = None
            if samples:
                s = ChinchillaLaw(*(np.asarray(samples[k], dtype=float)
                                    for k in ("E", "A", "B", "alpha", "beta")))
            return PlanModel(law, s, None, None, conf, desc)
        if rec.get("law") == "chinchilla" and rec.get("approach") in (1, 2):
            fr = Frontier(float(rec["frontier"]["a"]), float(rec["frontier"]["log_k"]))
            fs = None
            if samples:
                fs = np.stack([np.asarray(samples["a"], dtype=float),
                               np.asarray(samples["log_k"], dtype=float)], axis=1)
                fs = fs[np.isfinite(fs).all(axis=1)]
            return PlanModel(None, None, fr, fs, conf, desc)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"fit file '{path}' is missing or has a bad entry ({e}); rewrite it with "
                        "`sutskever scaling fit`") from None
    raise UserError(f"fit file '{path}' holds a {rec.get('law')} fit; planning needs a "
                    "Chinchilla fit (`sutskever scaling fit RUNS.csv --law chinchilla`)")
