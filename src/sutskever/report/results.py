"""RESULTS.md: one section per recipe, rewritten in place by `sutskever reproduce`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from sutskever.train.checkpoint import atomic_write_text

HEADER = """# Results

Every number here was measured by the command shown in its section (`sutskever reproduce`
rewrites its recipe's section). Paper numbers sit beside ours with the setting that differs.
"""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- recipe:{name} -->", f"<!-- /recipe:{name} -->"


def update_results(path: str | Path, name: str, section: str) -> None:
    """Replace (or append) the recipe's section of RESULTS.md, keeping every other section."""
    path = Path(path)
    text = path.read_text() if path.exists() else HEADER
    begin, end = _markers(name)
    block = f"{begin}\n{section.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def update_benchmark(path: str | Path, name: str, title: str, lines: Sequence[str]) -> None:
    """A benchmark's section of RESULTS.md: the command that ran it and its printed lines."""
    import sys

    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    section = (f"## Benchmark: {title}\n\nCommand: `{command}`\n\n"
               + "\n".join(f"- {line}" for line in lines) + "\n")
    update_results(path, f"benchmark-{name}", section)
