"""L-BFGS over a batch of independent problems at once, in numpy.

Each row of the batch is its own minimisation (its own start, or its own bootstrap weights); rows
share nothing but the loop, so one vectorised objective call evaluates every row still running.
This is what makes the 4,500-start grid of Hoffmann et al. 2022 ("Training Compute-Optimal Large
Language Models", arXiv:2203.15556, Section 3.3) and Besiroglu et al. 2024 ("Chinchilla Scaling:
A replication attempt", arXiv:2404.10102, Section 2) cheap: one scipy call per start spends its
time in Python overhead, not arithmetic.

The method is Nocedal and Wright, "Numerical Optimization" (2006), Algorithm 7.4 (the two-loop
recursion) and 7.5 (L-BFGS), with a backtracking Armijo line search (Algorithm 3.1); a curvature
pair with s.y <= 0 is not stored, which keeps every inverse-Hessian estimate positive definite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["BatchedResult", "minimize_batched"]

# f(x, rows) -> (values (k,), gradients (k, p)) of batch rows `rows` (k,) at points x (k, p)
BatchedObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class BatchedResult:
    x: np.ndarray  # (S, p) final points
    fun: np.ndarray  # (S,) final values
    grad: np.ndarray  # (S, p) final gradients
    iterations: np.ndarray  # (S,) iterations each row ran
    converged: np.ndarray  # (S,) stopped by a tolerance or a failed line search, not max_iter
    evaluations: int  # objective evaluations summed over rows


def _two_loop(g: np.ndarray, s: np.ndarray, y: np.ndarray, rho: np.ndarray, gamma: np.ndarray,
              newest: int) -> np.ndarray:
    """H g for the L-BFGS inverse Hessian H of each row; s, y (k, m, p), rho (k, m), slots in a
    ring whose newest entry is `newest`; an empty or rejected slot has rho = 0 and drops out."""
    m = s.shape[1]
    order = [(newest - j) % m for j in range(m)]  # newest first
    q = g.copy()
    alphas = []
    for j in order:
        a = rho[:, j] * np.einsum("kp,kp->k", s[:, j], q)
        q -= a[:, None] * y[:, j]
        alphas.append(a)
    r = gamma[:, None] * q  # H0 = gamma I, gamma = s.y / y.y of the newest pair
    for j, a in zip(reversed(order), reversed(alphas), strict=True):
        b = rho[:, j] * np.einsum("kp,kp->k", y[:, j], r)
        r += (a - b)[:, None] * s[:, j]
    return r


def minimize_batched(fun: BatchedObjective, x0: np.ndarray, *, memory: int = 10,
                     max_iter: int = 2000, gtol: float = 1e-9, ftol: float = 1e-13,
                     c1: float = 1e-4, max_backtracks: int = 60) -> BatchedResult:
    """Minimise S independent problems from the S rows of x0 (S, p) by L-BFGS.

    Trial points far out may overflow; the line search rejects them, so the floating-point
    warnings they raise are silenced here.

    A row stops when its largest gradient entry is below gtol, when one step lowers f by less than
    ftol * max(|f|, 1) (the scipy L-BFGS-B test), when no step along its search direction lowers f,
    or after max_iter iterations.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _minimize(fun, np.array(x0, dtype=float), memory, max_iter, gtol, ftol, c1,
                         max_backtracks)


def _minimize(fun: BatchedObjective, x: np.ndarray, memory: int, max_iter: int, gtol: float,
              ftol: float, c1: float, max_backtracks: int) -> BatchedResult:
    S, p = x.shape
    f, g = fun(x, np.arange(S))
    evaluations = S
    s_hist = np.zeros((S, memory, p))
    y_hist = np.zeros((S, memory, p))
    rho = np.zeros((S, memory))
    # first step: steepest descent of length at most 1 (as L-BFGS-B's first iteration)
    gamma = 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1.0)
    iterations = np.zeros(S, dtype=int)
    converged = ~np.isfinite(f) | (np.abs(g).max(axis=1) < gtol)
    active = ~converged
    for it in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        slot = it % memory
        newest = (it - 1) % memory
        gr = g[rows]
        d = -_two_loop(gr, s_hist[rows], y_hist[rows], rho[rows], gamma[rows], newest)
        slope = np.einsum("kp,kp->k", gr, d)
        uphill = ~(slope < 0)
        if uphill.any():  # a stale curvature model: restart along -g
            d[uphill] = -gr[uphill] * gamma[rows[uphill], None]
            slope[uphill] = np.einsum("kp,kp->k", gr[uphill], d[uphill])
        # a direction that overflowed cannot be searched: such a row stops where it is
        lost = ~np.isfinite(d).all(axis=1)
        d[lost] = 0.0
        slope[lost] = 0.0
        t = np.ones(rows.size)
        x_new = x[rows] + d
        f_new, g_new = fun(x_new, rows)
        evaluations += rows.size
        need = ~(f_new <= f[rows] + c1 * t * slope) & ~lost
        for _ in range(max_backtracks):
            if not need.any():
                break
            j = np.flatnonzero(need)
            # minimiser of the quadratic through f(0), f'(0) and f(t), kept within [0.1 t, 0.5 t]
            df = np.where(np.isfinite(f_new[j]), f_new[j] - f[rows[j]] - slope[j] * t[j], np.inf)
            t_q = -slope[j] * t[j] ** 2 / (2.0 * np.maximum(df, 1e-300))
            t[j] = np.clip(t_q, 0.1 * t[j], 0.5 * t[j])
            x_new[j] = x[rows[j]] + t[j, None] * d[j]
            f_new[j], g_new[j] = fun(x_new[j], rows[j])
            evaluations += j.size
            need[j] = ~(f_new[j] <= f[rows[j]] + c1 * t[j] * slope[j])
        failed = need | lost
        ok = ~failed
        step = x_new - x[rows]
        dy = g_new - gr
        sy = np.einsum("kp,kp->k", step, dy)
        yy = np.einsum("kp,kp->k", dy, dy)
        keep = ok & (yy > 0) & (sy > 1e-12 * np.sqrt(yy * np.einsum("kp,kp->k", step, step)))
        upd = rows[keep]
        s_hist[upd, slot] = step[keep]
        y_hist[upd, slot] = dy[keep]
        rho[upd, slot] = 1.0 / sy[keep]
        gamma[upd] = sy[keep] / yy[keep]
        # rows whose pair was rejected keep a zero slot: rho = 0 removes it from the recursion
        rej = rows[~keep]
        s_hist[rej, slot] = 0.0
        y_hist[rej, slot] = 0.0
        rho[rej, slot] = 0.0
        moved = rows[ok]
        decrease = f[moved] - f_new[ok]
        scale = np.maximum(np.maximum(np.abs(f[moved]), np.abs(f_new[ok])), 1.0)
        x[moved] = x_new[ok]
        f[moved] = f_new[ok]
        g[moved] = g_new[ok]
        iterations[rows] += 1
        done = np.zeros(rows.size, dtype=bool)
        done[ok] = (decrease <= ftol * scale) | (np.abs(g_new[ok]).max(axis=1) < gtol)
        done |= failed
        converged[rows[done]] = True
        active[rows[done]] = False
    return BatchedResult(x, f, g, iterations, converged, evaluations)
