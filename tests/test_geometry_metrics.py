"""Tests for sutskever.evaluate.geometry on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sutskever.data.geometry import convex_hull_target, delaunay_target, random_points
from sutskever.evaluate.geometry import (
    area_coverage,
    delaunay_accuracy,
    hull_accuracy,
    polygon_area,
    polygon_is_simple,
    triangle_coverage,
    tsp_metrics,
)

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def test_simple_polygons() -> None:
    assert polygon_is_simple(SQUARE)
    assert polygon_is_simple(SQUARE[::-1])
    assert polygon_is_simple(SQUARE[:3])
    # Concave but simple: an arrow head.
    assert polygon_is_simple(np.array([[0, 0], [2, 1], [0, 2], [1, 1]], dtype=float))
    # Star-shaped: random points sorted by angle around an interior point.
    rng = np.random.default_rng(0)
    pts = rng.random((30, 2))
    angle = np.arctan2(pts[:, 1] - 0.5, pts[:, 0] - 0.5)
    assert polygon_is_simple(pts[np.argsort(angle)])


def test_non_simple_polygons() -> None:
    bow_tie = SQUARE[[0, 2, 1, 3]]  # edges (0,0)-(1,1) and (1,0)-(0,1) cross
    assert not polygon_is_simple(bow_tie)
    assert not polygon_is_simple(SQUARE[:2])  # too few vertices
    assert not polygon_is_simple(SQUARE[[0, 1, 2, 1]])  # repeated vertex
    assert not polygon_is_simple(np.array([[0, 0], [1, 0], [2, 0]], dtype=float))  # collinear
    # Vertex (1, 0) of one edge touches the non-adjacent edge (0,0)-(2,0).
    touching = np.array([[0, 0], [2, 0], [2, 1], [1, 0], [0, 1]], dtype=float)
    assert not polygon_is_simple(touching)
    # Folds back along its first edge: (0,0)-(2,0) then (2,0)-(1,0).
    assert not polygon_is_simple(np.array([[0, 0], [2, 0], [1, 0], [1, 1]], dtype=float))


def test_polygon_area() -> None:
    assert polygon_area(SQUARE) == pytest.approx(1.0)
    assert polygon_area(SQUARE[::-1]) == pytest.approx(1.0)
    assert polygon_area(SQUARE[:3]) == pytest.approx(0.5)
    assert polygon_area(SQUARE[:2]) == 0.0


def test_hull_accuracy_is_exact_sequence_match() -> None:
    targets = [[0, 1, 2], [0, 2, 3, 1], [1, 3, 4]]
    outputs = [[0, 1, 2], [2, 3, 1, 0], [1, 3, 4, 5]]  # rotation and extra index are wrong
    assert hull_accuracy(outputs, targets) == pytest.approx(1 / 3)
    assert hull_accuracy(targets, targets) == 1.0
    with pytest.raises(ValueError):
        hull_accuracy(outputs[:2], targets)


def _coverage_data(n_bad: int) -> tuple[np.ndarray, list[list[int]], list[list[int]]]:
    points = np.tile(SQUARE, (100, 1, 1))
    targets = [[0, 1, 2, 3]] * 100
    outputs = [[0, 1, 2]] * 50 + [[0, 1, 2, 3]] * 50  # areas 0.5 and 1.0
    outputs[:n_bad] = [[0, 2, 1, 3]] * n_bad  # bow ties
    return points, outputs, targets


def test_area_coverage_fail_threshold() -> None:
    assert area_coverage(*_coverage_data(2)) is None
    one_bad = area_coverage(*_coverage_data(1))
    assert one_bad == pytest.approx((49 * 0.5 + 50 * 1.0) / 99)  # the bow tie is skipped
    assert area_coverage(*_coverage_data(0)) == pytest.approx(0.75)


def test_area_coverage_on_real_hulls() -> None:
    points = random_points(20, 12, seed=1).astype(np.float64)
    targets = [convex_hull_target(p) for p in points]
    assert area_coverage(points, targets, targets) == pytest.approx(1.0)
    dropped = [t[:-1] for t in targets]  # one hull vertex fewer: a smaller simple polygon
    cov = area_coverage(points, dropped, targets)
    assert cov is not None and 0.5 < cov < 1.0
    bad = [t + [99] for t in targets[:1]] + targets[1:]  # out-of-range index: not simple
    assert area_coverage(points, bad, targets) is None


def test_delaunay_accuracy_and_triangle_coverage() -> None:
    target = [0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5]  # k = 4 triangles
    missing = target[:9]
    assert delaunay_accuracy([missing], [target]) == 0.0
    assert triangle_coverage([missing], [target]) == pytest.approx(3 / 4)
    # Corner order and triangle order do not matter; a trailing partial triple is ignored.
    shuffled = [4, 3, 2, 2, 0, 1, 5, 4, 3, 3, 2, 1, 7, 8]
    assert delaunay_accuracy([shuffled], [target]) == 1.0
    assert triangle_coverage([shuffled], [target]) == 1.0
    wrong = [0, 1, 5, 9, 8, 7]
    assert triangle_coverage([wrong, target], [target, target]) == pytest.approx(0.5)
    assert delaunay_accuracy([wrong, target], [target, target]) == 0.5


def test_delaunay_metrics_on_real_targets() -> None:
    points = random_points(5, 10, seed=2)
    targets = [[i for tri in delaunay_target(p) for i in tri] for p in points]
    assert delaunay_accuracy(targets, targets) == 1.0
    assert triangle_coverage(targets, targets) == 1.0


def test_tsp_metrics() -> None:
    points = np.tile(SQUARE, (3, 1, 1))
    outputs = [[0, 1, 2, 3], [0, 2, 1, 3], [0, 1, 1, 3]]  # last repeats city 1
    metrics = tsp_metrics(points, outputs)
    assert metrics["valid_fraction"] == pytest.approx(2 / 3)
    assert metrics["mean_length"] == pytest.approx((4.0 + 2 + 2 * math.sqrt(2)) / 2)
    none_valid = tsp_metrics(points[:1], [[0, 1, 2]])  # too short
    assert none_valid["valid_fraction"] == 0.0 and math.isnan(none_valid["mean_length"])
