"""Tests for Read-Process-Write and the sorting task of "Order Matters" (arXiv:1511.06391)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sutskever import recipes
from sutskever.data.sets import SortingSet, fixed_set, random_batch, random_sets, sorting_targets
from sutskever.models.order_matters import ReadProcessWrite, ReadProcessWriteConfig
from sutskever.models.search import beam_search, greedy_decode
from sutskever.recipes.order_matters import ARMS, SortingData, decode, score

torch.set_num_threads(1)

MODELS = [("rpw", True), ("rpw", False), ("ptrnet", True), ("ptrnet", False)]


def make(arch: str = "rpw", glimpse: bool = True, hidden: int = 16, steps: int = 3,
         seed: int = 0) -> ReadProcessWrite:
    torch.manual_seed(seed)
    cfg = ReadProcessWriteConfig(hidden=hidden, arch=arch, process_steps=steps, glimpse=glimpse)
    return ReadProcessWrite(cfg).eval()


def sets(count: int, n: int, seed: int = 1) -> SortingSet:
    return random_sets(count, n, np.random.default_rng(seed))


def shuffled(values: torch.Tensor, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The same sets with their elements in another order: (values[:, perm], perm)."""
    perm = torch.randperm(values.shape[1], generator=torch.Generator().manual_seed(seed))
    return values[:, perm], perm


@pytest.mark.parametrize("steps", [0, 1, 5])
def test_process_state_is_invariant_to_the_order_of_the_set(steps: int) -> None:
    model = make(steps=steps, hidden=32)
    s = sets(8, 7)
    values2, _ = shuffled(s.values)
    assert not torch.equal(values2, s.values)
    with torch.no_grad():
        q = model.process_set(model.read_slots(s.values)[:, 1:])  # q*_P (B, 2H)
        q2 = model.process_set(model.read_slots(values2)[:, 1:])
        h, h2 = model.encode(s.values)["h"], model.encode(values2)["h"]
    assert q.shape == (8, 64)
    assert torch.allclose(q, q2, atol=1e-5)
    assert torch.allclose(h, h2, atol=1e-5)  # and so is the decoder's initial state
    if steps:
        assert q[:, 32:].abs().sum() > 0  # r_P really reads the memories


@pytest.mark.parametrize("arch", ["rpw", "ptrnet"])
def test_pointer_scores_follow_the_elements(arch: str) -> None:
    """Shuffling the set and relabelling the targets: RPW gives the same scores, moved with the
    elements; the Ptr-Net, which reads the set in order, does not."""
    model = make(arch)
    s = sets(4, 6)
    values2, perm = shuffled(s.values)
    targets2 = sorting_targets(values2)
    with torch.no_grad():
        logits = model(s.values, s.targets)  # (B, n+1, n+1)
        logits2 = model(values2, targets2)
    moved = logits[..., torch.cat([torch.zeros(1, dtype=torch.long), perm + 1])]  # slot order 2
    gap = (moved - logits2).abs().max().item()
    if arch == "rpw":
        assert gap < 1e-5
    else:
        assert gap > 1e-3


@pytest.mark.parametrize("arch,glimpse", MODELS)
def test_forward_shapes_and_matches_stepping(arch: str, glimpse: bool) -> None:
    model = make(arch, glimpse)
    s = sets(3, 5)
    logits = model(s.values, s.targets)
    assert logits.shape == (3, 6, 6) and torch.isfinite(logits).all()
    state = model.encode(s.values)
    prev = torch.zeros(3, dtype=torch.long)  # START
    for t in range(s.targets.shape[1]):
        log_probs, state = model.step(state, prev)
        assert log_probs.shape == (3, 6)
        assert (log_probs - logits[:, t].log_softmax(-1)).abs().max() < 1e-5
        prev = s.targets[:, t]


@pytest.mark.parametrize("arch,glimpse", MODELS)
def test_beam_one_is_greedy_and_outputs_are_permutations(arch: str, glimpse: bool) -> None:
    model = make(arch, glimpse, seed=3)
    values = sets(16, 6, seed=4).values
    greedy = greedy_decode(model, values, 7, constraint="permutation")
    assert greedy == beam_search(model, values, 1, 7, constraint="permutation")
    for out in greedy + beam_search(model, values, 4, 7, constraint="permutation"):
        assert sorted(out) == list(range(6))


def test_sorting_targets_sort() -> None:
    s = fixed_set(9, 200, "test")
    assert s.values.shape == (200, 9, 1) and s.targets.shape == (200, 10)
    assert ((s.values >= 0) & (s.values < 1)).all()
    assert (s.targets[:, -1] == 0).all()  # END last
    for v, order in zip(s.values[..., 0].tolist(), s.solutions(), strict=True):
        assert sorted(order) == list(range(9))
        assert [v[i] for i in order] == sorted(v)
    # the metric: the exact targets score 100, one swapped pair loses the set, not every position
    outs = s.solutions()
    outs[0][0], outs[0][1] = outs[0][1], outs[0][0]
    m = score(s, outs, "greedy")
    assert m["accuracy_greedy"] == pytest.approx(100 * 199 / 200)
    assert m["position_accuracy_greedy"] == pytest.approx(100 * (1 - 2 / 1800))


@pytest.mark.parametrize("train_examples", [0, 96])
def test_batches_are_a_pure_function_of_seed_and_step(train_examples: int) -> None:
    recipe = recipes.get("order-matters")
    cfg = recipe.configure("smoke", [f"data.train_examples={train_examples}"])
    a, b = SortingData(cfg, seed=0), SortingData(cfg, seed=0)
    for step in (5, 0, 7, 3, 5):  # any order, repeated
        va, ta = a.batch(step)
        vb, tb = b.batch(step)
        assert torch.equal(va, vb) and torch.equal(ta, tb)
        assert va.shape == (32, 6, 1) and torch.equal(ta, sorting_targets(va))
    assert not torch.equal(a.batch(0)[0], a.batch(1)[0])
    assert not torch.equal(a.batch(0)[0], SortingData(cfg, seed=1).batch(0)[0])
    if train_examples:  # an epoch of the fixed set shows every set once
        epoch = torch.cat([a.batch(i)[0] for i in range(a.steps_per_epoch)])
        assert a.steps_per_epoch == 3
        assert torch.equal(epoch[epoch[:, 0, 0].argsort()],
                           a.train.values[a.train.values[:, 0, 0].argsort()])


def test_training_streams_are_distinct_and_never_repeat_an_evaluation_set() -> None:
    """Generators keyed by a plain seed arithmetic (or torch's 32-bit seeding) would collide:
    e.g. seed 1_000_003 * run_seed + step hits the test set's seed at some step."""
    first = {(split, n): fixed_set(n, 8, split).values for split in ("valid", "test") for n in (4,)}
    seen: set[bytes] = set()
    for seed in range(3):
        for step in [*range(0, 40), 2_004, 3_004, 2**32 + 3_004]:
            batch = random_batch(4, 8, seed, step).values
            assert all(not torch.equal(batch, v) for v in first.values())
            seen.add(batch.numpy().tobytes())
    assert len(seen) == 3 * 43


def test_arms_build() -> None:
    recipe = recipes.get("order-matters")
    for arm in ARMS:
        cfg = recipe.arm_config("smoke", arm)
        model = recipe.build_model(cfg)
        s = sets(2, cfg.data.n)
        assert model(s.values, s.targets).shape == (2, cfg.data.n + 1, cfg.data.n + 1)


def test_tiny_model_learns_to_sort() -> None:
    torch.manual_seed(0)
    model = ReadProcessWrite(ReadProcessWriteConfig(hidden=32, process_steps=2)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(250):
        s = random_batch(4, 64, seed=0, step=step)
        logits = model(s.values, s.targets)
        loss = F.cross_entropy(logits.flatten(0, 1), s.targets.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 1.2  # ~ log(5) at init
    test = fixed_set(4, 500, "test")
    accuracy = score(test, decode(model, test, 1), "greedy")["accuracy_greedy"]
    assert accuracy > 80.0, accuracy
