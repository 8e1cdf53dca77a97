"""Compute-optimal planning: how to split C FLOPs between parameters and tokens.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556,
Section 3.3, Eq. (4): minimising L(N, D) = E + A/N^alpha + B/D^beta subject to C = 6 N D gives

    N_opt = G (C/6)^a,  D_opt = G^-1 (C/6)^b,  G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta / (alpha + beta),  b = alpha / (alpha + beta).

With only U unique tokens (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models",
arXiv:2305.16264, Section 3) the loss of a run of D tokens is L(N, D'), D' the effective data of
`data_constrained.effective_data`; the best model size then solves a one-dimensional problem.
Intervals come from the bootstrap laws of the fit: each is the spread of the quantity across
them (for a loss: the loss of *this* plan under each bootstrap law).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from sutskever.errors import UserError
from sutskever.scaling.chinchilla import Frontier
from sutskever.scaling.data_constrained import R_STAR_D, effective_data
from sutskever.scaling.laws import FLOPS_PER_PARAM_TOKEN, ChinchillaLaw
from sutskever.scaling.stats import Estimate, estimate

__all__ = ["Plan", "RepeatedDataPlan", "plan_compute", "plan_from_frontier",
           "best_under_repetition"]


@dataclass(frozen=True)
class RepeatedDataPlan:
    """The best run of C FLOPs when only U unique tokens exist."""

    unique_tokens: float
    n: float
    d: float  # training tokens (U repeated d / U times)
    epochs: float
    effective_tokens: float  # D'
    loss: Estimate  # L(n, D')
    loss_unlimited: Estimate  # L(N_opt, D_opt) with unlimited unique data
    cost: Estimate  # loss - loss_unlimited, paired across bootstrap laws
    loss_if_ignored: float  # the unlimited plan (N_opt, D_opt) trained on repeated data
    r_star: float


@dataclass(frozen=True)
class Plan:
    flops: float
    n_opt: Estimate
    d_opt: Estimate
    tokens_per_parameter: Estimate
    loss: Estimate | None  # None when the fit has no loss law (Approaches 1 and 2)
    repeated: RepeatedDataPlan | None = None


def _check_flops(flops: float) -> float:
    if not (np.isfinite(flops) and flops > 0):
        raise UserError(f"--flops {flops} must be a positive number of FLOPs such as 1e21")
    return float(flops)


def best_under_repetition(law: ChinchillaLaw, flops: float, unique_tokens: float,
                          r_star: float = R_STAR_D) -> float:
    """argmin_N L(N, D'(C / 6N, U)): the model size for C FLOPs with U unique tokens.

    Beyond N = C / (6U) the run sees every token at most once and L(N, C/6N) rises with N
    (that N is above N_opt when D_opt > U), so the search runs over N <= C / (6U): a log grid
    brackets the minimum, Brent's method refines it.
    """
    c6 = flops / FLOPS_PER_PARAM_TOKEN
    n_opt = float(law.n_opt(flops))
    if c6 / n_opt <= unique_tokens:
        return n_opt
    hi = np.log(c6 / unique_tokens)
    lo = min(np.log(n_opt), hi) - 10.0

    def loss(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(log_n)
        return law.loss(n, effective_data(c6 / n, unique_tokens, r_star))

    grid = np.linspace(lo, hi, 2001)
    j = int(np.argmin(loss(grid)))
    res = minimize_scalar(lambda t: float(loss(np.array(t))), method="bounded",
                          bounds=(grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]),
                          options={"xatol": 1e-10})
    return float(np.exp(res.x))


def plan_compute(law: ChinchillaLaw, flops: float, *, samples: ChinchillaLaw | None = None,
                 unique_tokens: float | None = None, r_star: float = R_STAR_D,
                 confidence: float = 0.95) -> Plan:
    """N_opt, D_opt, tokens per parameter and predicted loss for C FLOPs from an Approach-3 law.

    samples: the bootstrap laws (a ChinchillaLaw whose fields are arrays) for the intervals.
    unique_tokens: a data limit U; adds the best run under repetition and its loss cost.
    """
    flops = _check_flops(flops)
    n_opt, d_opt = float(law.n_opt(flops)), float(law.d_opt(flops))

    def spread(value: float, f: Callable[[ChinchillaLaw], np.ndarray]) -> Estimate:
        return estimate(value, None if samples is None else f(samples), confidence)

    loss_opt = spread(float(law.loss(n_opt, d_opt)), lambda s: s.loss(n_opt, d_opt))
    repeated = None
    if unique_tokens is not None:
        if not (np.isfinite(unique_tokens) and unique_tokens > 0):
            raise UserError(f"--unique-tokens {unique_tokens} must be a positive token count")
        n = best_under_repetition(law, flops, unique_tokens, r_star)
        d = flops / FLOPS_PER_PARAM_TOKEN / n
        d_eff = float(effective_data(d, unique_tokens, r_star))
        loss = spread(float(law.loss(n, d_eff)), lambda s: s.loss(n, d_eff))
        cost = spread(loss.value - loss_opt.value,
                      lambda s: s.loss(n, d_eff) - s.loss(n_opt, d_opt))
        ignored = float(law.loss(n_opt, effective_data(d_opt, unique_tokens, r_star)))
        repeated = RepeatedDataPlan(float(unique_tokens), n, d, d / unique_tokens, d_eff, loss,
                                    loss_opt, cost, ignored, r_star)
    return Plan(flops,
                spread(n_opt, lambda s: s.n_opt(flops)),
                spread(d_opt, lambda s: s.d_opt(flops)),
                spread(d_opt / n_opt, lambda s: s.tokens_per_parameter(flops)),
                loss_opt, repeated)


def plan_from_frontier(frontier: Frontier, flops: float, *, samples: np.ndarray | None = None,
                       confidence: float = 0.95) -> Plan:
    """N_opt = k C^a from an Approach 1 or 2 fit; samples (B, 2) bootstrap (a, log k). These
    approaches fit no loss law, so the plan has no predicted loss."""
    flops = _check_flops(flops)
    out = {}
    for name in ("n_opt", "d_opt", "tokens_per_parameter"):
        s = None
        if samples is not None:
            s = np.array([getattr(Frontier(a, k), name)(flops) for a, k in samples])
        out[name] = estimate(float(getattr(frontier, name)(flops)), s, confidence)
    return Plan(flops, out["n_opt"], out["d_opt"], out["tokens_per_parameter"], None)
