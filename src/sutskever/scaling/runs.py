"""Training runs for the scaling-law fitters: read, validate, select.

The CSV that `sutskever scaling fit` reads has one row per measured loss: a final loss per run
(Chinchilla Approaches 2 and 3, Kaplan et al.), or many rows per run along its training curve
(Approach 1). Column names are matched without regard to case, spaces or underscores:

| quantity | column names | required |
|---|---|---|
| N, parameters | `N`, `params`, `parameters`, `Model Size` | yes |
| D, training tokens | `D`, `tokens`, `Training Tokens` | D or C |
| C, training FLOPs | `C`, `flops`, `Training FLOP` | D or C |
| loss (nats per token) | `loss`, `L` | yes |
| run id | `run`, `run_id` | no (Approach 1 groups rows by it; else by N) |
| step | `step` | no |
| U, unique tokens | `U`, `unique_tokens` | no (data-constrained fit) |

With only one of D and C the other follows from C = 6 N D (Kaplan et al. 2020, Section 2.1); with
both, D enters the loss law and C groups the isoFLOP budgets. Every number must be finite and
positive. The Chinchilla data file's own columns (`Model Size`, `Training FLOP`, `loss`) are
accepted as they are.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from sutskever.errors import UserError

__all__ = ["Runs", "read_runs", "chinchilla_runs", "CHINCHILLA_CSV", "COLUMNS"]

CHINCHILLA_CSV = "chinchilla_svg_extracted.csv"

# canonical name -> accepted spellings (compared after lower-casing and dropping " _-")
COLUMNS: dict[str, tuple[str, ...]] = {
    "N": ("n", "params", "parameters", "modelsize"),
    "D": ("d", "tokens", "trainingtokens"),
    "C": ("c", "flops", "trainingflop", "trainingflops"),
    "loss": ("loss", "l"),
    "run": ("run", "runid"),
    "step": ("step",),
    "U": ("u", "uniquetokens"),
}
_HOW = "the CSV needs columns N, D (or C) and loss; see `sutskever scaling fit --help`"


@dataclass(frozen=True, eq=False)
class Runs:
    """Measured losses: parallel arrays, one entry per row of the runs file."""

    n: np.ndarray  # parameters N
    d: np.ndarray  # training tokens D
    c: np.ndarray  # training FLOPs C (6 N D unless the file gave C)
    loss: np.ndarray
    run: tuple[str, ...] | None = None
    step: np.ndarray | None = None
    unique_tokens: np.ndarray | None = None
    source: str = "<arrays>"

    def __len__(self) -> int:
        return int(self.loss.size)

    def subset(self, index: np.ndarray) -> Runs:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Runs(self.n[index], self.d[index], self.c[index], self.loss[index],
                    None if self.run is None else tuple(self.run[i] for i in index),
                    pick(self.step), pick(self.unique_tokens), self.source)

    def drop_highest_losses(self, k: int) -> Runs:
        """Without the k rows of highest loss (Epoch AI drop 5 outliers of the Chinchilla data)."""
        if k < 0 or k >= len(self):
            raise UserError(f"cannot drop {k} of {len(self)} runs; pass --drop-highest between 0 "
                            f"and {len(self) - 1}")
        if k == 0:
            return self
        return self.subset(np.sort(np.argsort(self.loss, kind="stable")[: len(self) - k]))

    @staticmethod
    def from_arrays(n: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray, *,
                    d: Sequence[float] | np.ndarray | None = None,
                    c: Sequence[float] | np.ndarray | None = None,
                    run: Sequence[str] | None = None,
                    step: Sequence[float] | np.ndarray | None = None,
                    unique_tokens: Sequence[float] | np.ndarray | None = None,
                    source: str = "<arrays>") -> Runs:
        """Validated runs from arrays; D or C (or both) must be given."""
        arrays = {"N": n, "loss": loss, "D": d, "C": c, "step": step, "U": unique_tokens}
        cols = {k: np.asarray(v, dtype=float).reshape(-1) for k, v in arrays.items()
                if v is not None}
        sizes = {k: v.size for k, v in cols.items()}
        if run is not None:
            sizes["run"] = len(run)
        if len(set(sizes.values())) != 1:
            raise UserError(f"{source}: columns differ in length {sizes}; give one value per run")
        for k, v in cols.items():
            bad = ~np.isfinite(v) | ((v <= 0) if k != "step" else (v < 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                need = "non-negative" if k == "step" else "positive"
                raise UserError(f"{source}: {k}={v[i]!r} at row {i + 1} must be finite and "
                                f"{need}; fix or remove that row")
        if "D" not in cols and "C" not in cols:
            raise UserError(f"{source}: neither D (tokens) nor C (FLOPs) given; {_HOW}")
        n_ = cols["N"]
        d_ = cols["D"] if "D" in cols else cols["C"] / (6.0 * n_)
        c_ = cols["C"] if "C" in cols else 6.0 * n_ * d_
        return Runs(n_, d_, c_, cols["loss"], None if run is None else tuple(map(str, run)),
                    cols.get("step"), cols.get("U"), source)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().lower())


def read_runs(path: str | Path) -> Runs:
    """The runs in a CSV file (columns in the module docstring); bad input raises UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"runs file '{path}' does not exist; pass the path of a CSV with columns "
                        "N, D (or C) and loss")
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read runs file '{path}' as CSV ({e}); {_HOW}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise UserError(f"runs file '{path}' is empty; {_HOW}")
    header, body = rows[0], rows[1:]
    where: dict[str, int] = {}
    for i, name in enumerate(header):
        for canon, spellings in COLUMNS.items():
            if _key(name) in spellings:
                if canon in where:
                    raise UserError(f"{path}: columns '{header[where[canon]]}' and '{name}' both "
                                    f"mean {canon}; keep one of them")
                where[canon] = i
    found = ", ".join(repr(h) for h in header)
    for canon in ("N", "loss"):
        if canon not in where:
            raise UserError(f"{path} has no {canon} column (found {found}); add a column named "
                            f"{' or '.join(COLUMNS[canon][:2])}; {_HOW}")
    if "D" not in where and "C" not in where:
        raise UserError(f"{path} has neither a D (tokens) nor a C (FLOPs) column (found {found}); "
                        f"{_HOW}")
    if not body:
        raise UserError(f"{path} has a header but no runs; add one row per run")
    values: dict[str, list[float]] = {k: [] for k in where if k != "run"}
    run_ids: list[str] = []
    for line, row in enumerate(body, start=2):
        for canon, i in where.items():
            cell = row[i].strip() if i < len(row) else ""
            if canon == "run":
                run_ids.append(cell)
                continue
            try:
                x = float(cell)
            except ValueError:
                raise UserError(f"{path} line {line}: {header[i]}={cell!r} is not a number; "
                                "write a plain number such as 1.5e9") from None
            bad = not math.isfinite(x) or (x < 0 if canon == "step" else x <= 0)
            if bad:
                need = "non-negative" if canon == "step" else "positive"
                raise UserError(f"{path} line {line}: {header[i]}={cell} must be a finite "
                                f"{need} number; fix or remove that row")
            values[canon].append(x)
    return Runs.from_arrays(values["N"], values["loss"], d=values.get("D"), c=values.get("C"),
                            run=run_ids if "run" in where else None, step=values.get("step"),
                            unique_tokens=values.get("U"), source=str(path))


def chinchilla_runs(drop_highest: int = 5) -> Runs:
    """Hoffmann et al. 2022 Figure 4 runs as extracted by Epoch AI (arXiv:2404.10102).

    Epoch AI's procedure drops the 5 runs of highest loss (240 remain); D = C / (6 N).
    """
    ref = resources.files("sutskever.scaling").joinpath("data").joinpath(CHINCHILLA_CSV)
    with resources.as_file(ref) as path:
        runs = replace(read_runs(path), source=CHINCHILLA_CSV)
    return runs.drop_highest_losses(drop_highest)
