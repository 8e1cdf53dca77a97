"""Rebuild the shipped Bible corpora from the Debian SWORD modules.

Two public-domain corpora, both read with ``sutskever.data.sword.read_module`` (OSIS markup,
footnotes, cross-references and headings removed; one verse is one line of plain text):

* ``corpora/web/web.txt.gz``: the World English Bible with Deuterocanon (module
  ``engWEB2015eb`` of the Debian package ``sword-text-web``), every non-empty verse of the
  module in the order of its versification (SWORD's NRSVA: Genesis .. Malachi, Tobit .. 4
  Maccabees, Matthew .. Revelation), one verse per line, no references: a single document for
  language modelling.
* ``corpora/bible-es-en/verses.tsv.gz``: verse-aligned Spanish-English pairs,
  ``ref<TAB>spanish<TAB>english``, Spanish from the Reina-Valera 1909 (``spaRV1909eb``,
  package ``sword-text-sparv``), English from the King James Version (``engKJV2006eb``,
  package ``sword-text-kjv``). Both modules use SWORD's KJV versification, but the
  Reina-Valera's own verse division differs from the KJV's in places (Numbers 13 and 30, 1
  Samuel 24, 1 Chronicles 21, Jonah 2 ... follow the Hebrew numbering, so the same reference
  holds a neighbouring verse), so a pair is kept only where both verses are non-empty and an
  alignment of the chapter by verse lengths and a word-translation table learnt from the
  same-ref pairs (``confirmed_refs``) pairs the two verses with each other. The KJV's
  paragraph signs (``¶``) are removed.

Refs are OSIS (``Gen.1.1``). Psalm superscriptions, which the English modules mark as
canonical titles and the Reina-Valera module has as plain verse text, are kept as the start of
the verse in all three (``canonical_titles=True``).

Checks before writing: each module is the version the shipped files were built from (a
warning otherwise), and every chapter milestone (``<chapter sID="Gen.2"/>``) of a module lies in
the introduction entry of that chapter, which confirms the versification tables.

Files are gzip'd at level 9 with mtime 0 and no file name, so the same modules always give
byte-identical files.

Usage::

    apt-get download sword-text-web sword-text-kjv sword-text-sparv   # in a scratch directory
    python scripts/build_bible_corpora.py DIR_WITH_THE_DEBS            # extracts with dpkg-deb
    python scripts/build_bible_corpora.py [ZTEXT_DIR] [--out DIR]      # installed modules

``ZTEXT_DIR`` is the directory holding the module directories (default
``/usr/share/sword/modules/texts/ztext``, where the Debian packages install them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from sutskever.data.sword import iter_entries, module_conf, read_module
from sutskever.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "sutskever" / "data" / "corpora"
DEFAULT_ZTEXT = Path("/usr/share/sword/modules/texts/ztext")

# Module -> (Debian package, module Version= the shipped files were built from).
MODULES = {
    "engWEB2015eb": ("sword-text-web", "426.0"),
    "engKJV2006eb": ("sword-text-kjv", "14.3"),
    "spaRV1909eb": ("sword-text-sparv", "2.60"),
}
CHAPTER_MILESTONE = re.compile(r'<chapter\b[^>]*\bsID="([^".]+)\.([0-9]+)"')


def extract_debs(debs: list[Path], dest: Path) -> Path:
    """Unpack the .deb files into ``dest`` with ``dpkg-deb -x``; return the ztext directory."""
    dpkg = shutil.which("dpkg-deb")
    if dpkg is None:
        raise UserError("dpkg-deb is not installed; unpack the .deb files with `ar x` and "
                        "`tar xf data.tar.*`, then pass the modules/texts/ztext directory")
    for deb in debs:
        result = subprocess.run([dpkg, "-x", str(deb), str(dest)], capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise UserError(f"`dpkg-deb -x {deb}` failed: {result.stderr.strip()}")
    return dest / "usr" / "share" / "sword" / "modules" / "texts" / "ztext"


def check_module(module: Path) -> None:
    """Warn if the module is not the version the shipped files came from; fail if a chapter
    milestone is not in the introduction entry of its chapter (versification mismatch)."""
    package, version = MODULES[module.name]
    found = module_conf(module).get("Version")
    if found != version:
        print(f"warning: {module.name} is version {found}, the shipped corpora were built from "
              f"{version} (Debian {package}); the output will differ", file=sys.stderr)
    books = set()
    entries = list(iter_entries(module))
    for book, _, _, _ in entries:
        books.add(book)
    misplaced, outside = [], 0
    for book, chapter, verse, markup in entries:
        for match in CHAPTER_MILESTONE.finditer(markup):
            if match.group(1) not in books:
                outside += 1  # a book the versification lacks (WEB's Daniel (Greek))
            elif (match.group(1), int(match.group(2))) != (book, chapter) or verse != 0:
                misplaced.append(f"{match.group(1)}.{match.group(2)} at {book}.{chapter}.{verse}")
    if misplaced:
        raise UserError(f"{module.name}: chapter milestones not where the versification puts "
                        f"them: {', '.join(misplaced[:5])}")
    print(f"{module.name}: chapter milestones agree with the versification"
          + (f" ({outside} of books outside it ignored)" if outside else ""))


# Alignment check of the Spanish-English pairs (see confirmed_refs). Costs are in units of
# -log likelihood: a verse left unpaired, two verses paired with one, a pair of verses whose
# numbers differ, the cap of a pair's length cost, the weight of its lexical cost.
SKIP_COST, MERGE_COST, SHIFT_COST, MAX_LENGTH_COST, LEXICAL_WEIGHT = 8.0, 6.0, 1.0, 8.0, 6.0
BAND = 10  # the alignment of a chapter strays at most this many verses from the diagonal
WORD = re.compile(r"[^\W\d_]+")

Verse = tuple[int, int, frozenset[str]]  # verse number, characters, lowercased words


def translation_table(spanish: list[frozenset[str]], english: list[frozenset[str]],
                      ) -> dict[str, str]:
    """Spanish word -> the English word that occurs most with it in the same-ref pairs.

    Dice's coefficient ``2 c(s, e) / (c(s) + c(e))`` over pairs; Spanish words in 5 to 3,000
    pairs, English words in 5 or more; kept if the coefficient is at least 0.3 (``jehová`` ->
    ``lord``, ``pan`` -> ``bread``). Ties go to the alphabetically first English word.
    """
    es_count = Counter(w for words in spanish for w in words)
    en_count = Counter(w for words in english for w in words)
    pairs_of: dict[str, list[int]] = defaultdict(list)
    for n, words in enumerate(spanish):
        for w in words:
            if 5 <= es_count[w] <= 3000:
                pairs_of[w].append(n)
    table = {}
    for word, pairs in pairs_of.items():
        together = Counter(e for n in pairs for e in english[n] if en_count[e] >= 5)
        if not together:
            continue
        best = min(together, key=lambda e: (-together[e] / (es_count[word] + en_count[e]), e))
        if 2 * together[best] / (es_count[word] + en_count[best]) >= 0.3:
            table[word] = best
    return table


def confirmed_refs(spanish: dict[str, str], english: dict[str, str]) -> set[str]:
    """The refs whose Spanish and English verses an alignment of their chapter pairs up.

    Gale & Church's length-based sentence alignment (Computational Linguistics 19(1), 1993)
    with a lexical term, run chapter by chapter over the non-empty verses of both sides by
    dynamic programming. Pairing texts of ``a`` and ``b`` characters costs ``z**2 / 2`` with
    ``z = (a - c*b) / (s * sqrt(b))``, ``c`` the Spanish/English length ratio and ``s`` the
    spread (a median absolute deviation), both estimated from all same-ref pairs, plus
    ``LEXICAL_WEIGHT * (1 - f)`` with ``f`` the share of the Spanish words in
    ``translation_table`` whose English word is in the English text (same-ref pairs: median
    0.77; each verse against the next English verse: median 0.13). Leaving a verse unpaired,
    pairing two verses with one, and, a little, pairing verses whose numbers differ cost more,
    so the verse numbering is kept unless a shifted alignment explains the texts much better.
    A ref is confirmed when its two verses form a one-to-one pair of the cheapest alignment.
    """
    same = [ref for ref in english if ref in spanish]
    ratio = sum(len(spanish[r]) for r in same) / sum(len(english[r]) for r in same)
    deviations = [(len(spanish[r]) - ratio * len(english[r])) / math.sqrt(len(english[r]))
                  for r in same]
    centre = statistics.median(deviations)
    spread = 1.4826 * statistics.median(abs(d - centre) for d in deviations) or 1.0
    words = [{ref: frozenset(WORD.findall(text.lower())) for ref, text in side.items()}
             for side in (spanish, english)]
    table = translation_table([words[0][r] for r in same], [words[1][r] for r in same])

    def cost(es: list[Verse], en: list[Verse]) -> float:
        a, b = sum(v[1] for v in es), sum(v[1] for v in en)
        z = (a - ratio * b) / (spread * math.sqrt(b))
        es_words = frozenset().union(*(v[2] for v in es)) & table.keys()
        en_words = frozenset().union(*(v[2] for v in en))
        found = (sum(table[w] in en_words for w in es_words) / len(es_words)
                 if es_words else 0.5)
        return min(z * z / 2, MAX_LENGTH_COST) + LEXICAL_WEIGHT * (1 - found)

    chapters: dict[str, tuple[list[Verse], list[Verse]]] = defaultdict(lambda: ([], []))
    for side, verses in enumerate((spanish, english)):
        for ref, text in verses.items():
            chapter, _, verse = ref.rpartition(".")
            chapters[chapter][side].append((int(verse), len(text), words[side][ref]))
    confirmed = set()
    for chapter, (es, en) in chapters.items():
        es.sort(key=lambda v: v[0])
        en.sort(key=lambda v: v[0])
        confirmed.update(f"{chapter}.{verse}" for verse in _align(es, en, cost))
    return confirmed


def _align(es: list[Verse], en: list[Verse], cost) -> list[int]:
    """The cheapest alignment of two chapters (moves 1-1, 1-0, 0-1, 2-1, 1-2); the verse
    numbers it pairs one-to-one with the same number."""
    n, m = len(es), len(en)
    inf = float("inf")
    total = [[inf] * (m + 1) for _ in range(n + 1)]
    step = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    total[0][0] = 0.0
    for i in range(n + 1):
        for j in range(max(0, i - BAND), min(m, i + BAND) + 1):
            here = total[i][j]
            if here == inf:
                continue
            moves = [(1, 0, SKIP_COST), (0, 1, SKIP_COST)]
            if i < n and j < m:
                shifted = SHIFT_COST if es[i][0] != en[j][0] else 0.0
                moves.append((1, 1, cost(es[i:i + 1], en[j:j + 1]) + shifted))
            if i + 1 < n and j < m:
                moves.append((2, 1, MERGE_COST + cost(es[i:i + 2], en[j:j + 1])))
            if i < n and j + 1 < m:
                moves.append((1, 2, MERGE_COST + cost(es[i:i + 1], en[j:j + 2])))
            for a, b, c in moves:
                if i + a <= n and j + b <= m and here + c < total[i + a][j + b]:
                    total[i + a][j + b] = here + c
                    step[i + a][j + b] = (a, b)
    if total[n][m] == inf:  # the chapters differ by more than BAND verses
        return []
    matched = []
    i, j = n, m
    while i or j:
        a, b = step[i][j]
        if a == b == 1 and es[i - 1][0] == en[j - 1][0]:
            matched.append(es[i - 1][0])
        i, j = i - a, j - b
    return matched


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the header: the bytes depend on the text alone.
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def text_stats(lines: list[str], newlines: bool) -> dict[str, int]:
    """Lines, words (split on white space) and characters (Unicode code points; with one
    newline per line if ``newlines``, as in a file of the lines)."""
    text = "".join(line + "\n" if newlines else line for line in lines)
    return {"lines": len(lines), "words": sum(len(line.split()) for line in lines),
            "characters": len(text), "distinct characters": len(set(text))}


def build(ztext: Path, out_root: Path) -> dict[str, dict[str, int]]:
    modules = {name: ztext / name for name in MODULES}
    for name, path in modules.items():
        if not path.is_dir():
            raise UserError(f"module {name} is not in {ztext}; install the Debian package "
                            f"{MODULES[name][0]} or pass the directory it was unpacked to")
        check_module(path)

    web = [text for _, text in read_module(modules["engWEB2015eb"])]
    write_gz(out_root / "web" / "web.txt.gz", "".join(line + "\n" for line in web))

    spanish = dict(read_module(modules["spaRV1909eb"]))
    english = {ref: re.sub(r"¶\s*", "", text).strip()
               for ref, text in read_module(modules["engKJV2006eb"])}
    english = {ref: text for ref, text in english.items() if text}
    confirmed = confirmed_refs(spanish, english)
    same_ref = [ref for ref in english if ref in spanish]
    pairs = [(ref, spanish[ref], english[ref]) for ref in same_ref if ref in confirmed]
    write_gz(out_root / "bible-es-en" / "verses.tsv.gz",
             "".join(f"{ref}\t{es}\t{en}\n" for ref, es, en in pairs))

    return {
        "web": text_stats(web, newlines=True),
        "es": text_stats([es for _, es, _ in pairs], newlines=False),
        "en": text_stats([en for _, _, en in pairs], newlines=False),
        "pairs": {"pairs": len(pairs), "same-ref pairs": len(same_ref),
                  "left out by the alignment check": len(same_ref) - len(pairs),
                  "spanish verses": len(spanish), "english verses": len(english)},
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_ZTEXT,
                        help="directory of the SWORD module directories, or a directory with "
                             f"the three .deb files (default: {DEFAULT_ZTEXT})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"corpora directory to write web/ and bible-es-en/ in "
                             f"(default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            debs = sorted(args.source.glob("*.deb")) if args.source.is_dir() else []
            ztext = extract_debs(debs, Path(tmp)) if debs else args.source
            stats = build(ztext, args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, values in stats.items():
        print(name, ", ".join(f"{key} {value:,}" for key, value in values.items()))
    for path in (args.out / "web" / "web.txt.gz", args.out / "bible-es-en" / "verses.tsv.gz"):
        print(f"sha256 {sha256(path)}  {path.relative_to(args.out)} ({path.stat().st_size:,} "
              "bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
