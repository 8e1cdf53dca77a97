"""Figures of a scaling-law fit: isoFLOP curves, the compute-optimal frontier, residuals.

The panels follow Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models"
(arXiv:2203.15556), Figures 2-4 (envelope, isoFLOP parabolas, frontier), and Kaplan et al. 2020,
"Scaling Laws for Neural Language Models" (arXiv:2001.08361), Figure 1 (the three power laws).
Each function writes PNG files into a directory and returns their paths.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sutskever.scaling.chinchilla import (  # noqa: E402
    Approach1Fit,
    Approach2Fit,
    Approach3Fit,
    Frontier,
)
from sutskever.scaling.kaplan import KaplanFit  # noqa: E402

__all__ = ["plot_fit", "plot_approach1", "plot_approach2", "plot_approach3", "plot_kaplan"]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _band(ax: plt.Axes, c: np.ndarray, samples: np.ndarray, color: str, label: str) -> None:
    """Shade the central 95% of bootstrap curves samples (B, len(c))."""
    ok = np.isfinite(samples).all(axis=1)
    if ok.sum() >= 2:
        lo, hi = np.quantile(samples[ok], [0.025, 0.975], axis=0)
        ax.fill_between(c, lo, hi, color=color, alpha=0.2, lw=0, label=label)


def _frontier_panel(ax: plt.Axes, frontier: Frontier, samples: np.ndarray | None,
                    c_points: np.ndarray, n_points: np.ndarray, title: str) -> None:
    c = np.logspace(np.log10(c_points.min()) - 0.5, np.log10(c_points.max()) + 1.0, 100)
    ax.loglog(c, frontier.n_opt(c), color="C0", label=f"N_opt ~ C^{frontier.a:.3f}")
    ax.loglog(c, frontier.d_opt(c), color="C1", label=f"D_opt ~ C^{frontier.b:.3f}")
    if samples is not None:
        _band(ax, c, np.array([Frontier(a, k).n_opt(c) for a, k in samples]), "C0", "95% band")
        _band(ax, c, np.array([Frontier(a, k).d_opt(c) for a, k in samples]), "C1", None)
    ax.scatter(c_points, n_points, color="C0", s=18, zorder=3, label="N_opt per budget")
    ax.scatter(c_points, c_points / (6 * n_points), color="C1", s=18, zorder=3)
    ax.set(xlabel="training FLOPs C", ylabel="parameters / tokens", title=title)
    ax.legend(fontsize=8)


def plot_approach1(fit: Approach1Fit, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = fit.runs
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if runs is not None:
        sc = ax.scatter(runs.c, runs.loss, c=np.log10(runs.n), s=6, cmap="viridis", alpha=0.7)
        fig.colorbar(sc, ax=ax, label="log10 N")
    ax.plot(fit.flops, fit.loss, color="k", lw=1.5, marker=".", label="minimum-loss envelope")
    ax.set(xscale="log", xlabel="training FLOPs C", ylabel="loss",
           title="Approach 1: envelope over training curves")
    ax.legend(fontsize=8)
    paths = [_save(fig, out / "envelope.png")]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _frontier_panel(ax, fit.frontier, fit.samples, fit.flops, fit.n_opt, "Approach 1 frontier")
    paths.append(_save(fig, out / "frontier.png"))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogx(fit.flops, np.log(fit.n_opt) - np.log(fit.frontier.n_opt(fit.flops)), "o")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="training FLOPs C", ylabel="log N_opt - log fit",
           title="Approach 1 residuals of the power law")
    paths.append(_save(fig, out / "residuals.png"))
    return paths


def plot_approach2(fit: Approach2Fit, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(fit.parabolas)))
    for p, col in zip(fit.parabolas, colors, strict=True):
        n = np.logspace(np.log10(p.n.min()) - 0.1, np.log10(p.n.max()) + 0.1, 100)
        ax.scatter(p.n, p.loss, color=col, s=14)
        ax.plot(n, p.predict(n), color=col, lw=1, label=f"C={p.flops:.2g}")
        ax.scatter([p.n_opt], [p.loss_opt], color=col, marker="*", s=90, edgecolor="k", zorder=3)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss",
           title="Approach 2: isoFLOP curves and fitted parabolas")
    ax.legend(fontsize=7, ncol=2)
    paths = [_save(fig, out / "isoflop.png")]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    flops = np.array([p.flops for p in fit.parabolas])
    n_opt = np.array([p.n_opt for p in fit.parabolas])
    _frontier_panel(ax, fit.frontier, fit.samples, flops, n_opt, "Approach 2 frontier")
    paths.append(_save(fig, out / "frontier.png"))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for p, col in zip(fit.parabolas, colors, strict=True):
        ax.scatter(p.n, p.loss - p.predict(p.n), color=col, s=12)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss - parabola",
           title="Approach 2 residuals")
    paths.append(_save(fig, out / "residuals.png"))
    return paths


def plot_approach3(fit: Approach3Fit, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    law, runs = fit.law, fit.runs
    assert runs is not None
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sc = ax.scatter(runs.n, runs.loss, c=np.log10(runs.c), s=10, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="log10 C")
    budgets = np.logspace(np.log10(runs.c.min()), np.log10(runs.c.max()), 6)
    cmap = plt.cm.viridis
    lo, hi = np.log10(runs.c.min()), np.log10(runs.c.max())
    for c in budgets:
        n = np.logspace(np.log10(runs.n.min()) - 0.3, np.log10(runs.n.max()) + 0.3, 200)
        col = cmap((np.log10(c) - lo) / max(hi - lo, 1e-9))
        ax.plot(n, law.loss_at_flops(n, c), color=col, lw=1)
        ax.scatter([law.n_opt(c)], [law.loss(law.n_opt(c), law.d_opt(c))], marker="*",
                   color=col, edgecolor="k", s=80, zorder=3)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss",
           ylim=(runs.loss.min() * 0.95, np.quantile(runs.loss, 0.98) * 1.05),
           title="Approach 3: isoFLOP curves of the fitted law")
    paths = [_save(fig, out / "isoflop.png")]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    c = np.logspace(lo - 0.5, hi + 3.0, 100)
    ax.loglog(c, law.n_opt(c), color="C0", label=f"N_opt = G (C/6)^{law.a:.3f}")
    ax.loglog(c, law.d_opt(c), color="C1", label=f"D_opt ~ C^{law.b:.3f}")
    s = fit.sample_law()
    if s is not None:
        _band(ax, c, s.n_opt(c[:, None]).T, "C0", "95% band")
        _band(ax, c, s.d_opt(c[:, None]).T, "C1", None)
    ax.scatter(runs.c, runs.n, s=5, color="0.6", label="runs (N)")
    ax.set(xlabel="training FLOPs C", ylabel="parameters / tokens",
           title="Approach 3 compute-optimal frontier")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "frontier.png"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    resid = np.log(runs.loss) - np.log(law.loss(runs.n, runs.d))
    for ax, x, name in zip(axes, (runs.c, runs.n), ("training FLOPs C", "parameters N"),
                           strict=True):
        ax.scatter(x, resid, s=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name)
    axes[0].set(ylabel="log loss - log fit", title="Approach 3 residuals")
    paths.append(_save(fig, out / "residuals.png"))
    return paths


def plot_kaplan(fit: KaplanFit, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = fit.runs
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, part, all_x in zip(axes, (fit.n, fit.d, fit.c),
                               (None if runs is None else v for v in (runs.n, runs.d, runs.c)),
                               strict=True):
        if all_x is not None and runs is not None:
            ax.scatter(all_x, runs.loss, s=6, color="0.7", label="runs")
        ax.scatter(part.x, part.loss, s=16, color="C0", label="lower envelope")
        x = np.logspace(np.log10(part.x.min()) - 0.3, np.log10(part.x.max()) + 0.3, 100)
        ax.plot(x, part.law(x), color="C3",
                label=f"({part.law.x_c:.2g}/{part.variable})^{part.law.exponent:.3f}")
        ax.set(xscale="log", yscale="log", xlabel=part.variable, ylabel="loss",
               title=f"L({part.variable})")
        ax.legend(fontsize=8)
    paths = [_save(fig, out / "power_laws.png")]
    if runs is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        resid = np.log(runs.loss) - np.log(fit.joint.loss(runs.n, runs.d))
        for ax, x, name in zip(axes, (runs.n, runs.d), ("parameters N", "tokens D"),
                               strict=True):
            ax.scatter(x, resid, s=8)
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xscale="log", xlabel=name)
        axes[0].set(ylabel="log loss - log L(N, D)", title="Kaplan joint law residuals")
        paths.append(_save(fig, out / "residuals.png"))
    return paths


def plot_fit(fit: Approach1Fit | Approach2Fit | Approach3Fit | KaplanFit,
             out: str | Path) -> list[Path]:
    """The figures for any fit."""
    if isinstance(fit, Approach1Fit):
        return plot_approach1(fit, out)
    if isinstance(fit, Approach2Fit):
        return plot_approach2(fit, out)
    if isinstance(fit, Approach3Fit):
        return plot_approach3(fit, out)
    return plot_kaplan(fit, out)
