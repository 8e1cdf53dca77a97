"""Kaplan et al.'s power laws, fitted with bootstrap intervals.

Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361:
- Section 3 and Eq. (1.1)-(1.3): L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D and
  L(C_min) = (C_c/C_min)^alpha_C, each a straight line in log-log.
- Section 4, Eq. (1.5)/(4.1): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D.

L(N) describes models trained to convergence, L(D) large models stopped early, L(C_min) the best
loss per compute. From a table of runs each law is fitted to the lower envelope of loss against
its variable: the runs whose loss is below that of every run with a smaller (or equal) N, D or C.
The joint law is fitted to all runs by least squares on log loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sutskever.errors import UserError
from sutskever.scaling.laws import KaplanJointLaw, PowerLaw
from sutskever.scaling.lbfgs import minimize_batched
from sutskever.scaling.runs import Runs
from sutskever.scaling.stats import Estimate, estimate, fit_lines, resample_counts

__all__ = ["PowerLawFit", "KaplanFit", "fit_power_law", "fit_kaplan", "fit_kaplan_joint",
           "lower_envelope"]

_NAMES = {"N": ("alpha_N", "N_c"), "D": ("alpha_D", "D_c"), "C": ("alpha_C", "C_c")}


def lower_envelope(x: np.ndarray, loss: np.ndarray,
                   counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The envelope at each distinct x (sorted) for each row of bootstrap counts (B, n): its log
    loss (NaN off the envelope) and the count of the run that sets it (its regression weight).

    A distinct x is on the envelope if its best included loss is below the best included loss
    at every smaller x."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    masked = np.where(counts[:, order] > 0, np.log(loss[order]), np.inf)
    best = np.minimum.reduceat(masked, starts, axis=1)  # best loss at each distinct x
    # the count of that best row (ties at one x: any of them)
    winner = masked == np.repeat(best, np.diff(np.r_[starts, xs.size]), axis=1)
    weight = np.maximum.reduceat(np.where(winner, counts[:, order], 0.0), starts, axis=1)
    before = np.concatenate([np.full((counts.shape[0], 1), np.inf),
                             np.minimum.accumulate(best, axis=1)[:, :-1]], axis=1)
    on = np.isfinite(best) & (best < before)
    return np.where(on, best, np.nan), np.where(on, weight, 0.0)


@dataclass(frozen=True, eq=False)
class PowerLawFit:
    """L(x) = (x_c / x)^alpha through the lower envelope of loss against x."""

    variable: str  # "N", "D" or "C"
    law: PowerLaw
    x: np.ndarray  # envelope points used
    loss: np.ndarray
    samples: np.ndarray | None = None  # (B, 2) bootstrap (alpha, log x_c)
    confidence: float = 0.95

    def estimates(self) -> dict[str, Estimate]:
        alpha_name, xc_name = _NAMES[self.variable]
        sa = sx = None
        if self.samples is not None:
            sa, sx = self.samples[:, 0], np.exp(self.samples[:, 1])
        return {alpha_name: estimate(self.law.exponent, sa, self.confidence),
                xc_name: estimate(self.law.x_c, sx, self.confidence)}


def _line_to_law_samples(slope: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """(alpha, log x_c) from log L = intercept + slope log x: alpha = -slope,
    log x_c = -intercept / slope."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([-slope, -intercept / slope], axis=1)


def fit_power_law(runs: Runs, variable: str = "N", *, bootstrap: int = 0, seed: int = 0,
                  confidence: float = 0.95) -> PowerLawFit:
    """L(x) = (x_c/x)^alpha for x = N, D or C on the lower envelope; bootstrap over runs."""
    x = {"N": runs.n, "D": runs.d, "C": runs.c}[variable]
    env = lower_envelope(x, runs.loss, np.ones((1, len(runs))))[0][0]
    xu = np.unique(x)
    keep = np.isfinite(env)
    if keep.sum() < 3:
        raise UserError(f"{runs.source}: L({variable}) needs at least 3 runs on the lower envelope "
                        f"of loss against {variable}, found {int(keep.sum())}; add runs that "
                        f"improve on every smaller {variable}")
    slope, intercept = fit_lines(np.log(xu), env, np.ones(xu.size))
    law = PowerLaw.from_line(float(intercept), float(slope))
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        # a run drawn k times counts k times in the regression (the pairs bootstrap)
        benv, weight = lower_envelope(x, runs.loss, resample_counts(len(runs), bootstrap, rng))
        s_slope, s_icpt = fit_lines(np.log(xu), benv, weight)
        samples = _line_to_law_samples(s_slope, s_icpt)
    return PowerLawFit(variable, law, xu[keep], np.exp(env[keep]), samples, confidence)


@dataclass(frozen=True, eq=False)
class _JointSquaredLogError:
    """sum_i w_i r_i^2 with r_i = alpha_D LSE(u_i, v_i) - log L_i, u_i = (alpha_N/alpha_D)
    (log N_c - log N_i), v_i = log D_c - log D_i; parameters (log N_c, log D_c, alpha_N,
    alpha_D)."""

    log_n: np.ndarray
    log_d: np.ndarray
    log_loss: np.ndarray
    weights: np.ndarray | None  # (S, n) or None for all ones

    def __call__(self, th: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lnc, ldc, an, ad = (th[:, [j]] for j in range(4))
        ratio = an / ad
        gap_n = lnc - self.log_n  # log N_c - log N
        u = ratio * gap_n
        v = ldc - self.log_d
        m = np.logaddexp(u, v)
        p = np.exp(u - m)  # weight of the N term in the LSE
        r = ad * m - self.log_loss
        w = 1.0 if self.weights is None else self.weights[rows]
        wr = 2.0 * w * r
        f = (w * r * r).sum(1)
        g = np.stack([(wr * an * p).sum(1), (wr * ad * (1 - p)).sum(1), (wr * p * gap_n).sum(1),
                      (wr * (m - p * u)).sum(1)], axis=1)
        return f, g


@dataclass(frozen=True, eq=False)
class KaplanFit:
    n: PowerLawFit
    d: PowerLawFit
    c: PowerLawFit
    joint: KaplanJointLaw
    joint_samples: np.ndarray | None = None  # (B, 4) N_c, D_c, alpha_N, alpha_D
    confidence: float = 0.95
    runs: Runs | None = field(default=None, repr=False)

    def estimates(self) -> dict[str, Estimate]:
        out: dict[str, Estimate] = {}
        for part in (self.n, self.d, self.c):
            out.update({f"{k} (L({part.variable}))": v for k, v in part.estimates().items()})
        s = self.joint_samples
        for j, name in enumerate(("N_c", "D_c", "alpha_N", "alpha_D")):
            out[f"{name} (L(N,D))"] = estimate(getattr(self.joint, name.lower()),
                                               None if s is None else s[:, j], self.confidence)
        return out


def fit_kaplan_joint(runs: Runs, *, bootstrap: int = 0, seed: int = 0,
                     starts: np.ndarray | None = None) -> tuple[KaplanJointLaw, np.ndarray | None]:
    """L(N, D) of Kaplan et al. Eq. (4.1) by least squares on log loss, from a small grid of
    starts (all at once); bootstrap replicates restart from the best fit."""
    if len(runs) < 8:
        raise UserError(f"{runs.source}: the joint L(N, D) fits 4 parameters and needs at least 8 "
                        f"runs, found {len(runs)}; add runs")
    log_n, log_d, log_l = np.log(runs.n), np.log(runs.d), np.log(runs.loss)
    if starts is None:
        # N_c and D_c beyond the largest N and D (the losses are above 1 nat there), exponents
        # around Kaplan et al.'s 0.076 and 0.095
        grid = [(log_n.max() + dn, log_d.max() + dd, an, ad)
                for dn in (2.0, 8.0, 16.0) for dd in (2.0, 8.0, 16.0)
                for an in (0.03, 0.1, 0.3) for ad in (0.03, 0.1, 0.3)]
        starts = np.array(grid)
    res = minimize_batched(_JointSquaredLogError(log_n, log_d, log_l, None), starts,
                           max_iter=3000, ftol=1e-14)
    fun = np.where(np.isfinite(res.fun) & (res.x[:, 3] > 0), res.fun, np.inf)
    best = res.x[int(np.argmin(fun))]
    law = KaplanJointLaw(float(np.exp(best[0])), float(np.exp(best[1])), float(best[2]),
                         float(best[3]))
    samples = None
    if bootstrap > 0:
        counts = resample_counts(len(runs), bootstrap, np.random.default_rng(seed))
        boot = minimize_batched(_JointSquaredLogError(log_n, log_d, log_l, counts),
                                np.tile(best, (bootstrap, 1)), max_iter=3000, ftol=1e-14)
        q = boot.x
        samples = np.stack([np.exp(q[:, 0]), np.exp(q[:, 1]), q[:, 2], q[:, 3]], axis=1)
    return law, samples


def fit_kaplan(runs: Runs, *, bootstrap: int = 0, seed: int = 0,
               confidence: float = 0.95) -> KaplanFit:
    """L(N), L(D), L(C_min) and the joint L(N, D), each with bootstrap intervals."""
    kw = {"bootstrap": bootstrap, "seed": seed, "confidence": confidence}
    joint, joint_samples = fit_kaplan_joint(runs, bootstrap=bootstrap, seed=seed)
    return KaplanFit(fit_power_law(runs, "N", **kw), fit_power_law(runs, "D", **kw),
                     fit_power_law(runs, "C", **kw), joint, joint_samples, confidence, runs)
