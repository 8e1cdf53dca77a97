"""Tests for the Pointer Network family (arXiv:1506.03134) and its greedy / beam search."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from sutskever.models.pointer_network import HEADS, PointerNet, PointerNetConfig
from sutskever.models.search import beam_search, greedy_decode

torch.set_num_threads(1)


def make(head: str = "pointer", hidden: int = 32, seed: int = 0, **kw) -> PointerNet:
    torch.manual_seed(seed)
    return PointerNet(PointerNetConfig(hidden=hidden, head=head, max_points=10, **kw))


def sequence_log_probs(model: PointerNet, points: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Total log-prob of each slot sequence in seqs (S, T) (-100 padded) per example: (B, S)."""
    B, S = points.shape[0], seqs.shape[0]
    targets = seqs.repeat(B, 1)  # (B*S, T)
    with torch.no_grad():
        logits = model(points.repeat_interleave(S, 0), targets)  # (B*S, T, n+1)
    lp = logits.log_softmax(-1).gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    return (lp * (targets != -100)).sum(-1).view(B, S)


@pytest.mark.parametrize("head", HEADS)
def test_forward_shapes_and_matches_stepping(head: str) -> None:
    model = make(head).eval()
    points = torch.rand(3, 5, 2, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor(
        [[1, 2, 3, 0, -100, -100], [5, 4, 3, 2, 1, 0], [0, -100, -100, -100, -100, -100]]
    )
    logits = model(points, targets)
    assert logits.shape == (3, 6, 6)
    assert torch.isfinite(logits).all()
    state = model.encode(points)
    prev = torch.zeros(3, dtype=torch.long)  # START
    for t in range(targets.shape[1]):
        log_probs, state = model.step(state, prev)
        assert log_probs.shape == (3, 6)
        assert (log_probs - logits[:, t].log_softmax(-1)).abs().max() < 1e-5
        prev = targets[:, t].clamp_min(0)


def test_pointer_head_output_size_follows_input_length() -> None:
    model = make("pointer")  # max_points=10 does not bound the pointer head
    targets = torch.zeros(2, 1, dtype=torch.long)
    for n in (1, 7, 23):
        assert model(torch.rand(2, n, 2), targets).shape == (2, 1, n + 1)


@pytest.mark.parametrize("head", ["softmax", "attention"])
def test_fixed_vocabulary_heads_reject_too_many_points(head: str) -> None:
    model = make(head)
    assert model(torch.rand(2, 10, 2), torch.zeros(2, 3, dtype=torch.long)).shape == (2, 3, 11)
    with pytest.raises(ValueError, match="max_points"):
        model(torch.rand(2, 11, 2), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="max_points"):
        model.encode(torch.rand(2, 11, 2))


@pytest.mark.parametrize("head", HEADS)
def test_init_within_scale(head: str) -> None:
    model = make(head, init_scale=0.05)
    for name, p in model.named_parameters():
        if name.startswith("embed."):  # PyTorch's default init, see the model docstring
            assert p.abs().max() <= 3**-0.5
            continue
        assert p.abs().max() <= 0.05
        if p.numel() >= 64:  # actually uniform over the range, not e.g. zero
            assert p.abs().max() > 0.04


@pytest.mark.parametrize("n", [1, 2, 3, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_permutation_constraint_gives_permutations(n: int, seed: int) -> None:
    model = make(seed=seed)
    points = torch.rand(5, n, 2)
    outs = greedy_decode(model, points, max_len=2, constraint="permutation")
    for beam in (1, 3, 10, 50):  # 10 and 50 exceed the number of tours for small n
        outs += beam_search(model, points, beam, max_len=2, constraint="permutation")
    assert len(outs) == 5 * 5
    for out in outs:
        assert sorted(out) == list(range(n))


def test_beam_equals_exhaustive_search() -> None:
    model = make(seed=3, hidden=16).double()
    n = 4
    points = torch.rand(6, n, 2, dtype=torch.float64)
    perms = list(itertools.permutations(range(1, n + 1)))
    seqs = torch.tensor([list(p) + [0] for p in perms])  # (24, n+1), END last
    scores = sequence_log_probs(model, points, seqs)  # (6, 24)
    best = [[s - 1 for s in perms[i]] for i in scores.argmax(-1).tolist()]
    assert best == beam_search(model, points, 24, max_len=n + 1, constraint="permutation")
    assert best == beam_search(model, points, 40, max_len=n + 1, constraint="permutation")
    # greedy (= beam 1) is not exhaustive here, so the check above has teeth
    greedy = greedy_decode(model, points, n + 1, constraint="permutation")
    assert greedy != best


@pytest.mark.parametrize("constraint", ["none", "permutation"])
def test_beam_size_one_is_greedy(constraint: str) -> None:
    model = make(seed=4)
    points = torch.rand(8, 5, 2)
    for max_len in (3, 8):
        greedy = greedy_decode(model, points, max_len, constraint)
        assert greedy == beam_search(model, points, 1, max_len, constraint)


class MarkovDecoder(torch.nn.Module):
    """Toy model with the encode/step API: log p(slot | t, prev) read from a random table, so
    exact scores of every output are easy to enumerate (points only fix the batch and n)."""

    def __init__(self, logits: torch.Tensor) -> None:  # (B, T, n+1, n+1)
        super().__init__()
        self.logits = logits

    def encode(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        B = points.shape[0]
        return {"ex": torch.arange(B), "t": torch.zeros(B, dtype=torch.long)}

    def step(self, state: dict, prev: torch.Tensor) -> tuple[torch.Tensor, dict]:
        lp = self.logits[state["ex"], state["t"], prev].log_softmax(-1)
        return lp, {"ex": state["ex"], "t": state["t"] + 1}

    def score(self, ex: int, seq: list[int]) -> float:
        prev, total = 0, 0.0
        for t, s in enumerate(seq):
            total += self.logits[ex, t, prev].log_softmax(-1)[s].item()
            prev = s
        return total


@pytest.mark.parametrize("end_bias", [-3.0, float("-inf")])
def test_unconstrained_beam_is_exact_with_a_wide_beam(end_bias: float) -> None:
    """Variable-length outputs: with beam >= all hypotheses, beam search returns the best finished
    output (sum of log-probs); if END is impossible, the best live one at max_len."""
    B, n, max_len = 32, 3, 4
    logits = 2.0 * torch.randn(B, max_len, n + 1, n + 1, generator=torch.Generator().manual_seed(6))
    logits[..., 0] += end_bias  # make END rarer (or impossible) so long outputs compete
    model = MarkovDecoder(logits.double())
    points = torch.zeros(B, n, 2)
    if end_bias > float("-inf"):  # every output finishing within max_len: 0..3 slots, then END
        seqs = [
            list(p) + [0] for k in range(max_len) for p in itertools.product((1, 2, 3), repeat=k)
        ]
    else:  # nothing finishes: every live output of max_len slots
        seqs = [list(p) for p in itertools.product((1, 2, 3), repeat=max_len)]
    best = [[s - 1 for s in max(seqs, key=lambda q: model.score(i, q)) if s] for i in range(B)]
    assert any(len(b) > 0 for b in best)  # the reference is not trivially "END at once"
    # beam 128 >= 40 finished + 81 live hypotheses: nothing is ever pruned, the search is exact
    assert best == beam_search(model, points, 128, max_len=max_len)
    assert greedy_decode(model, points, max_len) == beam_search(model, points, 1, max_len)


def test_search_restores_training_flag() -> None:
    model = make()
    points = torch.rand(2, 4, 2)
    model.train()
    greedy_decode(model, points, 5)
    beam_search(model, points, 3, 5)
    assert model.training
    model.eval()
    beam_search(model, points, 3, 5, constraint="permutation")
    assert not model.training


def test_pointer_head_overfits_sort_by_x() -> None:
    torch.manual_seed(0)
    points = torch.rand(64, 5, 2)
    order = points[..., 0].argsort(-1) + 1  # slots sorted by x
    targets = torch.cat([order, torch.zeros(64, 1, dtype=torch.long)], 1)  # then END
    model = PointerNet(PointerNetConfig(hidden=64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        logits = model(points, targets)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.5  # ~ log(6) at init
    assert losses[-1] < 0.1  # measured ~0.006-0.016 over seeds
    out = greedy_decode(model, points, max_len=6)
    exact = sum(o == (t - 1).tolist() for o, t in zip(out, order, strict=True))
    assert exact >= 56
