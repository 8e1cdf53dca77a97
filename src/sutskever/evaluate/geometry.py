"""Metrics of the Pointer Networks geometry experiments, as the paper defines them.

Vinyals, Fortunato, Jaitly, "Pointer Networks", 2015, arXiv:1506.03134.

* Convex hull (Table 1): accuracy is the fraction of outputs that match the target sequence
  exactly; area coverage is the mean ratio of the output polygon's area to the true hull's
  area, reported as FAIL (here ``None``) when more than 1% of outputs are not simple
  polygons.
* Delaunay (Section 4.3): accuracy is the fraction of examples whose set of predicted
  triangles equals the true set; triangle coverage is the mean fraction of true triangles
  that were predicted.
* TSP (Table 2): the mean closed-tour length, over outputs that are valid tours.

Outputs and targets are lists of 0-based point indices; Delaunay sequences are flat, three
indices per triangle (a trailing incomplete triple in an output is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sutskever.data.tsp import tour_length

__all__ = [
    "area_coverage",
    "delaunay_accuracy",
    "hull_accuracy",
    "polygon_area",
    "polygon_is_simple",
    "triangle_coverage",
    "tsp_metrics",
]

IndexSeqs = Sequence[Sequence[int]]

# The paper reports area coverage as FAIL when more than this fraction of outputs are not
# simple polygons.
_MAX_NON_SIMPLE = 0.01


def _check_pairs(outputs: IndexSeqs, targets: IndexSeqs) -> None:
    if len(outputs) != len(targets):
        raise ValueError(f"{len(outputs)} outputs but {len(targets)} targets")
    if len(outputs) == 0:
        raise ValueError("no examples to evaluate")


def hull_accuracy(outputs: IndexSeqs, targets: IndexSeqs) -> float:
    """Fraction of outputs equal to their target sequence (same indices, same order)."""
    _check_pairs(outputs, targets)
    hits = sum(
        [int(i) for i in out] == [int(i) for i in tgt]
        for out, tgt in zip(outputs, targets, strict=True)
    )
    return hits / len(outputs)


def _orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sign of the cross product (b - a) x (c - a): +1 left turn, -1 right turn, 0 collinear."""
    cross = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    return np.sign(cross)


def _within_box(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Whether c lies in the bounding box of segment ab (enough for a collinear c)."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.all((lo <= c) & (c <= hi), axis=-1)


def polygon_is_simple(polygon: np.ndarray) -> bool:
    """Whether the closed polygon (k, 2) (last vertex joins the first) is simple.

    Simple means: at least 3 vertices, no vertex repeated, no two non-adjacent edges
    intersecting (crossing or touching), and no two adjacent edges overlapping beyond their
    shared vertex (folding back along a line). All edge pairs are tested at once.
    """
    v = np.asarray(polygon, dtype=np.float64)
    k = len(v)
    if v.ndim != 2 or k < 3:
        return False
    if len(np.unique(v, axis=0)) < k:
        return False
    a, b = v, np.roll(v, -1, axis=0)  # edge e_i = (a_i, b_i) = (v_i, v_{i+1})
    # Adjacent edges e_{i-1}, e_i meet at v_i; they overlap when v_{i-1}, v_i, v_{i+1} are
    # collinear and the path turns back: (v_{i-1} - v_i) . (v_{i+1} - v_i) > 0.
    before, after = np.roll(v, 1, axis=0) - v, b - v
    turn = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    if np.any((turn == 0) & ((before * after).sum(axis=1) > 0)):
        return False
    i, j = np.triu_indices(k, k=2)
    keep = ~((i == 0) & (j == k - 1))  # e_0 and e_{k-1} share v_0
    i, j = i[keep], j[keep]
    if len(i) == 0:
        return True
    p1, q1, p2, q2 = a[i], b[i], a[j], b[j]
    o1, o2 = _orientation(p1, q1, p2), _orientation(p1, q1, q2)
    o3, o4 = _orientation(p2, q2, p1), _orientation(p2, q2, q1)
    crossing = (o1 * o2 < 0) & (o3 * o4 < 0)
    touching = (
        ((o1 == 0) & _within_box(p1, q1, p2))
        | ((o2 == 0) & _within_box(p1, q1, q2))
        | ((o3 == 0) & _within_box(p2, q2, p1))
        | ((o4 == 0) & _within_box(p2, q2, q1))
    )
    return not bool(np.any(crossing | touching))


def polygon_area(polygon: np.ndarray) -> float:
    """Absolute area by the shoelace formula, A = |sum_i x_i y_{i+1} - x_{i+1} y_i| / 2."""
    v = np.asarray(polygon, dtype=np.float64)
    if len(v) < 3:
        return 0.0
    x, y = v[:, 0], v[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0)


def _valid_indices(seq: Sequence[int], n: int) -> bool:
    return all(0 <= int(i) < n for i in seq)


def area_coverage(points: np.ndarray, outputs: IndexSeqs, targets: IndexSeqs) -> float | None:
    """Mean of area(output polygon) / area(target hull) over outputs that are simple polygons.

    Returns ``None`` (the paper's FAIL) when more than 1% of outputs are not simple polygons
    (an output with an out-of-range index counts as not simple). A polygon on the points
    lies inside their hull, so each ratio is at most 1.
    """
    _check_pairs(outputs, targets)
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) != len(outputs):
        raise ValueError(f"{len(pts)} point sets but {len(outputs)} outputs")
    ratios, non_simple = [], 0
    for p, out, tgt in zip(pts, outputs, targets, strict=True):
        if not _valid_indices(out, len(p)) or not polygon_is_simple(p[list(out)]):
            non_simple += 1
            continue
        ratios.append(polygon_area(p[list(out)]) / polygon_area(p[list(tgt)]))
    if non_simple > _MAX_NON_SIMPLE * len(outputs):
        return None
    return float(np.mean(ratios))


def _triangles(seq: Sequence[int]) -> set[tuple[int, ...]]:
    """Set of sorted index triples from a flat sequence; a trailing partial triple is dropped."""
    flat = [int(i) for i in seq]
    return {tuple(sorted(flat[s : s + 3])) for s in range(0, len(flat) - 2, 3)}


def delaunay_accuracy(outputs: IndexSeqs, targets: IndexSeqs) -> float:
    """Fraction of examples whose predicted triangle set equals the target set exactly.

    Triangles are compared as sorted triples, so corner order within a triangle and the
    order of triangles do not matter; a triangle predicted twice counts once.
    """
    _check_pairs(outputs, targets)
    hits = sum(
        _triangles(out) == _triangles(tgt) for out, tgt in zip(outputs, targets, strict=True)
    )
    return hits / len(outputs)


def triangle_coverage(outputs: IndexSeqs, targets: IndexSeqs) -> float:
    """Mean over examples of |predicted ∩ target triangles| / |target triangles|."""
    _check_pairs(outputs, targets)
    fractions = []
    for out, tgt in zip(outputs, targets, strict=True):
        target = _triangles(tgt)
        if not target:
            raise ValueError("a target has no triangles")
        fractions.append(len(_triangles(out) & target) / len(target))
    return float(np.mean(fractions))


def tsp_metrics(points: np.ndarray, outputs: IndexSeqs) -> dict[str, float]:
    """``valid_fraction``: share of outputs that are permutations of range(n);
    ``mean_length``: mean closed-tour length over the valid outputs (nan if there are none).
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) != len(outputs):
        raise ValueError(f"{len(pts)} point sets but {len(outputs)} outputs")
    if len(outputs) == 0:
        raise ValueError("no examples to evaluate")
    lengths = [
        tour_length(p, out)
        for p, out in zip(pts, outputs, strict=True)
        if sorted(int(i) for i in out) == list(range(len(p)))
    ]
    return {
        "valid_fraction": len(lengths) / len(outputs),
        "mean_length": float(np.mean(lengths)) if lengths else float("nan"),
    }
