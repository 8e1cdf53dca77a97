"""Tests for Read-Process-Write and the sorting task of "Order Matters" (arXiv:1511.06391)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sutskever import recipes
from sutskever.config import apply_overrides
from sutskever.data.ngrams import all_orders, order_index, order_label, parse_order, sentence_ngrams
from sutskever.data.sets import SortingSet, fixed_set, random_batch, random_sets, sorting_targets
from sutskever.models.order_matters import (
    OrderedNgramLM,
    OrderedNgramLMConfig,
    ReadProcessWrite,
    ReadProcessWriteConfig,
    choose_orders,
    order_log_likelihoods,
)
from sutskever.models.search import beam_search, greedy_decode
from sutskever.recipes.base import RecipeData
from sutskever.recipes.order_matters import (
    ARMS,
    NgramData,
    SortingData,
    decode,
    evaluate_ngram_lm,
    score,
)
from sutskever.train import RunSpec, train

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
        if cfg.task == "ngram-lm":
            words, orders = torch.randint(0, 10_000, (2, 5)), all_orders(5)[:2]
            assert model(words, orders).shape == (2, 5, 10_000)
            continue
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


# ------------------------------------------------------------------------------------------------
# Output order: the 5-gram language model (section 4.3)



def test_sentence_ngrams_are_windows_within_sentences() -> None:
    eos = 0
    # "1 2 3 4 5 6 <eos> 7 8 <eos> 9 10 11 12 13" (a last sentence without <eos> counts)
    stream = torch.tensor([1, 2, 3, 4, 5, 6, eos, 7, 8, eos, 9, 10, 11, 12, 13])
    assert sentence_ngrams(stream, eos, 5).tolist() == [
        [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [9, 10, 11, 12, 13]]
    assert sentence_ngrams(stream, eos, 2).tolist() == [
        [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [7, 8], [9, 10], [10, 11], [11, 12], [12, 13]]
    assert sentence_ngrams(torch.tensor([1, 2, eos]), eos, 5).shape == (0, 5)


def test_orders_are_written_as_the_paper_writes_them() -> None:
    table = all_orders(5)
    assert table.shape == (120, 5) and len({tuple(r) for r in table.tolist()}) == 120
    assert table[0].tolist() == [0, 1, 2, 3, 4] and table[-1].tolist() == [4, 3, 2, 1, 0]
    assert all(order_index(row) == i for i, row in enumerate(table.tolist()))
    bad = parse_order((5, 1, 3, 4, 2))
    assert bad == (4, 0, 2, 3, 1) and order_label(bad) == 51342
    with pytest.raises(Exception, match="each position"):
        parse_order((1, 2, 2, 4, 5))


def lm(vocab: int = 7, n: int = 5, seed: int = 0) -> OrderedNgramLM:
    torch.manual_seed(seed)
    return OrderedNgramLM(OrderedNgramLMConfig(vocab_size=vocab, n=n, embed=8, hidden=8)).eval()


def test_the_order_permutes_what_is_emitted_and_when() -> None:
    """Under (5,1,3,4,2) the model emits w5, w1, w3, w4, w2: changing w2 (emitted last) leaves
    the first four steps alone, changing w5 (emitted first) changes every later step."""
    model = lm()
    words = torch.tensor([[1, 2, 3, 4, 5]])
    order = torch.tensor([parse_order((5, 1, 3, 4, 2))])

    def step_log_probs(w: torch.Tensor) -> torch.Tensor:
        logits = model(w, order)  # (1, 5, V), in emission order
        return logits.log_softmax(-1).gather(2, w.gather(1, order)[..., None])[0, :, 0]

    assert words.gather(1, order).tolist() == [[5, 1, 3, 4, 2]]  # the targets, step by step
    with torch.no_grad():
        base = step_log_probs(words)
        last = step_log_probs(torch.tensor([[1, 6, 3, 4, 5]]))  # w2 changed
        first = step_log_probs(torch.tensor([[1, 2, 3, 4, 6]]))  # w5 changed
        assert torch.allclose(base.sum(), model.log_likelihood(words, order)[0], atol=1e-5)
    assert torch.allclose(base[:4], last[:4]) and not torch.allclose(base[4], last[4])
    assert (base - first).abs().min() > 1e-6  # every step sees (or emits) w5


def test_every_order_is_a_distribution_over_all_ngrams() -> None:
    """Each order factorises a joint distribution: summed over all V^n n-grams, p(w | pi) = 1."""
    V, n = 3, 3
    model = lm(vocab=V, n=n)
    grams = torch.tensor(list(itertools.product(range(V), repeat=n)))  # (27, 3)
    with torch.no_grad():
        ll = order_log_likelihoods(model, grams, all_orders(n))  # (27, 6)
    assert torch.allclose(ll.exp().sum(0), torch.ones(6), atol=1e-5)
    assert (ll[:, 0] - ll[:, 5]).abs().max() > 1e-3  # yet the orders are different models


class PrefersAnOrder(torch.nn.Module):
    """A hand-made model whose log-likelihood of any n-gram under order pi is minus the number of
    positions where pi differs from `preferred`."""

    def __init__(self, preferred: tuple[int, ...]):
        super().__init__()
        self.preferred = torch.tensor(preferred)
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def log_likelihood(self, words: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
        return -(orders != self.preferred).sum(dim=1).float() - 0.1 * words.shape[1]


def test_the_order_search_picks_the_likeliest_order() -> None:
    preferred = parse_order((5, 1, 3, 4, 2))
    model = PrefersAnOrder(preferred)
    words = torch.randint(0, 5, (4, 5))
    table = all_orders(5)
    ll = order_log_likelihoods(model, words, table)  # (4, 120)
    assert table[choose_orders(ll, "argmax")].tolist() == [list(preferred)] * 4
    # sampling the posterior: the uniform's place in the CDF picks the candidate
    ll2 = torch.log(torch.tensor([[0.2, 0.5, 0.3]] * 4))
    picks = choose_orders(ll2, "sample", torch.tensor([0.1, 0.3, 0.69, 0.99]))
    assert picks.tolist() == [0, 1, 1, 2]
    u = torch.rand(20_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(choose_orders(ll2[:1].expand(20_000, -1), "sample", u), minlength=3)
    assert torch.allclose(freq / 20_000, torch.tensor([0.2, 0.5, 0.3]), atol=0.02)


def test_evaluation_scores_the_order_the_model_chooses() -> None:
    recipe = recipes.get("order-matters")
    cfg = recipe.arm_config("smoke", "lm-learned")
    grams = torch.randint(0, 5, (40, 5))
    data = RecipeData(steps_per_epoch=1, splits={"valid": grams, "test": grams,
                                                 "select": grams[:16]})
    model = PrefersAnOrder(parse_order((2, 1, 3, 5, 4)))
    metrics, _ = evaluate_ngram_lm(model, cfg, data, "test")
    assert metrics["order"] == 21354.0 and metrics["order_share"] == 100.0
    assert metrics["valid_nll"] == pytest.approx(0.1)  # -(0 + 0.5) / 5 words per n-gram
    assert metrics["valid_ppl"] == pytest.approx(math.exp(0.1))


def test_ngram_batches_are_a_pure_function_of_seed_and_step() -> None:
    recipe = recipes.get("order-matters")
    for arm, k in (("lm-natural", 1), ("lm-bad", 1), ("lm-uniform", 1), ("lm-learned", 3)):
        cfg = recipe.arm_config("smoke", arm)
        a, b = NgramData(cfg, seed=0), NgramData(cfg, seed=0)
        for step in (3, 0, 3):
            (wa, ra, ua), (wb, rb, ub) = a.batch(step), b.batch(step)
            assert torch.equal(wa, wb) and torch.equal(ra, rb) and torch.equal(ua, ub)
            assert wa.shape == (32, 5) and ra.shape == (32, k) and ua.shape == (32,)
        if arm == "lm-bad":
            assert all_orders(5)[ra[0, 0]].tolist() == [4, 0, 2, 3, 1]
        if arm == "lm-uniform":  # orders drawn per n-gram, and differently per seed
            assert len(set(ra[:, 0].tolist())) > 10
            assert not torch.equal(ra, NgramData(cfg, seed=1).batch(3)[1])
    # lm-learned reads the 5-grams after those lm-uniform trained on
    pre = NgramData(recipe.arm_config("smoke", "lm-uniform"), seed=0)
    learned = NgramData(recipe.arm_config("smoke", "lm-learned"), seed=0)
    assert torch.equal(learned.batch(0)[0], pre.batch(4)[0])


def test_ngram_lm_arms_train_at_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = recipes.get("order-matters")
    monkeypatch.setattr(recipe, "flops_per_sample", lambda cfg: None)  # no 9 s peak measurement
    summaries = {}
    for arm in ("lm-natural", "lm-uniform", "lm-learned"):
        cfg = recipe.arm_config("smoke", arm)
        if arm == "lm-learned":
            cfg = apply_overrides(cfg, {"train.init_from": str(tmp_path / "lm-uniform")})
        summaries[arm] = train(recipe, cfg, tmp_path / arm, RunSpec("order-matters", arm, {}, 0),
                               device=torch.device("cpu"))["metrics"]
    assert 100 < summaries["lm-natural"]["valid_ppl"] < 10_000  # below uniform over 10k words
    assert summaries["lm-natural"]["valid_ppl"] == pytest.approx(
        math.exp(summaries["lm-natural"]["valid_nll"]))
    for arm in ("lm-uniform", "lm-learned"):
        order = str(int(summaries[arm]["order"]))
        assert sorted(order) == list("12345") and 0 < summaries[arm]["order_share"] <= 100
