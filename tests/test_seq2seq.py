"""Sequence to sequence: the parallel data, the encoder-decoder, beam search, ensembles, BLEU."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from sutskever import recipes
from sutskever.data.translation import BOS, EOS, PAD, encode_splits, load_pairs, tokenize
from sutskever.errors import UserError
from sutskever.models.search import beam_search_tokens
from sutskever.models.seq2seq import Ensemble, Seq2Seq, Seq2SeqConfig
from sutskever.recipes.seq2seq import bleu

PAIRS = {"train": [("el perro come .", "the dog eats ."), ("la casa es roja", "the house is red"),
                   ("el gato duerme", "the cat sleeps")],
         "valid": [("el perro duerme", "the dog sleeps")],
         "test": [("la casa", "the house")]}


def _model(seed: int = 0, vocab: int = 7) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(src_vocab=vocab, tgt_vocab=vocab, n_layers=2, hidden=8,
                                 init_scale=0.5))


def test_reversal_is_applied_to_the_source_only() -> None:
    fwd, src_v, tgt_v = encode_splits(PAIRS, 50, 50, 10, reverse_source=False)
    rev, _, _ = encode_splits(PAIRS, 50, 50, 10, reverse_source=True)
    for split in PAIRS:
        assert [s[::-1] for s in fwd[split].src] == rev[split].src
        assert fwd[split].tgt == rev[split].tgt
    assert src_v.decode(rev["train"].src[0]) == [".", "come", "perro", "el"]
    src, lengths, tgt = rev["train"].tensors([0, 1])
    assert tgt[0, 0] == BOS and EOS in tgt[0].tolist() and lengths.tolist() == [4, 4]


def test_shipped_bible_split_is_fixed_and_disjoint() -> None:
    a, b = load_pairs("bible-es-en"), load_pairs("bible-es-en")
    assert a == b
    sizes = {k: len(v) for k, v in a.items()}
    assert sizes["train"] > 28_000 and 500 < sizes["test"] < 1500
    assert not set(a["test"]) & set(a["train"])
    assert tokenize("Y dijo Dios: Sea la luz") == ["y", "dijo", "dios", ":", "sea", "la", "luz"]


def test_parallel_files_from_a_path(tmp_path: Path) -> None:
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.en").write_text("a cat .\nthe dog\n")
        (tmp_path / f"{split}.fr").write_text("un chat .\nle chien\n")
    pairs = load_pairs("parallel", str(tmp_path), "en", "fr")
    assert pairs["test"][1] == ("the dog", "le chien")
    (tmp_path / "test.fr").write_text("un chat .\n")
    with pytest.raises(UserError, match="line-aligned"):
        load_pairs("parallel", str(tmp_path), "en", "fr")
    with pytest.raises(UserError, match="lacks"):
        load_pairs("parallel", str(tmp_path), "en", "de")


def test_beam_one_is_greedy_and_beam_finds_the_exhaustive_best() -> None:
    model = _model(vocab=5).eval()  # tokens: pad, unk, bos, eos, one word
    src = torch.tensor([[4, 4, 1], [1, 4, 0]])
    lengths = torch.tensor([3, 2])
    # greedy by hand
    state = model.encode(src, lengths)
    prev, greedy = torch.full((2,), BOS), [[], []]
    done = [False, False]
    for _ in range(6):
        log_p, state = model.step(state, prev)
        prev = log_p.argmax(-1)
        for i in range(2):
            if not done[i]:
                if prev[i] == EOS:
                    done[i] = True
                else:
                    greedy[i].append(int(prev[i]))
    assert beam_search_tokens(model, src, lengths, 1, 6, BOS, EOS) == greedy
    # exhaustive search over every sequence of up to 3 tokens followed by <eos>
    best = beam_search_tokens(model, src, lengths, 200, 4, BOS, EOS)  # beam > 5^3: exact
    for i in range(2):
        scores = {}
        for n in range(4):
            for seq in itertools.product(range(5), repeat=n):
                if EOS in seq:
                    continue
                scores[seq] = _score(model, src[i:i + 1], lengths[i:i + 1], list(seq))
        assert tuple(best[i]) == max(scores, key=scores.get)


def _score(model: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, seq: list[int]) -> float:
    with torch.no_grad():
        logits = model(src, lengths, torch.tensor([[BOS, *seq]]))
        log_p = torch.log_softmax(logits, -1)[0]
        return float(sum(log_p[t, tok] for t, tok in enumerate([*seq, EOS])))


def test_an_ensemble_of_one_is_the_model() -> None:
    model = _model().eval()
    src, lengths = torch.tensor([[4, 5, 6]]), torch.tensor([3])
    assert (beam_search_tokens(Ensemble([model]), src, lengths, 3, 5, BOS, EOS)
            == beam_search_tokens(model, src, lengths, 3, 5, BOS, EOS))
    state = Ensemble([model, _model(1)]).encode(src, lengths)
    log_p, _ = Ensemble([model, _model(1)]).step(state, torch.tensor([BOS]))
    a, _ = model.step(model.encode(src, lengths), torch.tensor([BOS]))
    b, _ = _model(1).step(_model(1).encode(src, lengths), torch.tensor([BOS]))
    assert torch.allclose(log_p, (a + b) / 2, atol=1e-6)


def test_padding_does_not_change_the_encoding() -> None:
    model = _model().eval()
    short = model.encode(torch.tensor([[4, 5]]), torch.tensor([2]))
    padded = model.encode(torch.tensor([[4, 5, PAD, PAD]]), torch.tensor([2]))
    assert torch.allclose(short["h"], padded["h"]) and torch.allclose(short["c"], padded["c"])


def test_bleu_of_a_perfect_hypothesis_is_100() -> None:
    refs = ["the dog eats .", "in the beginning god created the heaven and the earth ."]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["a b c d", "e f g h"], refs) < 1.0


def test_translate_and_ensemble_eval(tmp_path: Path) -> None:
    from sutskever.train import RunSpec, train

    recipe = recipes.get("seq2seq")
    cfg = recipe.configure("smoke")
    models = []
    for seed in (0, 1):
        train(recipe, cfg, tmp_path / str(seed), RunSpec("seq2seq", "smoke", {}, seed),
              device=torch.device("cpu"))
        model = recipe.build_model(cfg)
        from sutskever.train.checkpoint import find_checkpoint, load_weights

        load_weights(find_checkpoint(tmp_path / str(seed) / "checkpoint"), model)
        models.append(model)
    data = recipe.build_data(cfg, 0)
    out = recipe.translate(models, cfg, data, ["Y dijo Dios", ""], beam=2)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    metrics = recipe.evaluate_ensemble(models, cfg, data, "test")
    assert metrics["test_ppl"] > 1 and 0 <= metrics["bleu_beam2"] <= 100
