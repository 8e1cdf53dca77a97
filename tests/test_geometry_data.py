"""Tests for sutskever.data.geometry: point sampling and the convex hull / Delaunay targets."""

from __future__ import annotations

import numpy as np
import pytest

from sutskever.data.geometry import (
    convex_hull_target,
    delaunay_target,
    make_targets,
    random_points,
    triangle_incenters,
)
from sutskever.data.tsp import held_karp


def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2


def brute_force_hull(points: np.ndarray) -> list[int]:
    """Hull edges are the ordered pairs (i, j) with every other point strictly to the left."""
    n = len(points)
    successor = {}
    for i in range(n):
        for j in range(n):
            if i != j:
                others = np.delete(points, [i, j], axis=0)
                if np.all(cross(points[i], points[j], others) > 0):
                    successor[i] = j
    start = min(successor)
    hull = [start]
    while successor[hull[-1]] != start:
        hull.append(successor[hull[-1]])
    return hull


def test_random_points_deterministic() -> None:
    a = random_points(4, 7, seed=3)
    assert a.shape == (4, 7, 2) and a.dtype == np.float32
    assert np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a, random_points(4, 7, seed=3))
    assert not np.array_equal(a, random_points(4, 7, seed=4))


@pytest.mark.parametrize("n", [5, 10, 50])
def test_convex_hull_target_properties(n: int) -> None:
    for pts in random_points(5, n, seed=n).astype(np.float64):
        hull = convex_hull_target(pts)
        assert len(set(hull)) == len(hull) >= 3
        assert hull[0] == min(hull)
        poly = pts[hull]
        assert signed_area(poly) > 0  # counter-clockwise
        inside = np.delete(pts, hull, axis=0)
        for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
            assert np.all(cross(a, b, inside) > 0)  # strictly left of every edge
            assert np.all(cross(a, b, poly) >= 0)  # convex
        if n <= 10:
            assert hull == brute_force_hull(pts)


def test_convex_hull_target_hand_made() -> None:
    pts = np.array([[0.5, 0.5], [1.0, 1.0], [0.0, 0.0], [0.2, 0.6], [1.0, 0.0], [0.0, 1.0]])
    # counter-clockwise from index 1 (1,1): (0,1)=5, (0,0)=2, (1,0)=4
    assert convex_hull_target(pts) == [1, 5, 2, 4]


def circumcircle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, float]:
    d = 2 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
    sa, sb, sc = a @ a, b @ b, c @ c
    ux = (sa * (b[1] - c[1]) + sb * (c[1] - a[1]) + sc * (a[1] - b[1])) / d
    uy = (sa * (c[0] - b[0]) + sb * (a[0] - c[0]) + sc * (b[0] - a[0])) / d
    center = np.array([ux, uy])
    return center, float(np.linalg.norm(a - center))


@pytest.mark.parametrize("n", [5, 10, 30])
def test_delaunay_target_properties(n: int) -> None:
    for pts in random_points(4, n, seed=50 + n).astype(np.float64):
        triangles = delaunay_target(pts)
        assert all(a < b < c for a, b, c in triangles)
        assert len(set(triangles)) == len(triangles)
        hull = convex_hull_target(pts)
        # Euler: a triangulation of n points with h on the hull has 2n - 2 - h triangles.
        assert len(triangles) == 2 * n - 2 - len(hull)
        for a, b, c in triangles:
            center, radius = circumcircle(pts[a], pts[b], pts[c])
            others = np.delete(pts, [a, b, c], axis=0)
            assert np.all(np.linalg.norm(others - center, axis=1) > radius - 1e-9)
        areas = [abs(signed_area(pts[list(t)])) for t in triangles]
        assert sum(areas) == pytest.approx(signed_area(pts[hull]), rel=1e-9)
        centers = triangle_incenters(pts, np.array(triangles))
        keys = [tuple(c) for c in centers]
        assert keys == sorted(keys)


def test_incenter_of_right_triangle() -> None:
    pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    # inradius r = (3 + 4 - 5) / 2 = 1, so the incenter is (1, 1)
    np.testing.assert_allclose(triangle_incenters(pts, np.array([[0, 1, 2]])), [[1.0, 1.0]])


def test_make_targets() -> None:
    pts = random_points(3, 6, seed=0)
    hulls = make_targets("convex-hull", pts)
    assert hulls == [convex_hull_target(p) for p in pts]
    tris = make_targets("delaunay", pts)
    for flat, p in zip(tris, pts, strict=True):
        assert len(flat) % 3 == 0
        assert [tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)] == delaunay_target(p)
    tours = make_targets("tsp", pts)
    assert tours == held_karp(pts)[0].tolist()
    assert all(isinstance(i, int) for seq in hulls + tris + tours for i in seq)
    with pytest.raises(ValueError, match="convex-hull, delaunay, tsp"):
        make_targets("sorting", pts)
