"""Chinchilla's three ways to find the compute-optimal model size, with bootstrap intervals.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556:
- Approach 1 (Section 3.1): the minimum-loss envelope over training curves; for each FLOP budget
  the run with the lowest loss gives N_opt(C); then N_opt ~ C^a.
- Approach 2 (Section 3.2): for each isoFLOP budget a parabola of loss in log N; its vertex is
  N_opt(C); then N_opt ~ C^a and D_opt ~ C^b.
- Approach 3 (Section 3.3, Appendix D.2): L(N, D) = E + A/N^alpha + B/D^beta fitted by the Huber
  loss (delta = 1e-3) between the log of the predicted and the observed loss, with L-BFGS from a
  grid of starting points; then a = beta/(alpha+beta), b = alpha/(alpha+beta).

Approach 3 follows Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt"
(arXiv:2404.10102), Section 2 and Appendix A: log L is written as
LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e, and the fit starts from
their grid (alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5: 4,500
starts). Every start runs to convergence, all at once, in the batched L-BFGS of `lbfgs.py`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from sutskever.errors import UserError
from sutskever.scaling.laws import FLOPS_PER_PARAM_TOKEN, ChinchillaLaw
from sutskever.scaling.lbfgs import minimize_batched
from sutskever.scaling.runs import Runs
from sutskever.scaling.stats import Estimate, estimate, fit_lines, resample_counts

__all__ = [
    "Approach1Fit", "Approach2Fit", "Approach3Fit", "Frontier", "IsoFlopParabola",
    "epoch_grid", "fit_approach1", "fit_approach2", "fit_approach3", "huber_log_objective",
    "isoflop_groups", "HUBER_DELTA",
]

HUBER_DELTA = 1e-3  # Hoffmann et al. Section 3.3


# ---- the compute-optimal frontier N_opt = k C^a (Approaches 1 and 2) ---------------------------
@dataclass(frozen=True)
class Frontier:
    """N_opt = k C^a and D_opt = C / (6 N_opt), so D_opt ~ C^b with b = 1 - a."""

    a: float
    log_k: float  # natural log of k

    @property
    def b(self) -> float:
        return 1.0 - self.a

    def n_opt(self, c: np.ndarray | float) -> np.ndarray:
        return np.exp(self.log_k + self.a * np.log(c))

    def d_opt(self, c: np.ndarray | float) -> np.ndarray:
        return np.asarray(c, dtype=float) / (FLOPS_PER_PARAM_TOKEN * self.n_opt(c))

    def tokens_per_parameter(self, c: np.ndarray | float) -> np.ndarray:
        return self.d_opt(c) / self.n_opt(c)


def _frontier_estimates(frontier: Frontier, samples: np.ndarray | None, budget: float,
                        confidence: float) -> dict[str, Estimate]:
    """a, b and N_opt, D_opt, tokens per parameter at `budget`; samples (B, 2) of (a, log k)."""
    sa = sk = None
    if samples is not None:
        sa, sk = samples[:, 0], samples[:, 1]
    out = {"a": estimate(frontier.a, sa, confidence),
           "b": estimate(frontier.b, None if sa is None else 1.0 - sa, confidence)}
    for name in ("n_opt", "d_opt", "tokens_per_parameter"):
        value = float(getattr(frontier, name)(budget))
        s = None
        if samples is not None:
            s = np.array([getattr(Frontier(x, k), name)(budget) for x, k in zip(sa, sk,
                                                                                strict=True)])
        out[name] = estimate(value, s, confidence)
    return out


# ---- Approach 1: minimum-loss envelope over training curves ------------------------------------
@dataclass(frozen=True, eq=False)
class Approach1Fit:
    """The envelope (for each budget the run of lowest loss) and the power law through it."""

    flops: np.ndarray  # budgets C of the envelope
    n_opt: np.ndarray  # N of the lowest-loss run at each budget
    loss: np.ndarray  # its loss there
    frontier: Frontier
    from_curves: bool  # True: envelope of interpolated training curves; False: Pareto points
    samples: np.ndarray | None = None  # (B, 2) bootstrap (a, log k)
    confidence: float = 0.95
    runs: Runs | None = field(default=None, repr=False)

    def estimates(self, budget: float | None = None) -> dict[str, Estimate]:
        c = float(self.flops.max()) if budget is None else float(budget)
        return _frontier_estimates(self.frontier, self.samples, c, self.confidence)


def _run_groups(runs: Runs) -> list[np.ndarray]:
    """Row indices of each training run: by run id, else by model size N."""
    keys = runs.run if runs.run is not None else tuple(repr(float(n)) for n in runs.n)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [np.array(v) for v in groups.values()]


def fit_approach1(runs: Runs, *, budgets: int = 40, bootstrap: int = 0, seed: int = 0,
                  confidence: float = 0.95) -> Approach1Fit:
    """Hoffmann et al. Approach 1 on training curves (rows grouped into runs by run id or N).

    Each run's loss is interpolated linearly in (log C, log loss) to `budgets` log-spaced FLOP
    budgets inside its own range; the envelope takes the lowest, at budgets where that run is
    neither the smallest nor the largest model reaching the budget. When no run has more than one
    row (final losses only) the envelope is the Pareto set instead: each run whose loss is below
    every run of smaller C. The bootstrap resamples whole runs.
    """
    groups = _run_groups(runs)
    from_curves = any(g.size > 1 for g in groups)
    log_c, log_l = np.log(runs.c), np.log(runs.loss)
    if from_curves:
        grid = np.linspace(log_c.min(), log_c.max(), budgets)
        # (R, K) log loss of run r at budget k; +inf where the budget is outside run r's curve
        table = np.full((len(groups), budgets), np.inf)
        run_n = np.empty(len(groups))
        for r, g in enumerate(groups):
            order = g[np.argsort(log_c[g])]
            run_n[r] = np.median(runs.n[order])
            inside = (grid >= log_c[order[0]]) & (grid <= log_c[order[-1]])
            table[r, inside] = np.interp(grid[inside], log_c[order], log_l[order])
    else:
        # final losses only: one row per run, taken in order of C
        rows = np.concatenate(groups)
        rows = rows[np.argsort(log_c[rows], kind="stable")]
        grid, run_n, own_l = log_c[rows], runs.n[rows], log_l[rows]

    def envelope(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, K) log N_opt, log loss and the count of the winning run (its weight in the
        regression) for run counts (B, R) of bootstrap resamples; NaN / 0 off the envelope."""
        if not from_curves:
            # Pareto: a run is on the envelope if no included run of smaller or equal C has a
            # lower loss
            own = np.where(counts > 0, own_l, np.inf)
            on = np.isfinite(own) & (own <= np.minimum.accumulate(own, axis=1))
            return (np.where(on, np.log(run_n), np.nan), np.where(on, own, np.nan),
                    np.where(on, counts, 0.0))
        mask = counts > 0
        t = np.where(mask[:, :, None], table[None], np.inf)
        best = t.argmin(axis=1)
        best_l = np.take_along_axis(t, best[:, None, :], axis=1)[:, 0]
        # a budget counts only if the lowest loss is bracketed: some covering run is smaller
        # and some larger than the winner (else the optimum may lie beyond the runs)
        covered = np.isfinite(t)
        log_n = np.log(run_n)[None, :, None]
        smallest = np.where(covered, log_n, np.inf).min(axis=1)
        largest = np.where(covered, log_n, -np.inf).max(axis=1)
        best_n = np.log(run_n[best])
        ok = np.isfinite(best_l) & (best_n > smallest) & (best_n < largest)
        weight = np.take_along_axis(counts, best, axis=1)
        return (np.where(ok, best_n, np.nan), np.where(ok, best_l, np.nan),
                np.where(ok, weight, 0.0))

    log_n, env_l, _ = envelope(np.ones((1, len(groups))))
    x = grid
    keep = np.isfinite(log_n[0])
    if keep.sum() < 3 or np.ptp(x[keep]) <= 0:
        raise UserError(f"{runs.source}: Approach 1 found {int(keep.sum())} envelope point(s); it "
                        "needs at least 3 budgets where some run reaches the lowest loss; add "
                        "runs at more FLOP budgets")
    slope, intercept = fit_lines(x, log_n[0], np.ones(x.size))
    frontier = Frontier(float(slope), float(intercept))
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        counts = resample_counts(len(groups), bootstrap, rng)
        bn, _, weight = envelope(counts)
        s_slope, s_icpt = fit_lines(x, bn, weight)
        samples = np.stack([s_slope, s_icpt], axis=1)
    return Approach1Fit(np.exp(x[keep]), np.exp(log_n[0][keep]), np.exp(env_l[0][keep]),
                        frontier, from_curves, samples, confidence, runs)


# ---- Approach 2: isoFLOP parabolas -------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class IsoFlopParabola:
    """loss = c0 + c1 u + c2 u^2 with u = ln N, fitted to the runs of one FLOP budget."""

    flops: float
    n: np.ndarray
    loss: np.ndarray
    coef: tuple[float, float, float]  # (c0, c1, c2)

    @property
    def n_opt(self) -> float:
        c0, c1, c2 = self.coef
        return float(np.exp(-c1 / (2 * c2)))

    @property
    def loss_opt(self) -> float:
        c0, c1, c2 = self.coef
        return float(c0 - c1 * c1 / (4 * c2))

    def predict(self, n: np.ndarray) -> np.ndarray:
        u = np.log(n)
        return self.coef[0] + self.coef[1] * u + self.coef[2] * u * u


@dataclass(frozen=True, eq=False)
class Approach2Fit:
    parabolas: tuple[IsoFlopParabola, ...]
    frontier: Frontier
    skipped: tuple[str, ...]  # budgets not used, with the reason
    samples: np.ndarray | None = None  # (B, 2) bootstrap (a, log k)
    confidence: float = 0.95
    replicates_used: int = 0  # bootstrap replicates with at least 2 usable budgets

    def estimates(self, budget: float | None = None) -> dict[str, Estimate]:
        c = max(p.flops for p in self.parabolas) if budget is None else float(budget)
        return _frontier_estimates(self.frontier, self.samples, c, self.confidence)


def isoflop_groups(c: np.ndarray, tolerance_decades: float = 0.025) -> list[np.ndarray]:
    """Indices of runs per FLOP budget: sorted log10 C split wherever a gap exceeds the tolerance
    (runs read off a plot scatter around their budget; exact budgets give exact groups)."""
    order = np.argsort(c, kind="stable")
    gaps = np.diff(np.log10(c[order])) > tolerance_decades
    return np.split(order, np.flatnonzero(gaps) + 1)


def _parabolas(u: np.ndarray, loss: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, 3) weighted least-squares (c0, c1, c2) for weight rows w (B, n); NaN if singular."""
    uc = u.mean()  # centred for conditioning; shifted back below
    X = np.stack([np.ones_like(u), u - uc, (u - uc) ** 2], axis=1)
    M = np.einsum("bi,ij,ik->bjk", w, X, X)
    rhs = np.einsum("bi,ij,i->bj", w, X, loss)
    ok = np.linalg.matrix_rank(M) == 3
    coef = np.full((w.shape[0], 3), np.nan)
    if ok.any():
        coef[ok] = np.linalg.solve(M[ok], rhs[ok][..., None])[..., 0]
    d0, d1, d2 = coef.T
    # loss = d0 + d1 (u - uc) + d2 (u - uc)^2 in powers of u
    return np.stack([d0 - d1 * uc + d2 * uc * uc, d1 - 2 * d2 * uc, d2], axis=1)


def fit_approach2(runs: Runs, *, tolerance_decades: float = 0.025, min_points: int = 3,
                  bootstrap: int = 0, seed: int = 0, confidence: float = 0.95) -> Approach2Fit:
    """Hoffmann et al. Approach 2: a parabola per isoFLOP budget, then N_opt ~ C^a.

    A budget is used when it has at least `min_points` distinct model sizes and its parabola
    opens upwards. The bootstrap resamples runs within each budget and refits everything.
    """
    parabolas, skipped, used_groups = [], [], []
    for g in isoflop_groups(runs.c, tolerance_decades):
        c = float(np.exp(np.log(runs.c[g]).mean()))
        if np.unique(runs.n[g]).size < max(min_points, 3):
            skipped.append(f"C={c:.3g}: {np.unique(runs.n[g]).size} model size(s), need "
                           f"{max(min_points, 3)}")
            continue
        coef = _parabolas(np.log(runs.n[g]), runs.loss[g], np.ones((1, g.size)))[0]
        if not coef[2] > 0:
            skipped.append(f"C={c:.3g}: the parabola opens downwards (no minimum)")
            continue
        parabolas.append(IsoFlopParabola(c, runs.n[g], runs.loss[g], tuple(map(float, coef))))
        used_groups.append(g)
    if len(parabolas) < 2:
        raise UserError(f"{runs.source}: Approach 2 needs at least 2 isoFLOP budgets with "
                        f"{max(min_points, 3)}+ model sizes and a minimum, found "
                        f"{len(parabolas)} ({'; '.join(skipped) or 'no budgets'}); run more model "
                        "sizes per budget or widen --budget-tolerance")
    log_c = np.log([p.flops for p in parabolas])
    log_n = np.log([p.n_opt for p in parabolas])
    slope, intercept = fit_lines(log_c, log_n, np.ones(log_c.size))
    samples, used = None, 0
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        bn = np.full((bootstrap, len(parabolas)), np.nan)
        for j, g in enumerate(used_groups):
            coef = _parabolas(np.log(runs.n[g]), runs.loss[g],
                              resample_counts(g.size, bootstrap, rng))
            with np.errstate(invalid="ignore", divide="ignore"):
                bn[:, j] = np.where(coef[:, 2] > 0, -coef[:, 1] / (2 * coef[:, 2]), np.nan)
        s_slope, s_icpt = fit_lines(log_c, bn, np.ones_like(bn))
        samples = np.stack([s_slope, s_icpt], axis=1)
        used = int(np.isfinite(s_slope).sum())
    return Approach2Fit(tuple(parabolas), Frontier(float(slope), float(intercept)),
                        tuple(skipped), samples, confidence, used)


# ---- Approach 3: the parametric loss, Huber on log loss, 4,500 starts at once -----------------
def epoch_grid() -> np.ndarray:
    """(4500, 5) starting points (a, b, e, alpha, beta) of Besiroglu et al. 2024, Section 2."""
    alpha = beta = np.arange(0.0, 2.5, 0.5)
    e = np.arange(-1.0, 1.5, 0.5)
    a = b = np.arange(0.0, 30.0, 5.0)
    return np.array([(a_, b_, e_, al, be) for al, be, e_, a_, b_ in
                     itertools.product(alpha, beta, e, a, b)])


@dataclass(frozen=True, eq=False)
class _HuberLogObjective:
    """sum_i w_i Huber_delta(LSE(a - alpha x_i, b - beta y_i, e) - log L_i) / delta, batched.

    Parameters are (a', b', e, alpha, beta) with a' = a - alpha mean(log N) and
    b' = b - beta mean(log D): centring log N and log D removes most of the a-alpha and b-beta
    correlation that makes the problem ill-conditioned; dividing by delta puts the objective
    near 1 per point so absolute tolerances mean the same on every data set.
    """

    x: np.ndarray  # log N - mean, (n,)
    y: np.ndarray  # log D - mean, (n,)
    target: np.ndarray  # log loss, (n,)
    weights: np.ndarray | None  # (S, n) a weight per point for each batch row; None: all 1
    delta: float

    def __call__(self, th: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.empty(th.shape[0])
        g = np.empty((th.shape[0], 5))
        # blocks of ~64k points stay in cache; one pass over 4,500 x 240 would not
        step = max(1, 65536 // self.x.size)
        for i in range(0, th.shape[0], step):
            w = None if self.weights is None else self.weights[rows[i:i + step]]
            f[i:i + step], g[i:i + step] = self._block(th[i:i + step], w)
        return f, g

    def _block(self, th: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta = th.T
        # u1 = exp(a' - alpha x - e), u2 = exp(b' - beta y - e): the LSE relative to e, so
        # log prediction = e + log(1 + u1 + u2) needs two exponentials per point, not three
        # (an overflow gives f = inf, which the line search rejects)
        u1 = np.multiply(alpha[:, None], -self.x)
        u1 += (a - e)[:, None]
        np.exp(u1, out=u1)
        u2 = np.multiply(beta[:, None], -self.y)
        u2 += (b - e)[:, None]
        np.exp(u2, out=u2)
        s = u1 + u2
        s += 1.0
        r = np.log(s)
        r += e[:, None] - self.target  # residual r = log predicted - log observed
        # Huber(r) = c (r - c/2) with c = clip(r, -delta, delta); dHuber/dr = c
        c = np.maximum(r, -self.delta)
        np.minimum(c, self.delta, out=c)
        r -= 0.5 * c
        r *= c
        if w is not None:
            r *= w
            c *= w
        f = r.sum(1) / self.delta
        c /= s  # times d(log(1 + u1 + u2))/du = 1 / s
        u1 *= c  # dloss/da'; dloss/dalpha = -x times it
        u2 *= c
        g = np.empty((th.shape[0], 5))
        g[:, 0] = u1.sum(1)
        g[:, 3] = -(u1 @ self.x)
        g[:, 1] = u2.sum(1)
        g[:, 4] = -(u2 @ self.y)
        g[:, 2] = c.sum(1)  # de: the softmax weight of the E term is 1 / s
        g /= self.delta
        return f, g


def huber_log_objective(params: np.ndarray, runs: Runs, delta: float = HUBER_DELTA) -> np.ndarray:
    """Epoch AI's objective sum_i Huber_delta(log L_pred - log L_i) at params (..., 5) =
    (a, b, e, alpha, beta), in their units (not divided by delta)."""
    p = np.atleast_2d(np.asarray(params, dtype=float))
    pred = np.logaddexp(np.logaddexp(p[:, [0]] - p[:, [3]] * np.log(runs.n),
                                     p[:, [1]] - p[:, [4]] * np.log(runs.d)), p[:, [2]])
    r = np.abs(pred - np.log(runs.loss))
    h = np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).sum(axis=1)
    return h if np.ndim(params) > 1 else h[0]


@dataclass(frozen=True, eq=False)
class Approach3Fit:
    """The best of all starts, the distinct optima found, and bootstrap samples of the law."""

    law: ChinchillaLaw
    objective: float  # sum of Huber losses at the optimum (Epoch AI's units)
    points: int
    starts: int
    starts_converged: int  # starts stopped by a tolerance rather than the iteration limit
    starts_at_optimum: int  # starts that ended within 1e-9 (relative) of the best objective
    minima: np.ndarray  # (K, 6): distinct end points (a, b, e, alpha, beta, objective), best first
    seconds: float  # wall time of the multi-start fit
    samples: np.ndarray | None = None  # (B, 5) bootstrap E, A, B, alpha, beta
    confidence: float = 0.95
    delta: float = HUBER_DELTA
    runs: Runs | None = field(default=None, repr=False)

    def sample_law(self) -> ChinchillaLaw | None:
        """The bootstrap laws as one ChinchillaLaw whose fields are arrays (B,)."""
        if self.samples is None:
            return None
        return ChinchillaLaw(*self.samples.T)

    def estimates(self, budget: float | None = None) -> dict[str, Estimate]:
        """E, A, B, alpha, beta, a, b, G; and N_opt, D_opt, tokens per parameter and the
        predicted loss of that plan at `budget` (default: the largest C in the data)."""
        if budget is None:
            if self.runs is None:
                raise ValueError("no runs recorded with this fit: pass a budget")
            budget = float(self.runs.c.max())
        law, s = self.law, self.sample_law()
        out: dict[str, Estimate] = {}
        for name in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
            out[name] = estimate(getattr(law, name), None if s is None else getattr(s, name),
                                 self.confidence)
        n_opt, d_opt = law.n_opt(budget), law.d_opt(budget)
        derived = {
            "n_opt": (n_opt, None if s is None else s.n_opt(budget)),
            "d_opt": (d_opt, None if s is None else s.d_opt(budget)),
            "tokens_per_parameter": (d_opt / n_opt,
                                     None if s is None else s.tokens_per_parameter(budget)),
            # the loss of this plan (N_opt, D_opt) under each bootstrap law
            "loss_opt": (law.loss(n_opt, d_opt), None if s is None else s.loss(n_opt, d_opt)),
        }
        for name, (value, samples) in derived.items():
            out[name] = estimate(float(value), samples, self.confidence)
        return out


def _distinct_minima(params: np.ndarray, values: np.ndarray, limit: int,
                     tol: float = 1e-2) -> np.ndarray:
    """Up to `limit` end points, best first, no two closer than tol (max norm)."""
    picked: list[int] = []
    for i in np.argsort(values, kind="stable"):
        if not np.isfinite(values[i]):
            break
        if all(np.abs(params[i] - params[j]).max() > tol for j in picked):
            picked.append(int(i))
            if len(picked) == limit:
                break
    return np.array(picked, dtype=int)


def fit_approach3(runs: Runs, *, delta: float = HUBER_DELTA, starts: np.ndarray | None = None,
                  bootstrap: int = 0, seed: int = 0, confidence: float = 0.95,
                  bootstrap_restarts: int = 8, max_iter: int = 1000,
                  ftol: float = 1e-11) -> Approach3Fit:
    """Hoffmann et al. Approach 3 by Epoch AI's procedure, every start run to convergence.

    starts: (S, 5) initial (a, b, e, alpha, beta); default `epoch_grid()` (4,500 starts).
    Bootstrap: each replicate (runs resampled with replacement, as multinomial weights) restarts
    from the `bootstrap_restarts` best distinct optima of the full fit and keeps its best.
    """
    if len(runs) < 10:
        raise UserError(f"{runs.source}: Approach 3 fits 5 parameters and needs at least 10 runs, "
                        f"found {len(runs)}; add runs")
    if np.unique(runs.n).size < 3 or np.unique(runs.d).size < 3:
        raise UserError(f"{runs.source}: Approach 3 needs at least 3 distinct model sizes and 3 "
                        "distinct token counts; vary N and D across runs")
    x_mean, y_mean = np.log(runs.n).mean(), np.log(runs.d).mean()

    def to_solver(p: np.ndarray) -> np.ndarray:
        q = np.array(p, dtype=float)
        q[:, 0] -= q[:, 3] * x_mean
        q[:, 1] -= q[:, 4] * y_mean
        return q

    def from_solver(q: np.ndarray) -> np.ndarray:
        p = np.array(q, dtype=float)
        p[:, 0] += p[:, 3] * x_mean
        p[:, 1] += p[:, 4] * y_mean
        return p

    def objective(weights: np.ndarray | None) -> _HuberLogObjective:
        return _HuberLogObjective(np.log(runs.n) - x_mean, np.log(runs.d) - y_mean,
                                  np.log(runs.loss), weights, delta)

    init = epoch_grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    t0 = time.perf_counter()
    res = minimize_batched(objective(None), to_solver(init),
                           max_iter=max_iter, ftol=ftol)
    seconds = time.perf_counter() - t0
    values = np.where(np.isfinite(res.fun), res.fun, np.inf)
    best = int(np.argmin(values))
    ends = from_solver(res.x)
    picked = _distinct_minima(res.x, values, limit=max(bootstrap_restarts, 1))
    minima = np.concatenate([ends[picked], (values[picked] * delta)[:, None]], axis=1)
    a, b, e, alpha, beta = ends[best]
    law = ChinchillaLaw(float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha),
                        float(beta))
    at_opt = int((values <= values[best] + 1e-9 * max(abs(values[best]), 1.0)).sum())
    samples = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        counts = resample_counts(len(runs), bootstrap, rng)
        k = picked.size
        # row r*k + j: replicate r started from optimum j
        boot = minimize_batched(objective(np.repeat(counts, k, axis=0)),
                                np.tile(res.x[picked], (bootstrap, 1)), max_iter=max_iter,
                                ftol=ftol)
        fun = np.where(np.isfinite(boot.fun), boot.fun, np.inf).reshape(bootstrap, k)
        choice = fun.argmin(axis=1)
        q = from_solver(boot.x).reshape(bootstrap, k, 5)[np.arange(bootstrap), choice]
        samples = np.stack([np.exp(q[:, 2]), np.exp(q[:, 0]), np.exp(q[:, 1]), q[:, 3], q[:, 4]],
                           axis=1)
    return Approach3Fit(law, float(values[best] * delta), len(runs), init.shape[0],
                        int(res.converged.sum()), at_opt, minima, seconds, samples, confidence,
                        delta, runs)
