"""Parallel corpora for sequence-to-sequence translation (Sutskever, Vinyals, Le 2014).

* `bible-es-en` (shipped): 30,876 verse-aligned pairs, Spanish (Reina-Valera 1909) -> English
  (King James), both public domain; see `corpora/bible-es-en/README.md`. The split is fixed by
  the text: a pair whose sha1("es<TAB>en") mod 100 is 0-2 is test, 3-4 valid, the rest train.
* `parallel` (a path): line-aligned plain-text files `{train,valid,test}.{src,tgt}` where src and
  tgt are language codes (`data.src_lang`, `data.tgt_lang`); WMT'14 En-Fr in this layout
  (e.g. `train.en`/`train.fr`, newstest2012/2013 as valid, newstest2014 as test) is the paper's.

Words: lowercased, split into words and single punctuation marks. Vocabularies keep the most
frequent training words of each side (the paper: 160k source, 80k target) and map the rest to
`<unk>`. `Pairs.batches` cuts the training pairs into length-bucketed batches (pairs of similar
source length together, as the paper does to save padding), shuffled per epoch from the seed.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from sutskever.errors import UserError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
SPLITS = ("train", "valid", "test")
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass
class Vocab:
    words: list[str]

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], size: int) -> Vocab:
        counts = Counter(w for s in sentences for w in s)
        # most frequent first; ties broken by the word, so the vocabulary is deterministic
        kept = sorted(counts, key=lambda w: (-counts[w], w))[: max(size - len(SPECIALS), 0)]
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.words[i])
        return out


def _shipped_pairs() -> dict[str, list[tuple[str, str]]]:
    data = resources.files("sutskever.data").joinpath("corpora", "bible-es-en",
                                                      "verses.tsv.gz").read_bytes()
    splits: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        _, es, en = line.split("\t")
        # by the text, not the reference: a verse repeated word for word elsewhere (lists of
        # towns, refrains) then falls in the same split, so no test pair is seen in training
        bucket = int(hashlib.sha1(f"{es}\t{en}".encode()).hexdigest(), 16) % 100
        split = "test" if bucket < 3 else "valid" if bucket < 5 else "train"
        splits[split].append((es, en))
    return splits


def _read_parallel(path: Path, src: str, tgt: str) -> dict[str, list[tuple[str, str]]]:
    splits = {}
    for split in SPLITS:
        files = [path / f"{split}.{src}", path / f"{split}.{tgt}"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UserError(f"{path} lacks {', '.join(missing)}; a parallel corpus is a "
                            f"directory of line-aligned {{train,valid,test}}.{src} and .{tgt}")
        try:
            a, b = (f.read_text(encoding="utf-8").splitlines() for f in files)
        except UnicodeDecodeError as err:
            raise UserError(f"{path}/{split}.* is not UTF-8 text ({err})") from None
        if len(a) != len(b):
            raise UserError(f"{files[0]} has {len(a)} lines but {files[1]} has {len(b)}; the "
                            f"two sides must be line-aligned")
        splits[split] = list(zip(a, b, strict=True))
    return splits


def load_pairs(corpus: str, path: str | None = None, src_lang: str = "es",
               tgt_lang: str = "en") -> dict[str, list[tuple[str, str]]]:
    """Raw (source, target) sentence pairs per split."""
    if corpus == "bible-es-en":
        return _shipped_pairs()
    if corpus == "parallel":
        if path is None:
            raise UserError("data.corpus=parallel needs data.path, the directory of the "
                            "line-aligned files")
        return _read_parallel(Path(path).expanduser(), src_lang, tgt_lang)
    raise UserError(f"unknown parallel corpus {corpus!r}; choose bible-es-en or parallel")


@dataclass
class Pairs:
    """A split as token ids: `src[i]` (reversed when the config says so) and `tgt[i]`."""

    src: list[list[int]]
    tgt: list[list[int]]
    raw: list[tuple[str, str]]

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        """Length-bucketed batches: sort by source length (ties: by index), cut, shuffle the
        batch order from (seed, epoch)."""
        order = sorted(range(len(self.src)), key=lambda i: (len(self.src[i]), i))
        cuts = [np.array(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
        perm = np.random.default_rng([seed, epoch]).permutation(len(cuts))
        return [cuts[k] for k in perm]

    def tensors(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S) padded, src lengths (B,), tgt (B, T+2) as <bos> ... <eos> padded."""
        src = [self.src[i] for i in rows]
        tgt = [[BOS, *self.tgt[i], EOS] for i in rows]
        return _pad(src), torch.tensor([len(s) for s in src]), _pad(tgt)


def _pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def encode_splits(pairs: dict[str, list[tuple[str, str]]], src_vocab_size: int,
                  tgt_vocab_size: int, max_len: int, reverse_source: bool
                  ) -> tuple[dict[str, Pairs], Vocab, Vocab]:
    """Tokenise, build the vocabularies on the training side, keep training pairs of at most
    `max_len` words a side (every valid/test pair is kept), reverse sources if asked."""
    tok = {s: [(tokenize(a), tokenize(b)) for a, b in p] for s, p in pairs.items()}
    train = [(a, b) for a, b in tok["train"] if 0 < len(a) <= max_len and 0 < len(b) <= max_len]
    if not train:
        raise UserError(f"no training pair has 1 to data.max_len={max_len} words a side")
    src_vocab = Vocab.build([a for a, _ in train], src_vocab_size)
    tgt_vocab = Vocab.build([b for _, b in train], tgt_vocab_size)
    out = {}
    for split, items in tok.items():
        kept = [(i, a, b) for i, (a, b) in enumerate(items) if a and b]
        if split == "train":
            kept = [(i, a, b) for i, a, b in kept if len(a) <= max_len and len(b) <= max_len]
        src = [src_vocab.encode(a[::-1] if reverse_source else a) for _, a, _ in kept]
        out[split] = Pairs(src, [tgt_vocab.encode(b) for _, _, b in kept],
                           [pairs[split][i] for i, _, _ in kept])
    return out, src_vocab, tgt_vocab
