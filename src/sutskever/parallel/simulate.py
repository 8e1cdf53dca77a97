"""GPipe's schedule, simulated from measured times, and the paper's numbers beside it.

GPipe (Huang et al. 2019, arXiv:1811.06965) section 2.3: with K stages and M micro-batches the
bubble, the fraction of a step each stage idles, is

    bubble(K, M) = (K - 1) / (M + K - 1)                                    (GPipe, section 2.3)

and Table 2 reports training throughput normalised to a baseline configuration. To predict
configurations beyond one machine, `simulate` replays the schedule as a dependency graph, an event
per (stage, micro-batch, phase):

    F[k, m] starts when F[k, m-1] ended and F[k-1, m] arrived (+ transfer time)
    B[k, m] starts when stage k's previous op ended (B[k, m+1], or F[k, M-1] for m = M-1) and
            B[k+1, m]'s gradient arrived (+ transfer time)

from per-stage forward and backward times and a transfer time per activation; the step ends
with B[0, 0]. Stage times come from per-layer times measured on this machine, cut into K stages
by the same balancer the engine uses, and scaled linearly with the micro-batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sutskever.parallel.partition import balance_by_cost
from sutskever.parallel.pipeline import Event

__all__ = ["PAPER_TABLE2", "PaperRow", "Transfer", "bubble_fraction", "ideal_throughput",
           "simulate", "simulated_table2", "stage_times"]


def bubble_fraction(stages: int, chunks: int) -> float:
    """(K-1)/(M+K-1): the idle fraction of each of K equal stages with M micro-batches."""
    return (stages - 1) / (chunks + stages - 1)


def ideal_throughput(stages: int, chunks: int) -> float:
    """Mini-batches per unit time with K equal stages, relative to one device: the model's
    work is split K ways, and each stage is busy M of every M+K-1 slots."""
    return stages * chunks / (chunks + stages - 1)


@dataclass(frozen=True)
class PaperRow:
    """A row of GPipe's Table 2: normalised throughput at (K, M), relative to `baseline`."""

    name: str
    baseline: tuple[int, int]          # the (K, M) the row is normalised to
    values: dict[tuple[int, int], float] = field(default_factory=dict)


# GPipe Table 2, the numbers in ../shared/PAPERS.md section 6 (the one place they are typed in).
PAPER_TABLE2 = (
    PaperRow("AmoebaNet, TPU", (2, 1), {(8, 1): 1.38, (8, 4): 1.72, (8, 32): 3.48}),
    PaperRow("Transformer-48, TPU", (2, 1), {(8, 32): 6.3}),
    PaperRow("Transformer, P100 (no NVLink)", (2, 32), {(2, 32): 1.0, (4, 32): 1.8,
                                                        (8, 32): 3.3}),
)


@dataclass(frozen=True)
class Transfer:
    """Time to pass one activation (or gradient) of b samples to a neighbour: latency + b *
    per_sample."""

    latency: float
    per_sample: float

    def time(self, samples: float) -> float:
        return self.latency + samples * self.per_sample


def simulate(forward: Sequence[float], backward: Sequence[float], chunks: int,
             transfer: float = 0.0) -> tuple[float, list[Event]]:
    """The GPipe step of stages with per-micro-batch `forward[k]`, `backward[k]` times: its
    duration and its events (times in seconds from the step's start)."""
    K, M = len(forward), chunks
    f_end = [[0.0] * M for _ in range(K)]
    b_end = [[0.0] * M for _ in range(K)]
    events: list[Event] = []
    for k in range(K):
        for m in range(M):
            ready = max(f_end[k][m - 1] if m else 0.0,
                        f_end[k - 1][m] + transfer if k else 0.0)
            f_end[k][m] = ready + forward[k]
            events.append(Event(k, 0, "forward", m, ready, f_end[k][m]))
    for k in reversed(range(K)):
        for m in reversed(range(M)):
            ready = max(b_end[k][m + 1] if m < M - 1 else f_end[k][M - 1],
                        b_end[k + 1][m] + transfer if k < K - 1 else 0.0)
            b_end[k][m] = ready + backward[k]
            events.append(Event(k, 0, "backward", m, ready, b_end[k][m]))
    return max(b_end[k][0] for k in range(K)), events


def stage_times(layer_forward: Sequence[float], layer_backward: Sequence[float], stages: int,
                samples: float) -> tuple[list[float], list[float]]:
    """Per-stage forward and backward times for a micro-batch of `samples`, from per-sample
    per-layer times, the layers cut into `stages` by the engine's balancer."""
    balance = balance_by_cost([f + b for f, b in zip(layer_forward, layer_backward, strict=True)],
                              stages)
    forward, backward, start = [], [], 0
    for count in balance:
        forward.append(samples * sum(layer_forward[start: start + count]))
        backward.append(samples * sum(layer_backward[start: start + count]))
        start += count
    return forward, backward


def simulated_table2(layer_forward: Sequence[float], layer_backward: Sequence[float],
                     transfer: Transfer, batch: int, stages: Sequence[int] = (2, 4, 8),
                     chunks: Sequence[int] = (1, 4, 32)) -> dict[tuple[int, int], float]:
    """Simulated throughput (mini-batches of `batch` samples per second) at each (K, M)."""
    out = {}
    for K in stages:
        for M in chunks:
            micro = batch / M
            f, b = stage_times(layer_forward, layer_backward, K, micro)
            duration, _ = simulate(f, b, M, transfer.time(micro))
            out[K, M] = 1.0 / duration
    return out
