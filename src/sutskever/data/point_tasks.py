"""Fixed, cached data sets of the Pointer Networks tasks as padded tensors.

Each (task, n, split) is one fixed set of uniform random points (seeded by the split, not by the
run, so every run of a recipe sees the same training set and is scored on the same test set, as
in the paper's fixed 1M-example training set). Targets are computed by the exact solvers in
`sutskever.data.geometry` / `sutskever.data.tsp` once, then cached as .npz under
`$SUTSKEVER_CACHE` (default ~/.cache/sutskever).

Output sequences use the Ptr-Net slot convention: slot 0 = END, slot i = point i-1; a target is
the slots of the solution followed by END, padded with -100.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sutskever.data.geometry import make_targets, random_points

PAD = -100
SPLIT_SEEDS = {"train": 1_000, "valid": 2_000, "test": 3_000}
CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("SUTSKEVER_CACHE", Path.home() / ".cache" / "sutskever"))


@dataclass
class PointSet:
    """`points` (N, n, 2) float32 and `targets` (N, T) int64 slot sequences padded with -100."""

    task: str
    points: torch.Tensor
    targets: torch.Tensor

    @property
    def n(self) -> int:
        return self.points.shape[1]

    def solutions(self) -> list[list[int]]:
        """The targets as lists of 0-based point indices (END and padding removed)."""
        return [[s - 1 for s in row if s > 0] for row in self.targets.tolist()]


def encode_targets(sequences: list[list[int]]) -> np.ndarray:
    """0-based point-index sequences -> (N, T) slots (+1), END (0) appended, padded with -100."""
    length = max(len(s) for s in sequences) + 1
    out = np.full((len(sequences), length), PAD, dtype=np.int64)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = np.asarray(seq, dtype=np.int64) + 1
        out[i, len(seq)] = 0
    return out


def load_point_set(task: str, n: int, count: int, split: str) -> PointSet:
    """The fixed `split` set of `count` instances of `task` with `n` points (cached on disk)."""
    seed = SPLIT_SEEDS[split] + n
    key = f"{task}-n{n}-N{count}-seed{seed}-v{CACHE_VERSION}"
    path = cache_dir() / "pointer-networks" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                return PointSet(task, torch.from_numpy(f["points"]), torch.from_numpy(f["targets"]))
        except (OSError, ValueError, KeyError, EOFError):
            path.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt, not trusted
    points = random_points(count, n, seed)
    targets = encode_targets(make_targets(task, points))
    _atomic_savez(path, points=points, targets=targets,
                  checksum=np.frombuffer(hashlib.sha256(points.tobytes()).digest(), np.uint8))
    return PointSet(task, torch.from_numpy(points), torch.from_numpy(targets))


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
