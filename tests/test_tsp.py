"""Tests for sutskever.data.tsp: Held-Karp against brute force, and the paper's baselines."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sutskever.data.tsp import (
    baseline_tours,
    canonical_tour,
    christofides,
    distance_matrix,
    held_karp,
    min_weight_perfect_matching,
    nearest_neighbour_tour,
    optimal_tours,
    tour_length,
    tour_lengths,
    two_opt,
)


def brute_force(points: np.ndarray) -> tuple[float, list[int]]:
    """Shortest closed tour over all (n-1)! orderings with city 0 first."""
    n = len(points)
    rest = np.array(list(itertools.permutations(range(1, n))), dtype=np.int64)
    tours = np.concatenate([np.zeros((len(rest), 1), dtype=np.int64), rest], axis=1)
    lengths = tour_lengths(np.broadcast_to(points, (len(tours), n, 2)), tours)
    best = int(lengths.argmin())
    return float(lengths[best]), tours[best].tolist()


def test_distance_matrix_batched_and_symmetric() -> None:
    pts = np.random.default_rng(0).random((3, 4, 6, 2))
    d = distance_matrix(pts)
    assert d.shape == (3, 4, 6, 6)
    np.testing.assert_allclose(d, np.swapaxes(d, -1, -2))
    np.testing.assert_allclose(d[1, 2, 0, 3], np.linalg.norm(pts[1, 2, 0] - pts[1, 2, 3]))
    assert np.all(np.diagonal(d, axis1=-2, axis2=-1) == 0)


def test_tour_length_closes_the_tour() -> None:
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert tour_length(square, [0, 1, 2, 3]) == pytest.approx(4.0)
    assert tour_length(square, [0, 2, 1, 3]) == pytest.approx(2 + 2 * np.sqrt(2))
    batch = np.stack([square, square])
    np.testing.assert_allclose(tour_lengths(batch, [[0, 1, 2, 3], [0, 2, 1, 3]]),
                               [4.0, 2 + 2 * np.sqrt(2)])


def test_canonical_tour() -> None:
    assert canonical_tour([2, 0, 3, 1]) == [0, 2, 1, 3]  # rotate to [0,3,1,2], reverse
    assert canonical_tour([3, 4, 0, 1, 2]) == [0, 1, 2, 3, 4]
    assert canonical_tour([0, 4, 3, 2, 1]) == [0, 1, 2, 3, 4]
    assert canonical_tour([1, 0]) == [0, 1]
    assert canonical_tour([0]) == [0]


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_held_karp_matches_brute_force(n: int) -> None:
    pts = np.random.default_rng(100 + n).random((4, n, 2))
    tours, lengths = held_karp(pts)
    assert tours.shape == (4, n) and tours.dtype == np.int64
    for b in range(4):
        best_length, best_tour = brute_force(pts[b])
        assert abs(lengths[b] - best_length) < 1e-9
        assert tours[b].tolist() == canonical_tour(best_tour)
        assert tours[b].tolist() == canonical_tour(tours[b])
        assert lengths[b] == pytest.approx(tour_length(pts[b], tours[b]), abs=1e-12)


def test_held_karp_batched_equals_per_instance() -> None:
    pts = np.random.default_rng(7).random((9, 9, 2))
    tours, lengths = held_karp(pts, chunk_bytes=1)  # forces one instance per chunk
    tours_all, lengths_all = held_karp(pts)
    np.testing.assert_array_equal(tours, tours_all)
    np.testing.assert_allclose(lengths, lengths_all, rtol=0, atol=1e-12)
    for b in range(len(pts)):
        t, length = held_karp(pts[b : b + 1])
        np.testing.assert_array_equal(t[0], tours[b])
        assert length[0] == pytest.approx(lengths[b], abs=1e-12)


def test_held_karp_trivial_sizes() -> None:
    one = np.array([[[0.3, 0.4]]])
    tours, lengths = held_karp(one)
    assert tours.tolist() == [[0]] and lengths.tolist() == [0.0]
    two = np.array([[[0.0, 0.0], [3.0, 4.0]]])
    tours, lengths = held_karp(two)
    assert tours.tolist() == [[0, 1]] and lengths[0] == pytest.approx(10.0)


def test_optimal_tours_cache(tmp_path) -> None:
    pts = np.random.default_rng(3).random((5, 7, 2)).astype(np.float32)
    tours, lengths = optimal_tours(pts, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind
    with np.load(files[0]) as cached:
        np.testing.assert_array_equal(cached["tours"], tours)
        # Overwrite the cached lengths: a second call must read the file, not recompute.
        np.savez(files[0], tours=cached["tours"], lengths=cached["lengths"] + 1.0)
    tours2, lengths2 = optimal_tours(pts, cache_dir=tmp_path)
    np.testing.assert_array_equal(tours2, tours)
    np.testing.assert_allclose(lengths2, lengths + 1.0)
    ref_tours, _ = held_karp(pts)
    np.testing.assert_array_equal(tours, ref_tours)
    optimal_tours(pts[:4], cache_dir=tmp_path)  # different points, different key
    assert len(list(tmp_path.iterdir())) == 2


def brute_force_matching(w: np.ndarray, vertices: list[int]) -> float:
    if not vertices:
        return 0.0
    a, rest = vertices[0], vertices[1:]
    return min(w[a, b] + brute_force_matching(w, [v for v in rest if v != b]) for b in rest)


@pytest.mark.parametrize("k", [2, 4, 6, 8, 10])
def test_matching_dp_is_exact(k: int) -> None:
    rng = np.random.default_rng(k)
    for _ in range(3):
        w = rng.random((k, k))
        w = w + w.T  # any symmetric weights, not only metric ones
        pairs = min_weight_perfect_matching(w)
        assert sorted(v for pair in pairs for v in pair) == list(range(k))
        cost = sum(w[i, j] for i, j in pairs)
        assert cost == pytest.approx(brute_force_matching(w, list(range(k))), abs=1e-12)


def test_matching_greedy_beyond_exact_max() -> None:
    w = distance_matrix(np.random.default_rng(1).random((8, 2)))
    pairs = min_weight_perfect_matching(w, exact_max=4)
    assert sorted(v for pair in pairs for v in pair) == list(range(8))
    assert sum(w[i, j] for i, j in pairs) >= brute_force_matching(w, list(range(8))) - 1e-12
    with pytest.raises(ValueError):
        min_weight_perfect_matching(np.zeros((3, 3)))


def test_two_opt_is_locally_optimal_and_never_longer() -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        pts = rng.random((15, 2))
        start = rng.permutation(15).tolist()
        tour = two_opt(pts, start)
        assert sorted(tour) == list(range(15)) and tour == canonical_tour(tour)
        assert tour_length(pts, tour) <= tour_length(pts, start) + 1e-12
        d = distance_matrix(pts)
        t = np.array(tour)
        for i in range(15):
            for j in range(i + 2, 15):
                if i == 0 and j == 14:
                    continue
                a, b, c, e = t[i], t[i + 1], t[j], t[(j + 1) % 15]
                assert d[a, c] + d[b, e] - d[a, b] - d[c, e] > -1e-9


def test_nearest_neighbour_follows_closest_city() -> None:
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [2.0, 0.5], [5.0, 5.0]])
    assert nearest_neighbour_tour(pts) == canonical_tour([0, 2, 3, 4, 1])
    assert nearest_neighbour_tour(pts, start=1) == canonical_tour([1, 4, 3, 2, 0])


@pytest.mark.parametrize("n", [4, 6, 8, 10])
def test_baselines_valid_and_bounded_by_optimal(n: int) -> None:
    pts = np.random.default_rng(200 + n).random((6, n, 2))
    opt_tours, opt = held_karp(pts)
    np.testing.assert_array_equal(baseline_tours("optimal", pts), opt_tours)
    nn = baseline_tours("nearest-neighbour", pts)
    results = {name: baseline_tours(name, pts) for name in ("2-opt", "christofides")}
    results["nearest-neighbour"] = nn
    for name, tours in results.items():
        assert tours.shape == (6, n) and tours.dtype == np.int64
        for tour in tours:
            assert sorted(tour.tolist()) == list(range(n)), name
            assert tour.tolist() == canonical_tour(tour), name
        assert np.all(tour_lengths(pts, tours) >= opt - 1e-12), name
    assert np.all(tour_lengths(pts, results["2-opt"]) <= tour_lengths(pts, nn) + 1e-12)
    assert np.all(tour_lengths(pts, results["christofides"]) <= 1.5 * opt + 1e-12)


def test_christofides_small_and_beyond_exact_matching() -> None:
    assert christofides(np.random.default_rng(0).random((3, 2))) == [0, 1, 2]
    pts = np.random.default_rng(5).random((40, 2))
    tour = christofides(pts, exact_max=4)  # greedy matching path
    assert sorted(tour) == list(range(40)) and tour == canonical_tour(tour)


def test_baseline_tours_unknown_name() -> None:
    with pytest.raises(ValueError, match="christofides"):
        baseline_tours("simulated-annealing", np.zeros((1, 4, 2)))
