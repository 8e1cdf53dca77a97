"""Planar point-set tasks of Pointer Networks: convex hull, Delaunay triangulation and TSP.

Vinyals, Fortunato, Jaitly, "Pointer Networks", 2015, arXiv:1506.03134.

Inputs are points drawn uniformly from the unit square (Section 4.1). Targets are sequences
of 0-based point indices, ordered as in the paper so that each input has one target:

* convex hull -- the hull vertices, starting from the point with the lowest index and going
  counter-clockwise;
* Delaunay triangulation -- the triangles, each as its sorted index triple, ordered by
  their incenter coordinates (x, then y), flattened to 3 indices per triangle;
* TSP -- the optimal tour from ``sutskever.data.tsp.optimal_tours`` in canonical form
  (starts at city 0, ``tour[1] < tour[-1]``).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.spatial import ConvexHull, Delaunay

from sutskever.data.tsp import optimal_tours

__all__ = [
    "TASKS",
    "convex_hull_target",
    "delaunay_target",
    "make_targets",
    "random_points",
    "triangle_incenters",
]

TASKS = ("convex-hull", "delaunay", "tsp")


def random_points(n_examples: int, n_points: int, seed: int) -> np.ndarray:
    """``(n_examples, n_points, 2)`` float32 points uniform in [0, 1]^2, reproducible per seed."""
    rng = np.random.default_rng(seed)
    return rng.random((n_examples, n_points, 2), dtype=np.float32)


def convex_hull_target(points: np.ndarray) -> list[int]:
    """Hull vertex indices, counter-clockwise, starting at the lowest hull index.

    Each vertex appears once (the first is not repeated at the end). Points on a hull edge
    but not at a corner are not vertices (Qhull's default).
    """
    # For 2-D input Qhull lists ``vertices`` in counter-clockwise order.
    vertices = [int(v) for v in ConvexHull(np.asarray(points, dtype=np.float64)).vertices]
    start = vertices.index(min(vertices))
    return vertices[start:] + vertices[:start]


def triangle_incenters(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Incenters (T, 2) of triangles (T, 3) of point indices.

    The incenter is the side-length-weighted mean of the corners,
    I = (a A + b B + c C) / (a + b + c), with a = |BC| opposite A, and so on.
    """
    corners = np.asarray(points, dtype=np.float64)[np.asarray(triangles)]  # (T, 3, 2)
    opposite = np.linalg.norm(
        np.roll(corners, -1, axis=1) - np.roll(corners, -2, axis=1), axis=-1
    )  # (T, 3): side length opposite each corner
    return (opposite[:, :, None] * corners).sum(axis=1) / opposite.sum(axis=1)[:, None]


def delaunay_target(points: np.ndarray) -> list[tuple[int, int, int]]:
    """Delaunay triangles as ascending index triples, ordered by incenter (x, then y)."""
    pts = np.asarray(points, dtype=np.float64)
    triangles = np.sort(Delaunay(pts).simplices, axis=1)
    centers = triangle_incenters(pts, triangles)
    order = np.lexsort((centers[:, 1], centers[:, 0]))  # last key is the primary one
    return [(int(a), int(b), int(c)) for a, b, c in triangles[order]]


def make_targets(
    task: str, points: np.ndarray, *, cache_dir: str | os.PathLike | None = None
) -> list[list[int]]:
    """One flat target sequence of 0-based indices per example of ``points`` (N, n, 2).

    ``task`` is "convex-hull", "delaunay" (3 indices per triangle) or "tsp" (optimal tour by
    Held-Karp; ``cache_dir`` caches it on disk, see ``optimal_tours``).
    """
    pts = np.asarray(points)
    if task == "convex-hull":
        return [convex_hull_target(p) for p in pts]
    if task == "delaunay":
        return [[i for tri in delaunay_target(p) for i in tri] for p in pts]
    if task == "tsp":
        tours, _ = optimal_tours(pts, cache_dir=cache_dir)
        return [[int(c) for c in tour] for tour in tours]
    raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
