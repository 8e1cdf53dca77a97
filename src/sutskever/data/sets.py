"""Sets of numbers to sort: the artificial task of "Order Matters" (Vinyals, Bengio, Kudlur,
ICLR 2016, arXiv:1511.06391), section 4.3.

An instance is a set of n floats uniform in [0, 1); its target is the permutation that sorts the
set in increasing order, written as pointers into the set. Everything is generated from a seed
(no solver, no download), so nothing is cached on disk: a set of a million instances takes well
under a second to make.

Targets use the Ptr-Net slot convention of `sutskever.data.point_tasks` and
`sutskever.models.search`: slot 0 = END, slot i = element i-1. A target is the n slots of the
elements in increasing order of value, then END (always exactly n + 1 long, so no padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

END = 0
# Generator keys. The fixed sets are keyed by split and n, not by the run, so every run of a
# recipe is scored on the same sets; the training stream is keyed by the run (`random_batch`).
SPLIT_SEEDS = {"train": 1_000, "valid": 2_000, "test": 3_000}
STREAM = 4_000  # the key of the training stream of fresh sets


@dataclass
class SortingSet:
    """`values` (N, n, 1) float32 sets and `targets` (N, n+1) int64 slot sequences."""

    values: torch.Tensor
    targets: torch.Tensor

    @property
    def n(self) -> int:
        return self.values.shape[1]

    def __len__(self) -> int:
        return self.values.shape[0]

    def solutions(self) -> list[list[int]]:
        """The sorting permutations as lists of 0-based element indices (END removed)."""
        return (self.targets[:, :-1] - 1).tolist()


def sorting_targets(values: torch.Tensor) -> torch.Tensor:
    """(N, n, 1) or (N, n) values -> (N, n+1) slots: argsort + 1, then END."""
    if values.dim() == 3:
        values = values[..., 0]
    order = values.argsort(dim=-1, stable=True) + 1  # (N, n), slots of elements smallest first
    return torch.cat([order, order.new_full((order.shape[0], 1), END)], dim=1)


def random_sets(count: int, n: int, rng: np.random.Generator) -> SortingSet:
    """`count` sets of `n` floats uniform in [0, 1) drawn from `rng`, with their targets."""
    if n < 1:
        raise ValueError(f"a set needs at least one element, got n={n}")
    values = torch.from_numpy(rng.random((count, n, 1), dtype=np.float32))  # (N, n, 1)
    return SortingSet(values, sorting_targets(values))


def fixed_set(n: int, count: int, split: str) -> SortingSet:
    """The fixed `split` set ('valid' or 'test', or 'train' for a finite training set) of `count`
    sets of `n` elements; the same for every run."""
    return random_sets(count, n, np.random.default_rng([SPLIT_SEEDS[split], n]))


def random_batch(n: int, batch_size: int, seed: int, step: int) -> SortingSet:
    """A fresh training batch that is a pure function of (seed, step). Its generator is keyed by
    (STREAM, seed, step), hashed by numpy's SeedSequence, so no two streams or steps share
    numbers and no batch repeats a fixed set."""
    return random_sets(batch_size, n, np.random.default_rng([STREAM, seed, step]))
