"""Greedy and batched beam search for pointer-style and token decoders.

Inference for "Pointer Networks" (Vinyals, Fortunato, Jaitly, 2015, arXiv:1506.03134), Section 3:
outputs are decoded with a beam search. For the TSP (Section 4.4) the paper restricts the beam to
valid tours; here that is `constraint="permutation"`. Convex hull and Delaunay outputs are left
unconstrained (`constraint="none"`), as in the paper.

Works with any model exposing the incremental API of `sutskever.models.pointer_network`:
``encode(points) -> state`` and ``step(state, prev_slots) -> (log_probs (B, n+1), state)``,
where slot 0 is END and slots 1..n are the points, and the state is a dict or tuple of tensors
with the batch on dim 0.

``max_len`` counts decoder steps, END included (the length T of a target sequence). With
``constraint="permutation"`` the length is always exactly n+1 (n points then END) and
``max_len`` is ignored. Outputs are lists of 0-based point indices (slot - 1), END stripped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor

END = 0
CONSTRAINTS = ("none", "permutation")
NEG_INF = float("-inf")


class IncrementalDecoder(Protocol):
    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def encode(self, points: Tensor) -> Any: ...

    def step(self, state: Any, prev_slots: Tensor) -> tuple[Tensor, Any]: ...


@contextmanager
def _eval_mode(model: IncrementalDecoder) -> Iterator[None]:
    """Eval mode and no_grad for the duration, restoring the caller's training flag."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _select(state: Any, idx: Tensor) -> Any:
    """Pick rows `idx` (on dim 0) of every tensor in a dict/tuple state."""
    if isinstance(state, dict):
        return {k: v.index_select(0, idx) for k, v in state.items()}
    return type(state)(v.index_select(0, idx) for v in state)


def _mask(log_probs: Tensor, visited: Tensor, constraint: str) -> Tensor:
    """Apply the decoding constraint: log_probs (R, n+1), visited (R, n+1) bool -> (R, n+1)."""
    if constraint == "none":
        return log_probs
    # permutation: no point twice; END only (and then forced) once every point is visited
    n = visited.shape[1] - 1
    all_visited = visited[:, 1:].sum(-1) == n  # (R,)
    blocked = visited.clone()
    blocked[:, END] = ~all_visited
    blocked[:, 1:] |= all_visited[:, None]
    return log_probs.masked_fill(blocked, NEG_INF)


def _to_points(slots: list[int]) -> list[int]:
    """Slot sequence -> 0-based point indices, cut at the first END."""
    out = []
    for s in slots:
        if s == END:
            break
        out.append(s - 1)
    return out


def _check(constraint: str) -> None:
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")


def greedy_decode(
    model: IncrementalDecoder, points: Tensor, max_len: int, constraint: str = "none"
) -> list[list[int]]:
    """Pick the most probable slot at every step. points (B, n, d) -> B lists of point indices."""
    _check(constraint)
    B, n = points.shape[:2]
    steps = n + 1 if constraint == "permutation" else max_len
    with _eval_mode(model):
        state = model.encode(points)
        prev = torch.full((B,), END, dtype=torch.long, device=points.device)  # START
        visited = torch.zeros(B, n + 1, dtype=torch.bool, device=points.device)
        done = torch.zeros(B, dtype=torch.bool, device=points.device)
        out = []
        for _ in range(steps):
            log_probs, state = model.step(state, prev)  # (B, n+1)
            prev = _mask(log_probs, visited, constraint).argmax(-1)  # (B,)
            prev = prev.masked_fill(done, END)
            out.append(prev)
            visited[torch.arange(B), prev] = True
            done |= prev == END
            if bool(done.all()):
                break
    seqs = torch.stack(out, 1).tolist() if out else [[] for _ in range(B)]
    return [_to_points(s) for s in seqs]


def beam_search(
    model: IncrementalDecoder,
    points: Tensor,
    beam_size: int,
    max_len: int,
    constraint: str = "none",
) -> list[list[int]]:
    """Beam search over slots (see `beam_core`); returns point indices per example."""
    _check(constraint)
    B, n = points.shape[:2]
    steps = n + 1 if constraint == "permutation" else max_len
    with _eval_mode(model):
        chosen = beam_core(model.step, model.encode(points), B, beam_size, steps, start=END,
                           end=END, constraint=constraint)
    return [_to_points(s) for s in chosen.tolist()]


def beam_search_tokens(model: Any, src: Tensor, src_len: Tensor, beam_size: int, max_len: int,
                       bos: int, eos: int) -> list[list[int]]:
    """Beam search for a token decoder (`encode(src, src_len)`, `step(state, prev)`): the best
    hypothesis per example, <eos> and after stripped. Beam 1 is greedy decoding."""
    with _eval_mode(model):
        chosen = beam_core(model.step, model.encode(src, src_len), src.shape[0], beam_size,
                           max_len, start=bos, end=eos)
    out = []
    for seq in chosen.tolist():
        out.append(seq[: seq.index(eos)] if eos in seq else seq)
    return out


def beam_core(step: Any, state: Any, B: int, beam_size: int, steps: int, start: int, end: int,
              constraint: str = "none") -> Tensor:
    """Beam search on the sum of log-probs, batched as B*beam_size rows (one `step` per time
    step); returns the chosen token sequences (B, t), `end` included when it was reached.

    A hypothesis that emits `end` is finished: it keeps its score and its beam slot but no longer
    grows. As scores only decrease, once the best beam of an example is finished no live one can
    overtake it and that example is done. The result is the best finished hypothesis per
    example, or the best live one if none finished within `steps`.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    K = beam_size
    state = _select(state, torch.arange(B).repeat_interleave(K).to(_device(state)))
    dev = _device(state)
    # only beam 0 is live at first, so the K copies don't produce K identical hypotheses
    scores = torch.full((B, K), NEG_INF, device=dev)
    scores[:, 0] = 0.0
    prev = torch.full((B * K,), start, dtype=torch.long, device=dev)
    finished = torch.zeros(B * K, dtype=torch.bool, device=dev)
    tokens = torch.zeros(B * K, 0, dtype=torch.long, device=dev)
    visited = stay = None
    for _ in range(steps):
        log_probs, state = step(state, prev)  # (B*K, V)
        V = log_probs.shape[-1]
        if stay is None:
            # a finished row can only "emit" `end` again at zero cost: its score stays
            stay = torch.full((V,), NEG_INF, device=dev)
            stay[end] = 0.0
            visited = torch.zeros(B * K, V, dtype=torch.bool, device=dev)
        log_probs = torch.where(finished[:, None], stay, _mask(log_probs, visited, constraint))
        # score(y_1..y_t) = score(y_1..y_{t-1}) + log p(y_t | y_<t, x)
        cand = scores[:, :, None] + log_probs.view(B, K, V)  # (B, K, V); -inf stays -inf
        # topk is sorted, so finite candidates always win over -inf (dead) ones
        scores, flat = cand.view(B, K * V).topk(K, dim=-1)  # (B, K)
        beam, tok = flat // V, flat % V  # (B, K) each
        rows = (torch.arange(B, device=dev)[:, None] * K + beam).view(-1)  # (B*K,)
        prev = tok.view(-1)
        state = _select(state, rows)
        tokens = torch.cat([tokens[rows], prev[:, None]], dim=1)  # (B*K, t)
        finished = finished[rows] | (prev == end)
        visited = visited[rows]
        visited[torch.arange(B * K, device=dev), prev] = True
        if bool(finished.view(B, K)[:, 0].all()):
            break
    # best finished hypothesis (with a finite score) per example, else the best live one
    ok = finished.view(B, K) & torch.isfinite(scores)
    masked = scores.masked_fill(~ok, NEG_INF)
    best = torch.where(ok.any(-1), masked.argmax(-1), scores.argmax(-1))  # (B,)
    return tokens.view(B, K, tokens.shape[1])[torch.arange(B, device=dev), best]  # (B, t)


def _device(state: Any) -> torch.device:
    first = next(iter(state.values())) if isinstance(state, dict) else state[0]
    return first.device
