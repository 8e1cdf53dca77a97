"""The GPT model, its parameter and FLOP accounting, token files and the gpt recipe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sutskever import recipes
from sutskever.data import tokens
from sutskever.data.tokens import CharTokenizer, GPT2Tokenizer, load_tokens, prepare
from sutskever.errors import UserError
from sutskever.models.gpt import GPT, GPTConfig, count_params, flops_per_token, non_embedding_params

TINY = GPTConfig(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=16)


def test_a_future_token_never_changes_an_earlier_output() -> None:
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, 11, (3, 8))
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 1) % 11  # change positions 5..7
    a, b = model(x), model(y)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


def test_parameter_and_flop_counts_by_hand() -> None:
    model = GPT(TINY)
    d, L, V, T = 16, 2, 11, 8
    assert non_embedding_params(TINY) == 12 * L * d * d == 6144
    # per layer: qkv d*3d + 3d, proj d*d + d, fc d*4d + 4d, proj 4d*d + d, 2 LayerNorms 2*2d;
    # plus the final LayerNorm 2d. Embeddings V*d (tied with the output layer) + T*d.
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
    assert count_params(model) == L * per_layer + 2 * d
    assert count_params(model, embeddings=True) == L * per_layer + 2 * d + V * d + T * d
    assert flops_per_token(TINY) == 6 * 6144 + 6 * L * T * d + 6 * d * V
    assert flops_per_token(TINY, with_head=False) == 6 * 6144 + 6 * L * T * d


def test_gpt2_initialisation() -> None:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=512, context=64, n_layer=8, n_head=4, d_model=256)
    model = GPT(cfg)
    assert model.head.weight is model.wte.weight  # tied
    assert abs(model.blocks[0].attn.qkv.weight.std().item() - 0.02) < 1e-3
    resid = 0.02 / math.sqrt(2 * 8)
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - resid) < 5e-4
    assert model.blocks[0].attn.qkv.bias.abs().max() == 0


def test_loss_at_initialisation_is_near_log_vocab() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, context=32, n_layer=2, n_head=2, d_model=32))
    x, y = torch.randint(0, 256, (2, 8, 32))
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert abs(loss.item() - math.log(256)) < 0.1


def test_a_tiny_model_memorises_a_short_text() -> None:
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. "
    tok = CharTokenizer.fit(text)
    ids = torch.tensor([tok.encode(text)])
    model = GPT(GPTConfig(vocab_size=tok.n_vocab, context=ids.shape[1] - 1, n_layer=2,
                          n_head=2, d_model=32))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = model.eval().generate(ids[:, :1], ids.shape[1] - 1, temperature=0)
    assert tok.decode(out[0].tolist()) == text


def test_generation_is_reproducible_with_a_seed() -> None:
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    start = torch.zeros(2, 1, dtype=torch.long)
    a = model.generate(start, 20, top_k=5, generator=torch.Generator().manual_seed(7))
    b = model.generate(start, 20, top_k=5, generator=torch.Generator().manual_seed(7))
    c = model.generate(start, 20, top_k=5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 21)  # longer than the context: the window slides


def test_tokenisers_round_trip() -> None:
    text = "To be, or not to be: that is the question.\n\n  Whether 'tis nobler\t1234!"
    char = CharTokenizer.fit(text)
    assert char.decode(char.encode(text)) == text
    with pytest.raises(UserError, match="not in this corpus"):
        char.encode("Z")
    bpe = GPT2Tokenizer()
    assert bpe.n_vocab == 50257
    assert bpe.encode("Hello world") == [15496, 995]  # GPT-2's ids
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_chunks_encode_exactly_like_the_whole_text() -> None:
    bpe = GPT2Tokenizer()
    text = "Hello world.\n\n  Indented \nline\nNext 123\n\n\nX  \n\tTab\nend\n" * 40
    chunked = [t for c in tokens._bpe_chunks(text, size=50) for t in bpe.encode(c)]
    assert len(tokens._bpe_chunks(text, size=50)) > 10
    assert chunked == bpe.encode(text)


def test_token_files_are_deterministic_and_memory_mapped(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "story.txt"
    source.write_text("Once upon a time there was a tiny corpus.\n" * 50)
    metas = []
    for cache in ("a", "b"):
        monkeypatch.setenv("SUTSKEVER_CACHE", str(tmp_path / cache))
        for tokenizer in ("char", "gpt2"):
            directory = prepare("text", tokenizer, str(source))
            metas.append((directory / "train.bin").read_bytes())
        corpus = load_tokens("text", "char", str(source))
    assert metas[0] == metas[2] and metas[1] == metas[3]
    assert isinstance(corpus.splits["train"][0], np.memmap)
    assert corpus.splits["train"][0].dtype == np.uint16
    text = corpus.tokenizer().decode(corpus.splits["train"][0].tolist())
    assert text.startswith("Once upon a time")
    assert corpus.n_tokens("train") + corpus.n_tokens("val") == len(source.read_text())


def test_fineweb_shards_are_read_and_checked(tmp_path: Path) -> None:
    for split, n in (("train", 100), ("val", 40)):
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (tokens.FINEWEB_MAGIC, 1, n)
        with open(tmp_path / f"fineweb_{split}_000000.bin", "wb") as f:
            f.write(header.tobytes())
            f.write(np.arange(n, dtype=np.uint16).tobytes())
    corpus = load_tokens("fineweb", "gpt2", str(tmp_path))
    assert corpus.n_tokens("train") == 100 and corpus.splits["val"][0][-1] == 39
    (tmp_path / "fineweb_val_000000.bin").write_bytes(b"\0" * 1100)
    with pytest.raises(UserError, match="not an llm.c token shard"):
        load_tokens("fineweb", "gpt2", str(tmp_path))


def test_bad_corpus_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown corpus"):
        prepare("nope")
    with pytest.raises(UserError, match="needs data.path"):
        prepare("text")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        prepare("text", "char", str(tmp_path / "bad.txt"))


def test_recipe_batches_are_a_pure_function_of_the_step() -> None:
    recipe = recipes.get("gpt")
    cfg = recipe.configure("smoke")
    a, b = recipe.build_data(cfg, seed=0), recipe.build_data(cfg, seed=0)
    x1, y1 = a.batch(3)
    x2, y2 = b.batch(3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are the inputs shifted by one
    assert not torch.equal(a.batch(4)[0], x1)
    assert x1.shape == (cfg.train.batch_size, cfg.model.context)


def test_the_lstm_baseline_spends_about_the_gpts_flops() -> None:
    recipe = recipes.get("gpt")
    gpt = recipe.arm_config("quick", "gpt")
    lstm = recipe.arm_config("quick", "lstm")
    ratio = recipe.flops_per_sample(lstm) / recipe.flops_per_sample(gpt)
    assert 0.95 < ratio < 1.05


def test_a_vocabulary_too_small_for_the_corpus_is_a_clear_error() -> None:
    recipe = recipes.get("gpt")
    with pytest.raises(UserError, match="vocab_size"):
        recipe.build_model(recipe.configure("smoke", ["model.vocab_size=10"]))


def test_tinystories_and_openwebtext_from_a_path(tmp_path: Path) -> None:
    stories = tmp_path / "tinystories"
    stories.mkdir()
    (stories / "TinyStories-train.txt").write_text("Tom had a red ball.\n<|endoftext|>\n" * 20)
    (stories / "TinyStories-valid.txt").write_text("Sue saw a cat.\n<|endoftext|>\n" * 5)
    corpus = load_tokens("tinystories", "gpt2", str(stories))
    text = corpus.tokenizer().decode(corpus.splits["val"][0].tolist())
    assert text.startswith("Sue saw a cat.")
    owt = tmp_path / "owt"
    owt.mkdir()
    np.arange(1000, dtype=np.uint16).tofile(owt / "train.bin")
    np.arange(100, dtype=np.uint16).tofile(owt / "val.bin")
    corpus = load_tokens("openwebtext", "gpt2", str(owt))
    assert corpus.n_tokens("train") == 1000 and corpus.n_vocab == 50257
    with pytest.raises(UserError, match="openwebtext train.bin"):
        load_tokens("openwebtext", "gpt2", str(tmp_path))


def test_sample_command_is_reproducible_and_keeps_the_prompt(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sutskever.cli import main

    assert main(["run", "gpt", "--preset", "smoke", "--device", "cpu", "--out",
                 str(tmp_path / "run")]) == 0
    outputs = []
    for seed in ("1", "1", "2"):
        capsys.readouterr()
        assert main(["sample", str(tmp_path / "run"), "--prompt", "ROMEO.", "--length", "40",
                     "--top-k", "5", "--temperature", "0.8", "--seed", seed,
                     "--device", "cpu"]) == 0
        outputs.append(capsys.readouterr().out[:-1])  # print adds one newline
    assert outputs[0] == outputs[1] != outputs[2]
    assert outputs[0].startswith("ROMEO.") and len(outputs[0]) == len("ROMEO.") + 40
    assert main(["sample", str(tmp_path / "run"), "--top-k", "0"]) == 2


def test_train_chunks_spread_the_subset_over_the_text() -> None:
    from sutskever.recipes.gpt import _subset

    stream = np.arange(1000)
    first = _subset([stream], 100, 1)
    assert len(first) == 1 and first[0].tolist() == list(range(100))
    chunks = _subset([stream], 100, 4)
    assert [c[0] for c in chunks] == [0, 325, 650, 975] and all(len(c) == 25 for c in chunks)
    with pytest.raises(UserError, match="train_chunks"):
        _subset([stream], 100, 0)
