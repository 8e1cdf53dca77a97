"""Repeated data: the effective number of tokens when U unique tokens are seen for many epochs.

Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv:2305.16264,
Section 3: with U_D unique tokens repeated R_D = D / U_D - 1 times beyond the first epoch,

    D' = U_D + U_D R*_D (1 - exp(-R_D / R*_D)),

so the value of a repeated token decays with half-life R*_D ln 2 epochs; D' -> U_D (1 + R*_D) as
R_D -> infinity. The loss is a Chinchilla law evaluated at D' (the analogous excess-parameter
term N' of the paper is not modelled here). Their fitted R*_D = 15.39. `fit_r_star` fits R*_D to a
user's own repeated-data runs given a Chinchilla law fitted on unique data, by the Huber loss on
log loss of Hoffmann et al.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from sutskever.errors import UserError
from sutskever.scaling.chinchilla import HUBER_DELTA
from sutskever.scaling.laws import ChinchillaLaw
from sutskever.scaling.runs import Runs
from sutskever.scaling.stats import Estimate, estimate, resample_counts

__all__ = ["R_STAR_D", "effective_data", "RStarFit", "fit_r_star"]

R_STAR_D = 15.39  # Muennighoff et al. 2023, fitted R*_D


def effective_data(tokens: np.ndarray | float, unique_tokens: np.ndarray | float,
                   r_star: np.ndarray | float = R_STAR_D) -> np.ndarray:
    """D' for D training tokens drawn from U unique ones (D <= U: every token fresh, D' = D)."""
    d = np.asarray(tokens, dtype=float)
    u = np.minimum(np.asarray(unique_tokens, dtype=float), d)
    repeats = d / u - 1.0  # R_D, epochs beyond the first
    # U R* (1 - exp(-R/R*)) written with expm1 so that R << R* keeps its precision
    return u - u * r_star * np.expm1(-repeats / r_star)


@dataclass(frozen=True, eq=False)
class RStarFit:
    r_star: Estimate
    law: ChinchillaLaw  # the unique-data law it was fitted against
    objective: float  # sum of Huber losses at the optimum
    points: int
    repeated: int  # runs with more than one epoch
    at_bound: bool  # the optimum sits on the search bound: R* is not determined by the data
    samples: np.ndarray | None = None


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def fit_r_star(runs: Runs, law: ChinchillaLaw, *, delta: float = HUBER_DELTA,
               bounds: tuple[float, float] = (0.01, 1e4), bootstrap: int = 0, seed: int = 0,
               confidence: float = 0.95) -> RStarFit:
    """R*_D minimising sum_i Huber(log L(N_i, D'_i(R*)) - log L_i) over runs with a U column.

    The objective is one-dimensional: a grid in log R* finds the basin, Brent's method refines.
    Bootstrap replicates resample runs with replacement.
    """
    if runs.unique_tokens is None:
        raise UserError(f"{runs.source} has no U (unique tokens) column; add one giving the "
                        "unique tokens each run drew its D tokens from")
    repeated = int((runs.d > runs.unique_tokens * (1 + 1e-9)).sum())
    if repeated == 0:
        raise UserError(f"{runs.source}: no run repeats data (D > U), so R* cannot be fitted; "
                        "add runs that train for more than one epoch")
    if len(runs) < 3:
        raise UserError(f"{runs.source}: fitting R* needs at least 3 runs, found {len(runs)}")
    log_loss = np.log(runs.loss)
    grid = np.linspace(np.log(bounds[0]), np.log(bounds[1]), 401)

    def residuals(log_r: np.ndarray) -> np.ndarray:
        """(G, n) residuals for each log R* in log_r."""
        d_eff = effective_data(runs.d, runs.unique_tokens, np.exp(log_r)[:, None])
        return np.log(law.loss(runs.n, d_eff)) - log_loss

    table = _huber(residuals(grid), delta)  # (G, n)

    def solve(w: np.ndarray) -> tuple[float, float]:
        j = int(np.argmin(table @ w))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        res = minimize_scalar(lambda t: float(_huber(residuals(np.array([t]))[0], delta) @ w),
                              bounds=(lo, hi), method="bounded", options={"xatol": 1e-8})
        return float(res.x), float(res.fun)

    log_r, fun = solve(np.ones(len(runs)))
    at_bound = bool(min(abs(log_r - grid[0]), abs(log_r - grid[-1])) < 1e-3)
    samples = None
    if bootstrap > 0:
        counts = resample_counts(len(runs), bootstrap, np.random.default_rng(seed))
        samples = np.exp([solve(w)[0] for w in counts])
    return RStarFit(estimate(float(np.exp(log_r)), samples, confidence), law, fun, len(runs),
                    repeated, at_bound, samples)
