"""SWORD zText reader (sutskever.data.sword), the shipped Bible and Shakespeare corpora and
their build scripts.

The reader is tested on modules written here in the real binary format (zlib blocks, a 12-byte
block index, a 10-byte verse index); the shipped corpora are checked against their READMEs.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import struct
import zlib
from pathlib import Path
from types import ModuleType

import pytest

from sutskever.data.sword import (
    VERSIFICATIONS,
    iter_entries,
    module_conf,
    read_module,
    strip_markup,
)
from sutskever.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "src" / "sutskever" / "data" / "corpora"
KJV = VERSIFICATIONS["KJV"]


def slot(prefix: str, ref: str, v11n=KJV) -> int:
    """Index of a verse in a testament's verse index, counted by hand from the table."""
    book, chapter, verse = ref.split(".")
    index = 2  # the empty entry and the testament heading
    for name, chapters in v11n.testament(prefix):
        index += 1  # book introduction
        for number, n_verses in enumerate(chapters, 1):
            index += 1  # chapter introduction
            if (name, number) == (book, int(chapter)):
                return index + int(verse) - 1
            index += n_verses
    raise KeyError(ref)


def write_testament(directory: Path, prefix: str, entries: dict[int, str], n_entries: int,
                    blocks: int = 2) -> None:
    """A zText testament: ``entries`` (index -> markup) cut into ``blocks`` zlib blocks."""
    indices = sorted(entries)
    per_block = -(-len(indices) // blocks)
    bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
    where: dict[int, tuple[int, int, int]] = {}
    for b in range(blocks):
        block = bytearray()
        for index in indices[b * per_block:(b + 1) * per_block]:
            data = entries[index].encode("utf-8")
            where[index] = (b, len(block), len(data))
            block += data
        compressed = zlib.compress(bytes(block))
        bzs += struct.pack("<III", len(bzz), len(compressed), len(block))
        bzz += compressed
    for index in range(n_entries):
        bzv += struct.pack("<IIH", *where.get(index, (0, 0, 0)))
    directory.mkdir(parents=True, exist_ok=True)
    for ext, data in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
        (directory / f"{prefix}.{ext}").write_bytes(bytes(data))


OT_VERSES = {
    "Gen.1.1": '<w lemma="strong:H7225">In the beginning</w> <w lemma="strong:H0430">God</w>'
               '<note placement="foot"><reference type="annotateRef">1:1 </reference>Elohim.'
               '</note><w lemma="strong:H1254">created</w> the heavens &amp; the earth. ',
    "Gen.1.2": '<div type="x-milestone" subType="x-preverse" sID="pv1"/><div sID="g1" '
               'type="x-p"/><div type="x-milestone" subType="x-preverse" eID="pv1"/>The earth'
               '<note placement="foot">or, land</note>; it was <transChange type="added">'
               'without</transChange> form.<div eID="g1" type="x-p"/>',
    "Ps.3.1": '<title canonical="true" type="psalm">A Psalm of David.</title> <lg sID="a"/>'
              '<l level="1" sID="b"/>LORD, how are they increased<l eID="b" level="1"/>'
              '<l level="2" sID="c"/>that trouble me!<l eID="c" level="2"/>',
    "Ps.119.1": '<title><foreign>ALEPH.</foreign></title>Blessed \\nd are the undefiled.',
    "Mal.4.6": "<q who=\"x\">And he shall turn the heart</q> of the fathers.",
}
NT_VERSES = {
    "Matt.1.1": '<speaker>Narrator</speaker>The book of the generation of '
                '<divineName>Jesus</divineName> Christ.',
    "John.3.16": "\u00b6 For God so loved the world.",
    "Rev.22.21": 'The grace be with you all. Amen. <div eID="x" type="x-p"/> <div sID="g" '
                 'type="glossary"/> <title>Glossary</title> Abaddon means destruction.',
}
PLAIN = {
    "Gen.1.1": "In the beginning God created the heavens & the earth.",
    "Gen.1.2": "The earth; it was without form.",
    "Ps.3.1": "A Psalm of David. LORD, how are they increased that trouble me!",
    "Ps.119.1": "Blessed are the undefiled.",
    "Mal.4.6": "And he shall turn the heart of the fathers.",
    "Matt.1.1": "The book of the generation of Jesus Christ.",
    "John.3.16": "\u00b6 For God so loved the world.",
    "Rev.22.21": "The grace be with you all. Amen.",
}


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KJV-versified module with a conf file, laid out as the Debian packages install it."""
    root = tmp_path_factory.mktemp("sword")
    path = root / "modules" / "texts" / "ztext" / "testmod"
    ot = {slot("ot", ref): text for ref, text in OT_VERSES.items()}
    ot[1] = '<milestone type="x-importer" subType="x-osis2mod" n="$Rev: 3769 $"/>'
    ot[2] = '<div osisID="Gen" type="book"/><title type="main">Genesis</title>'  # book intro
    ot[3] = '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>'  # chapter intro
    write_testament(path, "ot", ot, KJV.n_entries("ot"), blocks=3)
    write_testament(path, "nt", {slot("nt", r): t for r, t in NT_VERSES.items()},
                    KJV.n_entries("nt"), blocks=1)
    (root / "mods.d").mkdir()
    (root / "mods.d" / "testmod.conf").write_text(
        "[TestMod]\nDataPath=./modules/texts/ztext/testmod/\nModDrv=zText\nEncoding=UTF-8\n"
        "# Versification=NRSVA\nVersification=KJV\nVersion=1.0\n")
    return path


def test_versification_tables_have_the_known_totals() -> None:
    books = KJV.ot + KJV.nt
    assert len(books) == 66 and books[0][0] == "Gen" and books[-1][0] == "Rev"
    assert sum(len(c) for _, c in books) == 1189
    assert sum(sum(c) for _, c in books) == 31102
    assert dict(books)["Ps"][118] == 176 and len(dict(books)["Ps"]) == 150
    assert (KJV.n_entries("ot"), KJV.n_entries("nt")) == (24115, 8246)
    nrsva = VERSIFICATIONS["NRSVA"]
    assert (nrsva.n_entries("ot"), nrsva.n_entries("nt")) == (31027, 8248)
    assert [b for b, _ in nrsva.ot[39:41]] == ["Tob", "Jdt"] and len(nrsva.ot) == 56
    assert dict(nrsva.nt)["3John"] == (15,) and dict(nrsva.nt)["Rev"][11] == 18


def test_read_module_gives_refs_and_plain_text(module: Path) -> None:
    verses = read_module(module)
    assert verses == [(ref, PLAIN[ref]) for ref in PLAIN]  # in canonical order, empty ones out
    assert slot("ot", "Gen.1.1") == 4 and slot("nt", "Rev.22.21") == 8245
    assert read_module(module, canonical_titles=False)[2] == (
        "Ps.3.1", "LORD, how are they increased that trouble me!")
    everything = read_module(module, keep_empty=True)
    assert len(everything) == 31102 and everything[3] == ("Gen.1.4", "")


def test_iter_entries_gives_introductions(module: Path) -> None:
    entries = list(iter_entries(module))
    assert len(entries) == 24115 + 8246
    assert [e[:3] for e in entries[:5]] == [("", 0, 0), ("", 0, 0), ("Gen", 0, 0),
                                            ("Gen", 1, 0), ("Gen", 1, 1)]
    assert "osisID=\"Gen.1\"" in entries[3][3] and strip_markup(entries[2][3]) == ""
    assert entries[24115 + 4][:3] == ("Matt", 1, 1) and entries[-1][:3] == ("Rev", 22, 21)
    assert module_conf(module)["Versification"] == "KJV"


def test_versification_without_conf_and_errors(module: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"  # no mods.d: the versification is told by the index sizes
    bare.mkdir()
    for ext in ("bzs", "bzv", "bzz"):
        (bare / f"nt.{ext}").write_bytes((module / f"nt.{ext}").read_bytes())
    assert read_module(bare) == [(r, PLAIN[r]) for r in ("Matt.1.1", "John.3.16", "Rev.22.21")]
    with pytest.raises(UserError, match="has 8246 entries but the NRSVA"):
        read_module(bare, "NRSVA")
    with pytest.raises(UserError, match="not supported"):
        read_module(bare, "Vulg")
    with pytest.raises(UserError, match="does not exist"):
        read_module(tmp_path / "missing")
    (bare / "ot.bzv").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="lacks ot.bzs, ot.bzz"):
        read_module(bare)
    (bare / "ot.bzv").unlink()
    (bare / "nt.bzv").write_bytes(b"\0" * 25)
    with pytest.raises(UserError, match="whole number of records"):
        read_module(bare)
    (bare / "nt.bzv").write_bytes(struct.pack("<IIH", 5, 0, 3) * 8246)
    with pytest.raises(UserError, match="points outside the text"):
        read_module(bare)


@pytest.mark.parametrize(("markup", "text"), [
    ("Yahweh<note>“Yahweh” is God’s name.</note>God made", "Yahweh God made"),
    ("the shekel<note>10 g</note> of the sanctuary", "the shekel of the sanctuary"),
    ("the evil spirit<note>Gr. <rdg>demon</rdg></note>; because", "the evil spirit; because"),
    ("los prevaricadores</w><transChange type=\"added\">hallará</transChange><w>mal</w>.",
     "los prevaricadores hallará mal."),
    ("<w>give</w>n.", "given."),
    ("walk’</q> ?”", "walk’ ?”"),
    ("“<l sID=\"a\"/>Awake!<l eID=\"a\"/><l sID=\"b\"/>Arise<l eID=\"b\"/>", "“Awake! Arise"),
    ("(<div type=\"x-p\"/>Selah<div type=\"x-p\"/>)", "(Selah)"),
    ("A<div type=\"introduction\">Intro text</div> B", "A B"),
    ("<speaker>Beloved</speaker> Let him kiss me", "Let him kiss me"),
    ("tab\tand\nnewline", "tab and newline"),
])
def test_strip_markup(markup: str, text: str) -> None:
    assert strip_markup(markup) == text


# --- the shipped corpora ---------------------------------------------------------------------

SHIPPED = {
    "web": "web.txt.gz",
    "bible-es-en": "verses.tsv.gz",
    "shakespeare": "shakespeare.txt.gz",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_corpus_matches_its_readme(name: str) -> None:
    path = CORPORA / name / SHIPPED[name]
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    readme = (CORPORA / name / "README.md").read_text(encoding="utf-8")
    assert f"{hashlib.sha256(data).hexdigest()}  {SHIPPED[name]}" in readme
    assert 1_000_000 < len(data) < 4_000_000


def read_text(name: str) -> str:
    return gzip.decompress((CORPORA / name / SHIPPED[name]).read_bytes()).decode("utf-8")


def test_shipped_web() -> None:
    lines = read_text("web").split("\n")
    assert lines[-1] == "" and "" not in lines[:-1]
    assert lines[0] == "In the beginning, God created the heavens and the earth."
    assert lines[-2] == "The grace of the Lord Jesus Christ be with all the saints. Amen."
    assert len(lines) - 1 == 37_457
    assert not any("<" in line or ">" in line for line in lines)


def test_shipped_bible_es_en() -> None:
    rows = [line.split("\t") for line in read_text("bible-es-en").splitlines()]
    assert len(rows) > 25_000 and all(len(row) == 3 and row[1] and row[2] for row in rows)
    assert rows[0] == ["Gen.1.1", "EN el principio crió Dios los cielos y la tierra.",
                       "In the beginning God created the heaven and the earth."]
    refs = [row[0] for row in rows]
    assert len(set(refs)) == len(refs) and "Num.13.1" not in refs  # a renumbered chapter
    assert not any("\u00b6" in row[2] or "<" in row[1] + row[2] for row in rows)


def test_shipped_shakespeare() -> None:
    text = read_text("shakespeare")
    assert text.startswith("ALL'S WELL THAT ENDS WELL\n\nACT I.\n")
    assert text.isascii() and "\r" not in text and "\n\n\n" not in text
    assert "Gutenberg" not in text and "by William Shakespeare" not in text
    assert "To be, or not to be" in text and len(text) > 4_500_000


# --- the build scripts -----------------------------------------------------------------------

def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_alignment_check_drops_renumbered_verses() -> None:
    build = load_script("build_bible_corpora")
    words = [a + b for a in "abcdefgh" for b in "xyzuv"]  # 40 made-up words

    def verse(n: int, lang: str) -> str:
        chosen = [words[(n * 7 + k * 13) % 40] for k in range(5)]
        return " ".join(("es" if lang == "es" else "en") + w for w in chosen) + "."

    spanish, english = {}, {}
    for chapter in (1, 2, 3):
        for v in range(1, 21):
            n = chapter * 100 + v
            english[f"Gen.{chapter}.{v}"] = verse(n, "en")
            # Chapter 2 of the Spanish numbers its verses one later from verse 10 on.
            shifted = chapter == 2 and v >= 10
            spanish[f"Gen.{chapter}.{v + shifted}"] = verse(n, "es")
    confirmed = build.confirmed_refs(spanish, english)
    assert {f"Gen.{c}.{v}" for c in (1, 3) for v in range(1, 21)} <= confirmed
    assert {f"Gen.2.{v}" for v in range(1, 10)} <= confirmed
    assert not {f"Gen.2.{v}" for v in range(10, 22)} & confirmed


def test_shakespeare_cleaning() -> None:
    build = load_script("build_shakespeare_corpus")
    raw = ("HAMLET\r\n\r\nby William Shakespeare\r\n\r\n\r\nPERSONS REPRESENTED.\r\n\r\n"
           "Hamlet, a Prince.\r\n\r\nSCENE. Elsinore.\r\n\r\n\r\n\r\nACT I.   \r\n\r\n"
           "Scene I.\r\n\r\n{Enter Bernardo.]\r\n@@@@\r\nBer.\r\n  Who's there?\x07\r\n"
           "\r\n\r\n\r\nTHE END\r\n")
    text, removed = build.clean_work("hamlet", raw)
    assert text == ("HAMLET\n\nACT I.\n\nScene I.\n\n[Enter Bernardo.]\nBer.\n"
                    "  Who's there?\n")
    assert removed == {"odd characters": 1, "front matter lines": 5, "separator lines": 1,
                       "braces": 1}
    with pytest.raises(UserError, match="no 'by William Shakespeare'"):
        build.clean_work("x", "TITLE\n\nSomething else\n")
