"""Figures: learning curves from metrics.jsonl, point-set instances, paper-vs-ours claims."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curves(run_dir: str | Path) -> Path | None:
    """learning_curves.png: train loss against step, and every validation metric."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r.get("split") == "train"]
    valid = [r for r in rows if r.get("split") == "valid"]
    if not train:
        return None
    keys = sorted({k for r in valid for k, v in r.items()
                   if k not in ("step", "epoch", "split") and isinstance(v, (int, float))})
    fig, axes = plt.subplots(1, 1 + min(len(keys), 3), figsize=(4.5 * (1 + min(len(keys), 3)),
                                                                3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train])
    ax.set(xlabel="step", ylabel="train loss", yscale="log", title="training loss")
    for ax, key in zip(axes[0, 1:], keys[:3], strict=False):
        pts = [(r["step"], r[key]) for r in valid if key in r]
        ax.plot(*zip(*pts, strict=True), marker="o")
        ax.set(xlabel="step", ylabel=key, title=f"valid {key}")
    fig.tight_layout()
    out = run_dir / "learning_curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_point_instances(path: str | Path, task: str, points: np.ndarray,
                         targets: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]]
                         ) -> Path:
    """A row of test instances: the target (grey, thick) and the model's output (colour)."""
    k = len(points)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), squeeze=False)
    for ax, p, t, o in zip(axes[0], points, targets, outputs, strict=True):
        ax.scatter(p[:, 0], p[:, 1], s=12, c="k", zorder=3)
        _draw(ax, task, p, list(t), color="0.75", lw=4)
        _draw(ax, task, p, list(o), color="tab:red", lw=1.5)
        if task == "tsp":  # a tour is judged by its length (direction does not matter)
            got, best = _closed_length(p, o), _closed_length(p, t)
            ok = got <= best + 1e-9
            title = f"{got:.3f} (optimal {best:.3f})"
        else:
            ok = list(t) == list(o) if task != "delaunay" else _tri_set(t) == _tri_set(o)
            title = "correct" if ok else "wrong"
        ax.set_title(title, fontsize=9, color="tab:green" if ok else "tab:red")
        ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xticks=[], yticks=[], aspect="equal")
    fig.suptitle(f"{task}: target (grey) vs Ptr-Net output (red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _closed_length(p: np.ndarray, seq: Sequence[int]) -> float:
    cycle = [*seq, seq[0]] if len(seq) else []
    return float(np.linalg.norm(np.diff(p[cycle], axis=0), axis=1).sum()) if cycle else 0.0


def _tri_set(seq: Sequence[int]) -> set:
    return {tuple(sorted(seq[i:i + 3])) for i in range(0, len(seq) - len(seq) % 3, 3)}


def _draw(ax: plt.Axes, task: str, p: np.ndarray, seq: list[int], **style: object) -> None:
    seq = [i for i in seq if 0 <= i < len(p)]
    if not seq:
        return
    if task == "delaunay":
        for tri in _tri_set(seq):
            cycle = [*tri, tri[0]]
            ax.plot(p[cycle, 0], p[cycle, 1], **style)
        return
    cycle = [*seq, seq[0]]  # hull and tour are closed
    ax.plot(p[cycle, 0], p[cycle, 1], **style)


def plot_claims(path: str | Path, rows: Sequence[dict]) -> Path:
    """One panel per claim: the paper's number(s) beside ours (mean, spread over seeds)."""
    k = len(rows)
    fig, axes = plt.subplots(1, k, figsize=(3.0 * k, 3.2), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        labels, paper, ours, spread = [], [], [], []
        for part in row["bars"]:
            labels.append(part["label"])
            paper.append(np.nan if part["paper"] is None else part["paper"])
            ours.append(part["mean"])
            spread.append(part["std"])
        x = np.arange(len(labels))
        ax.bar(x - 0.2, paper, 0.4, label="paper", color="0.7")
        ax.bar(x + 0.2, ours, 0.4, yerr=spread, label="ours", color="tab:blue")
        ax.set_xticks(x, labels, fontsize=7, rotation=15)
        ax.set_title(row["id"], fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
