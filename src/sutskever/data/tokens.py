"""Token files for GPT pre-training: corpora, tokenisers, and memory-mapped uint16 token streams.

A corpus is real text split into `train` and `val`; `prepare(corpus, tokenizer)` encodes it once
into the cache, as nanoGPT's `prepare.py` does:

    $SUTSKEVER_CACHE/tokens/<corpus>-<tokenizer>/{train,val}.bin   uint16 token ids
    $SUTSKEVER_CACHE/tokens/<corpus>-<tokenizer>/meta.json         vocabulary, counts, sha256

and `load_tokens` memory-maps them. The same text always gives the same bytes.

Corpora (`CORPORA`):
* shipped with the package: `shakespeare` (Project Gutenberg's Shakespeare), `web` (the World
  English Bible), `brown` (the Brown corpus processed the PTB way); a single document is split
  90/10 at a character position, as nanoGPT splits tiny-shakespeare; Brown keeps its own splits;
* from a path, for users who have them: `tinystories` (TinyStories' `*-train.txt`/`*-valid.txt`,
  stories separated by `<|endoftext|>` lines), `openwebtext` (nanoGPT's `train.bin`/`val.bin`,
  GPT-2 tokens, used as they are) and `fineweb` (llm.c's `fineweb_{train,val}_*.bin` shards:
  a 256 x int32 header, magic 20240520, then uint16 GPT-2 tokens);
* `text` : any UTF-8 file (`data.path`), split 90/10.

Tokenisers: `char` (the corpus's distinct characters, sorted) and `gpt2` (GPT-2's byte-level
BPE through tiktoken, with the ranks file that PyPI `openai-whisper` ships, so nothing is
downloaded at run time).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sutskever.data.point_tasks import cache_dir
from sutskever.errors import UserError

TOKENIZERS = ("char", "gpt2")
SHIPPED = ("shakespeare", "web", "brown")
FROM_PATH = ("tinystories", "openwebtext", "fineweb", "text")
CORPORA = SHIPPED + FROM_PATH
VAL_FRACTION = 0.1
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
FINEWEB_MAGIC, FINEWEB_HEADER = 20240520, 256  # llm.c shard header: 256 int32


# ---- tokenisers --------------------------------------------------------------------------------
class CharTokenizer:
    """One id per character; the vocabulary is the sorted set of the corpus's characters."""

    name = "char"

    def __init__(self, chars: Sequence[str]):
        self.chars = list(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}
        self.n_vocab = len(self.chars)

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as err:
            raise UserError(f"character {err.args[0]!r} is not in this corpus's vocabulary; "
                            f"use characters of the training text") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids)


class GPT2Tokenizer:
    """GPT-2's byte-level BPE (tiktoken's `r50k_base`: 50,257 tokens, `<|endoftext|>` = 50256)."""

    name = "gpt2"
    eot = 50256

    def __init__(self) -> None:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
        from tiktoken_ext.openai_public import r50k_pat_str

        ranks = load_tiktoken_bpe(str(gpt2_ranks_file()), expected_hash=GPT2_RANKS_SHA256)
        self._enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                      special_tokens={"<|endoftext|>": self.eot},
                                      explicit_n_vocab=50257)
        self.n_vocab = self._enc.n_vocab

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(texts)

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))


def gpt2_ranks_file() -> Path:
    """GPT-2's BPE ranks: `$SUTSKEVER_GPT2_RANKS`, else `whisper/assets/gpt2.tiktoken` from
    the `openai-whisper` package (installed with --no-deps by `make`; it is not imported)."""
    if os.environ.get("SUTSKEVER_GPT2_RANKS"):
        path = Path(os.environ["SUTSKEVER_GPT2_RANKS"]).expanduser()
        if not path.is_file():
            raise UserError(f"$SUTSKEVER_GPT2_RANKS={path} is not a file; point it at "
                            f"gpt2.tiktoken")
        return path
    spec = importlib.util.find_spec("whisper")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "assets" / "gpt2.tiktoken"
        if path.is_file():
            return path
    raise UserError("GPT-2 BPE ranks not found: pip install --no-deps openai-whisper==20250625 "
                    "(it ships whisper/assets/gpt2.tiktoken), or set $SUTSKEVER_GPT2_RANKS")


def make_tokenizer(name: str, chars: Sequence[str] | None = None) -> CharTokenizer | GPT2Tokenizer:
    if name == "char":
        if chars is None:
            raise ValueError("a char tokenizer needs its vocabulary")
        return CharTokenizer(chars)
    if name == "gpt2":
        return GPT2Tokenizer()
    raise UserError(f"unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}")


# ---- corpora as text ---------------------------------------------------------------------------
def _shipped_text(name: str, file: str) -> str:
    data = resources.files("sutskever.data").joinpath("corpora", name, file).read_bytes()
    return gzip.decompress(data).decode("utf-8")


def _split_document(text: str) -> dict[str, str]:
    cut = int(len(text) * (1 - VAL_FRACTION))
    return {"train": text[:cut], "val": text[cut:]}


def _read_user_text(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; pass a UTF-8 text file as data.path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; pass a UTF-8 text file as data.path") from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not UTF-8 text ({err}); pass a plain or .gz text file") \
            from None


def _tinystories(path: Path) -> dict[str, str]:
    splits = {}
    for split, suffix in (("train", "train.txt"), ("val", "valid.txt")):
        files = sorted(path.glob(f"*{suffix}")) if path.is_dir() else []
        if not files:
            raise UserError(f"no *{suffix} in {path}; pass the directory holding TinyStories' "
                            f"TinyStories-train.txt and TinyStories-valid.txt")
        splits[split] = _read_user_text(files[-1])
    return splits


def corpus_text(corpus: str, path: str | None = None) -> dict[str, str]:
    """The corpus as text, split into `train` and `val` (the text corpora only)."""
    if corpus == "shakespeare":
        return _split_document(_shipped_text("shakespeare", "shakespeare.txt.gz"))
    if corpus == "web":
        return _split_document(_shipped_text("web", "web.txt.gz"))
    if corpus == "brown":
        return {"train": _shipped_text("brown", "train.txt.gz"),
                "val": _shipped_text("brown", "valid.txt.gz")}
    if corpus in ("tinystories", "text"):
        if path is None:
            raise UserError(f"corpus {corpus!r} needs data.path: "
                            f"{'its directory' if corpus == 'tinystories' else 'a text file'}")
        p = Path(path).expanduser()
        return _tinystories(p) if corpus == "tinystories" else _split_document(_read_user_text(p))
    raise UserError(f"unknown text corpus {corpus!r}; choose one of: "
                    f"{', '.join(c for c in CORPORA if c not in ('openwebtext', 'fineweb'))}")


# ---- token files -------------------------------------------------------------------------------
@dataclass
class TokenCorpus:
    """Memory-mapped token streams and what they were made from."""

    meta: dict[str, Any]
    splits: dict[str, list[np.ndarray]]  # split -> its shards (uint16 memmaps)

    @property
    def n_vocab(self) -> int:
        return int(self.meta["n_vocab"])

    def tokenizer(self) -> CharTokenizer | GPT2Tokenizer:
        return make_tokenizer(self.meta["tokenizer"], self.meta.get("chars"))

    def n_tokens(self, split: str) -> int:
        return sum(len(s) for s in self.splits[split])


def token_dir(corpus: str, tokenizer: str, path: str | None = None) -> Path:
    name = f"{corpus}-{tokenizer}"
    if path is not None:  # a user's copy: one cache entry per location
        name += "-" + hashlib.sha1(str(Path(path).expanduser().resolve()).encode()).hexdigest()[:8]
    return cache_dir() / "tokens" / name


def prepare(corpus: str, tokenizer: str = "char", path: str | None = None,
            log: Callable[[str], None] | None = None) -> Path:
    """Encode the corpus into token files (once); returns their directory."""
    if tokenizer not in TOKENIZERS:
        raise UserError(f"unknown tokenizer {tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
    if corpus not in CORPORA:
        raise UserError(f"unknown corpus {corpus!r}; choose one of: {', '.join(CORPORA)}")
    if corpus in ("openwebtext", "fineweb"):
        if tokenizer != "gpt2":
            raise UserError(f"{corpus} comes as GPT-2 tokens; use tokenizer gpt2")
        if path is None:
            raise UserError(f"corpus {corpus!r} needs data.path, the directory of its .bin files")
        return Path(path).expanduser()  # used as they are
    out = token_dir(corpus, tokenizer, path)
    if (out / "meta.json").is_file():
        return out
    texts = corpus_text(corpus, path)
    if log:
        log(f"tokenising {corpus} with {tokenizer} into {out}")
    tok = (CharTokenizer.fit(texts["train"] + texts["val"]) if tokenizer == "char"
           else GPT2Tokenizer())
    if tok.n_vocab > 65536:
        raise UserError(f"a vocabulary of {tok.n_vocab} does not fit uint16 token files")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta: dict[str, Any] = {"corpus": corpus, "tokenizer": tokenizer, "n_vocab": tok.n_vocab,
                            "chars": getattr(tok, "chars", None), "path": path, "splits": {}}
    for split, text in texts.items():
        ids = np.asarray(_encode(tok, text), dtype=np.uint16)
        ids.tofile(tmp / f"{split}.bin")
        meta["splits"][split] = {"tokens": int(ids.size), "chars": len(text),
                                 "bytes": len(text.encode("utf-8")),
                                 "sha256": hashlib.sha256(ids.tobytes()).hexdigest()}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    try:
        tmp.rename(out)  # atomic: a reader sees no files or all of them
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _encode(tok: CharTokenizer | GPT2Tokenizer, text: str) -> list[int]:
    if isinstance(tok, CharTokenizer):
        return tok.encode(text)
    return [t for ids in tok.encode_batch(_bpe_chunks(text)) for t in ids]


def _bpe_chunks(text: str, size: int = 1 << 20) -> list[str]:
    """Cut the text into ~`size`-character chunks that encode in parallel to exactly the tokens
    of the whole: only where a line ending in a visible character is followed by one (GPT-2's
    pre-tokeniser makes that newline a piece of its own, so no piece crosses the cut)."""
    chunks, start = [], 0
    for m in _SAFE_CUT.finditer(text):
        if m.start() - start >= size:
            chunks.append(text[start:m.start()])
            start = m.start()
    chunks.append(text[start:])
    return chunks


_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


def load_tokens(corpus: str, tokenizer: str = "char", path: str | None = None,
                log: Callable[[str], None] | None = None) -> TokenCorpus:
    """The corpus's token streams (prepared on first use), memory-mapped."""
    directory = prepare(corpus, tokenizer, path, log)
    if corpus == "openwebtext":
        return _nanogpt_bins(directory)
    if corpus == "fineweb":
        return _fineweb_shards(directory)
    meta = json.loads((directory / "meta.json").read_text())
    splits = {s: [np.memmap(directory / f"{s}.bin", dtype=np.uint16, mode="r")]
              for s in meta["splits"]}
    return TokenCorpus(meta, splits)


def _gpt2_meta(corpus: str, path: Path) -> dict[str, Any]:
    return {"corpus": corpus, "tokenizer": "gpt2", "n_vocab": 50257, "chars": None,
            "path": str(path), "splits": {}}


def _nanogpt_bins(path: Path) -> TokenCorpus:
    splits = {}
    for split in ("train", "val"):
        file = path / f"{split}.bin"
        if not file.is_file():
            raise UserError(f"{file} not found; pass the directory holding nanoGPT's "
                            f"openwebtext train.bin and val.bin")
        splits[split] = [np.memmap(file, dtype=np.uint16, mode="r")]
    return TokenCorpus(_gpt2_meta("openwebtext", path), splits)


def read_fineweb_shard(file: Path) -> np.ndarray:
    header = np.fromfile(file, dtype=np.int32, count=FINEWEB_HEADER)
    if header.size < 3 or header[0] != FINEWEB_MAGIC:
        raise UserError(f"{file} is not an llm.c token shard (magic {FINEWEB_MAGIC} missing)")
    n = int(header[2])
    data = np.memmap(file, dtype=np.uint16, mode="r", offset=FINEWEB_HEADER * 4)
    if data.size < n:
        raise UserError(f"{file} is truncated: header says {n} tokens, file has {data.size}")
    return data[:n]


def _fineweb_shards(path: Path) -> TokenCorpus:
    splits = {}
    for split in ("train", "val"):
        files = sorted(path.glob(f"*_{split}_*.bin"))
        if not files:
            raise UserError(f"no *_{split}_*.bin shards in {path}; pass the directory of "
                            f"llm.c's fineweb shards")
        splits[split] = [read_fineweb_shard(f) for f in files]
    return TokenCorpus(_gpt2_meta("fineweb", path), splits)


def datasets() -> list[dict[str, object]]:
    """The GPT corpora for `sutskever data list`."""
    out: list[dict[str, object]] = []
    for name in CORPORA:
        prepared = [t for t in TOKENIZERS if (token_dir(name, t) / "meta.json").is_file()]
        shipped = name in SHIPPED
        out.append({"name": name,
                    "description": "GPT text corpus (char or gpt2 tokens)",
                    "present": shipped,
                    "location": ("shipped; tokenised: " + (", ".join(prepared) or "not yet"))
                    if shipped else "from data.path (see `sutskever data prepare --help`)"})
    return out
