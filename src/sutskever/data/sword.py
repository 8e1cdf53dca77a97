"""Read SWORD zText Bible modules (CrossWire's compressed verse-keyed format) as plain text.

The Debian packages ``sword-text-kjv``, ``sword-text-web`` and ``sword-text-sparv`` (King James
Version, World English Bible, Reina-Valera 1909; all public domain) install such modules under
``/usr/share/sword/modules/texts/ztext/<module>/`` with a configuration file
``/usr/share/sword/mods.d/<module>.conf``. The shipped corpora ``corpora/web`` and
``corpora/bible-es-en`` are built from them by ``scripts/build_bible_corpora.py``.

Format (one set of three files per testament, ``ot.*`` and ``nt.*``):

* ``.bzz``: the text, cut into blocks (one per book here) each compressed with zlib;
* ``.bzs``: the block index, 12 bytes a block: ``uint32`` offset of the block in ``.bzz``,
  ``uint32`` compressed size, ``uint32`` uncompressed size, all little-endian;
* ``.bzv``: the verse index, 10 bytes an entry: ``uint32`` block number, ``uint32`` offset of
  the entry in the uncompressed block, ``uint16`` size in bytes (0: no text).

The verse index has one entry per slot of the module's versification, in order: an empty
entry, the testament heading, then for each book a book introduction followed, for each
chapter, by a chapter introduction and the chapter's verses. So the KJV Old Testament has
2 + 39 books + 929 chapters + 23,145 verses = 24,115 entries, and entry 4 is Genesis 1:1.
Introductions hold headings and milestones, not verse text. The text is OSIS XML markup
(``<w lemma=...>`` word tags, ``<note>`` footnotes, ``<title>`` headings, milestones), which
``strip_markup`` turns into plain text.

The versification tables below (OSIS book ids and the number of verses of each chapter) were
read off the chapter milestones (``<chapter sID="Gen.2"/>``, which sit in the chapter
introductions) of the Debian modules, and check with the known totals (KJV: 66 books, 1,189
chapters, 31,102 verses). Where the World English Bible module has no milestones (Greek Esther
10-16, Baruch 6 and the Additions to Daniel, which it lacks) the usual NRSV counts are used;
they add up to the number of slots the module has there.

``KJV`` is SWORD's KJV versification (the KJV and Reina-Valera modules); ``NRSVA`` is SWORD's
NRSV-with-Apocrypha versification (the World English Bible with Deuterocanon): the KJV's 39
books, 17 deuterocanonical books after Malachi, the KJV's New Testament with 3 John 1:15 and
Revelation 12:18 added.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sutskever.errors import UserError

__all__ = [
    "VERSIFICATIONS",
    "Versification",
    "iter_entries",
    "module_conf",
    "read_module",
    "strip_markup",
]

# Book id, then the verse count of each chapter; a token that is not a number starts a book.
_KJV_OT = """
Gen 31 25 24 26 32 22 24 22 29 32 32 20 18 24 21 16 27 33 38 18 34 24 20 67 34 35 46 22 35 43 55
    32 20 31 29 43 36 30 23 23 57 38 34 34 28 34 31 22 33 26
Exod 22 25 22 31 23 30 25 32 35 29 10 51 22 31 27 36 16 27 25 26 36 31 33 18 40 37 21 43 46 38
    18 35 23 35 35 38 29 31 43 38
Lev 17 16 17 35 19 30 38 36 24 20 47 8 59 57 33 34 16 30 37 27 24 33 44 23 55 46 34
Num 54 34 51 49 31 27 89 26 23 36 35 16 33 45 41 50 13 32 22 29 35 41 30 25 18 65 23 31 40 16 54
    42 56 29 34 13
Deut 46 37 29 49 33 25 26 20 29 22 32 32 18 29 23 22 20 22 21 20 23 30 25 22 19 19 26 68 29 20
    30 52 29 12
Josh 18 24 17 24 15 27 26 35 27 43 23 24 33 15 63 10 18 28 51 9 45 34 16 33
Judg 36 23 31 24 31 40 25 35 57 18 40 15 25 20 20 31 13 31 30 48 25
Ruth 22 23 18 22
1Sam 28 36 21 22 12 21 17 22 27 27 15 25 23 52 35 23 58 30 24 42 15 23 29 22 44 25 12 25 11 31
    13
2Sam 27 32 39 12 25 23 29 18 13 19 27 31 39 33 37 23 29 33 43 26 22 51 39 25
1Kgs 53 46 28 34 18 38 51 66 28 29 43 33 34 31 34 34 24 46 21 43 29 53
2Kgs 18 25 27 44 27 33 20 29 37 36 21 21 25 29 38 20 41 37 37 21 26 20 37 20 30
1Chr 54 55 24 43 26 81 40 40 44 14 47 40 14 17 29 43 27 17 19 8 30 19 32 31 31 32 34 21 30
2Chr 17 18 17 22 14 42 22 18 31 19 23 16 22 15 19 14 19 34 11 37 20 12 21 27 28 23 9 27 36 27 21
    33 25 33 27 23
Ezra 11 70 13 24 17 22 28 36 15 44
Neh 11 20 32 23 19 19 73 18 38 39 36 47 31
Esth 22 23 15 17 14 14 10 17 32 3
Job 22 13 26 21 27 30 21 22 35 22 20 25 28 22 35 22 16 21 29 29 34 30 17 25 6 14 23 28 25 31 40
    22 33 37 16 33 24 41 30 24 34 17
Ps 6 12 8 8 12 10 17 9 20 18 7 8 6 7 5 11 15 50 14 9 13 31 6 10 22 12 14 9 11 12 24 11 22 22 28
    12 40 22 13 17 13 11 5 26 17 11 9 14 20 23 19 9 6 7 23 13 11 11 17 12 8 12 11 10 13 20 7 35
    36 5 24 20 28 23 10 12 20 72 13 19 16 8 18 12 13 17 7 18 52 17 16 15 5 23 11 13 12 9 9 5 8
    28 22 35 45 48 43 13 31 7 10 10 9 8 18 19 2 29 176 7 8 9 4 8 5 6 5 6 8 8 3 18 3 3 21 26 9 8
    24 13 10 7 12 15 21 10 20 14 9 6
Prov 33 22 35 27 23 35 27 36 18 32 31 28 25 35 33 33 28 24 29 30 31 29 35 34 28 28 27 28 27 33
    31
Eccl 18 26 22 16 20 12 29 17 18 20 10 14
Song 17 17 11 16 16 13 13 14
Isa 31 22 26 6 30 13 25 22 21 34 16 6 22 32 9 14 14 7 25 6 17 25 18 23 12 21 13 29 24 33 9 20 24
    17 10 22 38 22 8 31 29 25 28 28 25 13 15 22 26 11 23 15 12 17 13 12 21 14 21 22 11 12 19 12
    25 24
Jer 19 37 25 31 31 30 34 22 26 25 23 17 27 22 21 21 27 23 15 18 14 30 40 10 38 24 22 17 32 24 40
    44 26 22 19 32 21 28 18 16 18 22 13 30 5 28 7 47 39 46 64 34
Lam 22 22 66 22 22
Ezek 28 10 27 17 17 14 27 18 11 22 25 28 23 23 8 63 24 32 14 49 32 31 49 27 17 21 36 26 21 26 18
    32 33 31 15 38 28 23 29 49 26 20 27 31 25 24 23 35
Dan 21 49 30 37 31 28 28 27 27 21 45 13
Hos 11 23 5 19 15 11 16 14 17 15 12 14 16 9
Joel 20 32 21
Amos 15 16 15 13 27 14 17 14 15
Obad 21
Jonah 17 10 10 11
Mic 16 13 12 13 15 16 20
Nah 15 13 19
Hab 17 20 19
Zeph 18 15 20
Hag 15 23
Zech 21 13 10 14 11 15 14 23 17 12 17 14 9 21
Mal 14 17 18 6
"""

_KJV_NT = """
Matt 25 23 17 25 48 34 29 34 38 42 30 50 58 36 39 28 27 35 30 34 46 46 39 51 46 75 66 20
Mark 45 28 35 41 43 56 37 38 50 52 33 44 37 72 47 20
Luke 80 52 38 44 39 49 50 56 62 42 54 59 35 35 32 31 37 43 48 47 38 71 56 53
John 51 25 36 54 47 71 53 59 41 42 57 50 38 31 27 33 26 40 42 31 25
Acts 26 47 26 37 42 15 60 40 43 48 30 25 52 28 41 40 34 28 41 38 40 30 35 27 27 32 44 31
Rom 32 29 31 25 21 23 25 39 33 21 36 21 14 23 33 27
1Cor 31 16 23 21 13 20 40 13 27 33 34 31 13 40 58 24
2Cor 24 17 18 18 21 18 16 24 15 18 33 21 14
Gal 24 21 29 31 26 18
Eph 23 22 21 32 33 24
Phil 30 30 21 23
Col 29 23 25 18
1Thess 10 20 13 18 28
2Thess 12 17 18
1Tim 20 15 16 16 25 21
2Tim 18 26 17 22
Titus 16 15 15
Phlm 25
Heb 14 18 19 16 14 20 28 13 28 39 40 29 25
Jas 27 26 18 17 20
1Pet 25 25 22 19 14
2Pet 21 22 18
1John 10 29 24 21 21
2John 13
3John 14
Jude 25
Rev 20 29 22 11 14 17 17 13 21 11 19 17 18 20 8 21 18 24 21 15 27 21
"""

# The deuterocanonical books of SWORD's NRSVA versification, in its order, after Malachi.
_NRSVA_DEUTEROCANON = """
Tob 22 14 17 21 22 18 16 21 6 13 18 22 17 15
Jdt 16 28 10 15 24 21 32 36 14 23 23 20 20 19 14 25
EsthGr 22 23 15 17 14 14 10 17 32 13 12 6 18 19 16 24
Wis 16 24 19 20 23 25 30 21 18 21 26 27 19 31 19 29 21 25 22
Sir 30 18 31 31 15 37 36 19 18 31 34 18 26 27 20 30 32 33 30 31 28 27 27 34 26 29 30 26 28 25 31
    24 33 31 26 31 31 34 35 30 22 25 33 23 26 20 25 25 16 29 30
Bar 22 35 37 37 9 73
PrAzar 68
Sus 64
Bel 42
1Macc 64 70 60 61 68 63 50 32 73 89 74 53 53 49 41 24
2Macc 36 32 40 50 27 31 42 36 29 38 38 45 26 46 39
1Esd 58 30 24 63 73 34 15 96 55
PrMan 15
AddPs 7
3Macc 29 33 30 21 51 41 23
2Esd 40 48 36 52 56 59 140 63 47 59 46 51 58 48 63 78
4Macc 35 24 21 26 38 35 23 29 32 21 27 19 27 20 32 25 24 24
"""

# Where NRSVA's New Testament differs from the KJV's: (book, chapter) -> verses.
_NRSVA_NT_CHANGES = {("3John", 1): 15, ("Rev", 12): 18}

Books = tuple[tuple[str, tuple[int, ...]], ...]


def _parse(table: str) -> Books:
    books: list[tuple[str, list[int]]] = []
    for token in table.split():
        if token.isdigit():
            books[-1][1].append(int(token))
        else:
            books.append((token, []))
    return tuple((name, tuple(counts)) for name, counts in books)


@dataclass(frozen=True)
class Versification:
    """A versification: the books of each testament with the verse count of each chapter."""

    name: str
    ot: Books
    nt: Books

    def testament(self, prefix: str) -> Books:
        return self.ot if prefix == "ot" else self.nt

    def n_entries(self, prefix: str) -> int:
        """Entries of the testament's verse index: 2 + a book intro per book + a chapter
        intro per chapter + the verses."""
        return 2 + sum(1 + len(chs) + sum(chs) for _, chs in self.testament(prefix))


def _nrsva() -> Versification:
    nt = tuple(
        (book, tuple(_NRSVA_NT_CHANGES.get((book, c), n) for c, n in enumerate(chs, 1)))
        for book, chs in _parse(_KJV_NT)
    )
    return Versification("NRSVA", _parse(_KJV_OT) + _parse(_NRSVA_DEUTEROCANON), nt)


VERSIFICATIONS: dict[str, Versification] = {
    "KJV": Versification("KJV", _parse(_KJV_OT), _parse(_KJV_NT)),
    "NRSVA": _nrsva(),
}

_BLOCK = struct.Struct("<III")
_VERSE = struct.Struct("<IIH")


def _read_testament(module: Path, prefix: str) -> list[bytes] | None:
    """The raw entries of one testament (``ot`` or ``nt``), or None if the module lacks it."""
    paths = [module / f"{prefix}.{ext}" for ext in ("bzs", "bzv", "bzz")]
    present = [p.is_file() for p in paths]
    if not any(present):
        return None
    if not all(present):
        missing = ", ".join(p.name for p in paths if not p.is_file())
        raise UserError(f"SWORD module {module} lacks {missing}; reinstall the module")
    bzs, bzv, bzz = (p.read_bytes() for p in paths)
    if len(bzs) % _BLOCK.size or len(bzv) % _VERSE.size:
        raise UserError(f"{module}/{prefix}.bzs or .bzv has a size that is not a whole number "
                        "of records; the module is damaged or not a zText module")
    blocks: list[bytes] = []
    for offset, csize, usize in _BLOCK.iter_unpack(bzs):
        try:
            block = zlib.decompress(bzz[offset:offset + csize])
        except zlib.error as err:
            raise UserError(f"{module}/{prefix}.bzz block at byte {offset} does not "
                            f"decompress ({err}); the module is damaged") from err
        if len(block) != usize:
            raise UserError(f"{module}/{prefix}.bzz block at byte {offset} has {len(block)} "
                            f"bytes, its index says {usize}; the module is damaged")
        blocks.append(block)
    entries: list[bytes] = []
    for n, (block_no, offset, size) in enumerate(_VERSE.iter_unpack(bzv)):
        if size == 0:
            entries.append(b"")
            continue
        if block_no >= len(blocks) or offset + size > len(blocks[block_no]):
            raise UserError(f"{module}/{prefix}.bzv entry {n} points outside the text "
                            f"(block {block_no}, bytes {offset}+{size}); the module is damaged")
        entries.append(blocks[block_no][offset:offset + size])
    return entries


def module_conf(module: str | Path) -> dict[str, str]:
    """The ``key=value`` lines of the module's ``mods.d/*.conf``, if one is found, else ``{}``.

    The conf is looked for where SWORD keeps it: ``<root>/mods.d/`` for a module directory
    ``<root>/modules/texts/ztext/<name>/``, named after the module (any case). Repeated keys
    keep their first value.
    """
    module = Path(module)
    mods_d = module.parent.parent.parent.parent / "mods.d"
    if not mods_d.is_dir():
        return {}
    for conf in sorted(mods_d.glob("*.conf")):
        if conf.stem.lower() != module.name.lower():
            continue
        values: dict[str, str] = {}
        for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
            key, eq, value = line.partition("=")
            if eq and not line.startswith("#"):
                values.setdefault(key.strip(), value.strip())
        return values
    return {}


def _versification(module: Path, counts: dict[str, int], name: str | None) -> Versification:
    if name is None:
        name = module_conf(module).get("Versification")
    if name is None:  # no conf: the versification whose index sizes match
        for candidate in VERSIFICATIONS.values():
            if all(candidate.n_entries(p) == n for p, n in counts.items()):
                return candidate
        raise UserError(f"{module}: no known versification has {counts} index entries; pass "
                        f"versification= (one of {', '.join(VERSIFICATIONS)})")
    if name not in VERSIFICATIONS:
        raise UserError(f"{module}: versification {name!r} is not supported; "
                        f"supported: {', '.join(VERSIFICATIONS)}")
    v11n = VERSIFICATIONS[name]
    for prefix, n in counts.items():
        if v11n.n_entries(prefix) != n:
            raise UserError(f"{module}/{prefix}.bzv has {n} entries but the {name} "
                            f"versification has {v11n.n_entries(prefix)}; wrong versification "
                            "or damaged module")
    return v11n


def iter_entries(module: str | Path, versification: str | None = None,
                 ) -> Iterator[tuple[str, int, int, str]]:
    """Every entry of the module as ``(book, chapter, verse, osis_markup)``, in order.

    Introductions have ``verse == 0`` (chapter) or ``chapter == verse == 0`` (book); the two
    entries at the head of each testament have ``book == ""``. ``versification`` is a key of
    ``VERSIFICATIONS``; by default it is the conf file's ``Versification=``, or, with no conf,
    the one whose index sizes match the module's.
    """
    module = Path(module)
    if not module.is_dir():
        raise UserError(f"SWORD module directory {module} does not exist; install e.g. the "
                        "Debian package sword-text-kjv, whose modules are under "
                        "/usr/share/sword/modules/texts/ztext/")
    testaments = {p: _read_testament(module, p) for p in ("ot", "nt")}
    raw = {p: e for p, e in testaments.items() if e is not None}
    if not raw:
        raise UserError(f"{module} has no ot.bzv or nt.bzv; it is not a SWORD zText module")
    encoding = module_conf(module).get("Encoding", "UTF-8")
    encoding = "utf-8" if encoding.upper() in ("UTF-8", "UTF8") else "latin-1"
    v11n = _versification(module, {p: len(e) for p, e in raw.items()}, versification)
    for prefix, entries in raw.items():
        slots = _slots(v11n.testament(prefix))
        for (book, chapter, verse), data in zip(slots, entries, strict=True):
            yield book, chapter, verse, data.decode(encoding, errors="replace")


def _slots(books: Books) -> Iterator[tuple[str, int, int]]:
    """The (book, chapter, verse) of each entry of a testament's verse index."""
    yield "", 0, 0  # empty
    yield "", 0, 0  # testament heading
    for book, chapters in books:
        yield book, 0, 0
        for chapter, n_verses in enumerate(chapters, 1):
            for verse in range(n_verses + 1):
                yield book, chapter, verse


def read_module(module: str | Path, versification: str | None = None, *,
                canonical_titles: bool = True, keep_empty: bool = False,
                ) -> list[tuple[str, str]]:
    """The verses of a SWORD zText module as ``(ref, plain_text)``, ref like ``"Gen.1.1"``.

    Introductions (book and chapter headings, prefaces) are left out, and so are empty verse
    slots unless ``keep_empty``. ``canonical_titles``: keep the text of titles marked
    ``canonical="true"`` (the Psalms' superscriptions, which the Reina-Valera module has as
    plain verse text); other titles, footnotes and markup are removed (``strip_markup``).
    """
    verses = []
    for book, chapter, verse, markup in iter_entries(module, versification):
        if verse == 0:
            continue
        text = strip_markup(markup, canonical_titles=canonical_titles)
        if text or keep_empty:
            verses.append((f"{book}.{chapter}.{verse}", text))
    return verses


# A gap: where removed markup stood. It becomes one space, or nothing next to punctuation
# that takes no space there, or at the ends of the text.
_GAP = "\x00"
_NO_SPACE_BEFORE = frozenset(",.;:!?)]}’”»…")
_NO_SPACE_AFTER = frozenset("([{‘“«¿¡")
# Elements removed with their content: footnotes and cross-references, editorial speaker
# labels (Song of Songs), alternative readings; titles unless canonical (handled apart).
_DROP = re.compile(r"<(note|speaker|rdg)\b[^>]*?(?<!/)>.*?</\1\s*>", re.DOTALL)
_TITLE = re.compile(r"<title\b([^>]*?)(?<!/)>(.*?)</title\s*>", re.DOTALL)
# Elements that separate text (lines, paragraphs, milestones, divisions): they leave a gap.
# So does <transChange> (words a translation adds): the Reina-Valera module writes it with no
# space around (``prevaricadores</w><transChange>hallará</transChange><w>mal``); no module
# here has one inside a word.
_BLOCK_TAGS = ("l", "lg", "lb", "p", "div", "chapter", "verse", "milestone", "list", "item",
               "table", "row", "cell", "head", "title", "br", "transChange")
_BLOCK_TAG = re.compile(r"</?(?:" + "|".join(_BLOCK_TAGS) + r")\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
# Divisions that are not scripture: prefaces, glossaries, introductions (OSIS div types).
_NONCANONICAL_DIVS = frozenset({
    "front", "back", "glossary", "introduction", "preface", "titlePage", "coverPage", "colophon",
    "index", "afterword", "acknowledgement", "bibliography", "dedication", "publicationData",
})
_DIV = re.compile(r"<div\b([^>]*)>")
_ATTR = re.compile(r'([A-Za-z:]+)\s*=\s*"([^"]*)"')
# USFM character markers a converter left in the text, such as ``\nd `` (KJV Exodus 6:3).
_USFM = re.compile(r"\\[a-z]+[0-9]*\*? ?")
_GAPS = re.compile(r"[\s\x00]*\x00[\s\x00]*")
_SPACES = re.compile(r"\s+")


def _gap(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    if start == 0 or end == len(text):
        return ""
    if text[start - 1] in _NO_SPACE_AFTER or text[end] in _NO_SPACE_BEFORE:
        return ""
    return " "


def _drop_noncanonical_divs(osis: str) -> str:
    """Remove glossaries, prefaces and the like: both the container form ``<div
    type="glossary">...</div>`` (up to the next ``</div>``) and the milestone form ``<div
    sID="x" type="glossary"/>...<div eID="x"/>`` (up to the end of the entry if no ``eID``)."""
    pos = 0
    while (match := _DIV.search(osis, pos)) is not None:
        attrs = dict(_ATTR.findall(match.group(1)))
        if attrs.get("type") not in _NONCANONICAL_DIVS:
            pos = match.end()
            continue
        if match.group(1).rstrip().endswith("/"):
            if "sID" not in attrs:
                pos = match.end()
                continue
            end_id = re.escape(attrs["sID"])
            end = re.compile(r'<div\b[^>]*\beID\s*=\s*"' + end_id + r'"[^>]*>')
        else:
            end = re.compile(r"</div\s*>")
        close = end.search(osis, match.end())
        stop = len(osis) if close is None else close.end()
        osis = osis[:match.start()] + _GAP + osis[stop:]
        pos = match.start() + 1
    return osis


def strip_markup(osis: str, *, canonical_titles: bool = True) -> str:
    """OSIS markup -> plain text on one line.

    Removed with their content: ``<note>`` (footnotes, cross-references), ``<speaker>``,
    ``<rdg>``, ``<title>`` (the text of ``canonical="true"`` titles is kept if
    ``canonical_titles``), divisions that are not scripture (``<div type="glossary">``,
    ``"front"``, ``"introduction"`` ...) and stray USFM markers (``\\nd``). Other tags are
    removed and their content kept (``<w>``, ``<transChange>``, ``<divineName>``, ``<q>``
    ...). Where a line, paragraph, milestone or removed element stood between two words one
    space is left, none before closing punctuation or after opening punctuation; runs of white
    space become one space; entities (``&amp;``) are decoded.
    """
    text = _drop_noncanonical_divs(osis)
    text = _DROP.sub(_GAP, text)

    def title(match: re.Match[str]) -> str:
        if canonical_titles and re.search(r'canonical\s*=\s*"true"', match.group(1)):
            return f"{_GAP}{match.group(2)}{_GAP}"
        return _GAP

    text = _TITLE.sub(title, text)
    text = _BLOCK_TAG.sub(_GAP, text)
    text = _ANY_TAG.sub("", text)
    text = _USFM.sub("", text)
    text = _GAPS.sub(_gap, text)
    return _SPACES.sub(" ", html.unescape(text)).strip()
