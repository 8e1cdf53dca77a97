"""Planar symmetric TSP: an exact solver and the baselines of the Pointer Networks TSP table.

Vinyals, Fortunato, Jaitly, "Pointer Networks", 2015, arXiv:1506.03134.

The paper trains on optimal tours for n <= 20 cities (its Table 2 also reports the
nearest-neighbour heuristic, 2-opt and Christofides for comparison). This module provides:

* ``held_karp`` -- exact Held-Karp dynamic programming, vectorised over a batch of instances
  and over all subsets of a popcount layer at once; ``optimal_tours`` adds an on-disk cache.
* ``nearest_neighbour_tour``, ``two_opt``, ``christofides`` -- the paper's baselines.
* ``distance_matrix``, ``tour_length``, ``tour_lengths``, ``canonical_tour`` -- helpers.

Every solver returns tours in canonical form: start at city 0, then go in the direction
whose second city has the smaller index (``tour[1] < tour[-1]``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree

__all__ = [
    "baseline_tours",
    "canonical_tour",
    "christofides",
    "distance_matrix",
    "held_karp",
    "min_weight_perfect_matching",
    "nearest_neighbour_tour",
    "optimal_tours",
    "tour_length",
    "tour_lengths",
    "two_opt",
]

BASELINES = ("nearest-neighbour", "2-opt", "christofides", "optimal")

# Target memory for one batch chunk of the Held-Karp DP (all layers + the largest layer's
# temporaries). Measured on CPU, chunks of ~8-32 MiB keep the gathers cache-friendly and run
# fastest; from n = 19 a single instance exceeds it, so instances run one at a time.
_HK_CHUNK_BYTES = 16 << 20


# --------------------------------------------------------------------------- helpers


def distance_matrix(points: np.ndarray) -> np.ndarray:
    """Euclidean distances (float64), shape ``(..., n, n)`` for points ``(..., n, 2)``."""
    p = np.asarray(points, dtype=np.float64)
    diff = p[..., :, None, :] - p[..., None, :, :]
    return np.sqrt(np.einsum("...k,...k->...", diff, diff))


def tour_length(points: np.ndarray, tour: Sequence[int] | np.ndarray) -> float:
    """Length of the closed tour (the last city connects back to the first)."""
    p = np.asarray(points, dtype=np.float64)[np.asarray(tour, dtype=np.int64)]
    if len(p) < 2:
        return 0.0
    return float(np.linalg.norm(p - np.roll(p, -1, axis=0), axis=-1).sum())


def tour_lengths(points: np.ndarray, tours: np.ndarray) -> np.ndarray:
    """Closed-tour lengths for a batch: ``points`` (B, n, 2), ``tours`` (B, n) -> (B,)."""
    p = np.asarray(points, dtype=np.float64)
    t = np.asarray(tours, dtype=np.int64)
    ordered = np.take_along_axis(p, t[:, :, None], axis=1)
    return np.linalg.norm(ordered - np.roll(ordered, -1, axis=1), axis=-1).sum(axis=1)


def canonical_tour(tour: Sequence[int] | np.ndarray) -> list[int]:
    """Rotate ``tour`` to start at city 0 and orient it so that ``tour[1] < tour[-1]``.

    A closed tour has 2n equivalent sequences (n rotations x 2 directions); this picks one.
    """
    t = [int(c) for c in tour]
    if not t:
        return t
    start = t.index(0) if 0 in t else t.index(min(t))
    t = t[start:] + t[:start]
    if len(t) > 2 and t[1] > t[-1]:
        t = [t[0], *reversed(t[1:])]
    return t


def _canonical_batch(tours: np.ndarray) -> np.ndarray:
    """Vectorised ``canonical_tour`` for tours (B, n) that already start at city 0."""
    if tours.shape[1] <= 2:
        return tours
    flip = tours[:, 1] > tours[:, -1]
    out = tours.copy()
    out[flip, 1:] = tours[flip, 1:][:, ::-1]
    return out


# --------------------------------------------------------------------------- Held-Karp


def _popcount(x: np.ndarray, bits: int) -> np.ndarray:
    count = np.zeros(x.shape, dtype=np.int64)
    for b in range(bits):
        count += (x >> b) & 1
    return count


class _HeldKarpPlan:
    """Precomputed index arrays for the Held-Karp DP over subsets of m = n - 1 cities.

    Cities 1..n-1 are renumbered 0..m-1; city 0 is the fixed start. The DP is

        C(S, j) = min_{k in S \\ {j}} C(S \\ {j}, k) + d(k, j),     C({j}, j) = d(0, j),

    computed one popcount layer p = |S| at a time. Layer p is stored compactly as an array
    with one row per pair (S, j in S): row ``rank(S) * p + pos(j, S)``, where rank(S) is
    the position of S among the ascending subsets of size p and pos(j, S) the number of
    members of S below j. Keeping only layer p - 1 hot (not a 2^m x m table) keeps the
    gathers cache-friendly. For layer p, with L subsets, the arrays are:

      prev -- (p - 1, L * p): entry [c, row(S, j)] is the row of C(S \\ {j}, k) in layer
              p - 1, for k the c-th member of S \\ {j}; the minimum over c of
              C(S \\ {j}, k) + d(k, j) is layer p in its own row order;
      dist -- (p - 1, L * p): the matching index ``k * m + j`` of d(k, j) in the flattened
              m x m block.
    """

    def __init__(self, m: int) -> None:
        self.m = m
        masks = np.arange(1 << m, dtype=np.int64)
        size = _popcount(masks, m)
        order = np.argsort(size, kind="stable")  # ascending masks within each size
        starts = np.searchsorted(size[order], np.arange(m + 2))
        self.rank = np.empty(1 << m, dtype=np.int64)
        self.rank[order] = np.arange(1 << m) - starts[size[order]]
        bit = np.arange(m, dtype=np.int64)
        self.prev: list[np.ndarray] = []
        self.dist: list[np.ndarray] = []
        for p in range(2, m + 1):
            subsets = order[starts[p] : starts[p + 1]]
            members = np.nonzero((subsets[:, None] >> bit) & 1)[1].reshape(-1, p)  # (L, p)
            # others[a] = positions 0..p-1 without a; column c of others[a] is also the
            # position of that member in S \ {member a}.
            r = np.arange(p - 1)
            others = r[None, :] + (r[None, :] >= np.arange(p)[:, None])  # (p, p-1)
            k = members[:, others].transpose(2, 0, 1)  # (p-1, L, p)
            prev_rank = self.rank[subsets[:, None] ^ (np.int64(1) << members)]  # (L, p)
            prev = prev_rank[None] * (p - 1) + r[:, None, None]
            self.prev.append(prev.reshape(p - 1, -1).astype(np.int32))
            self.dist.append((k * m + members[None]).reshape(p - 1, -1).astype(np.int16))

    def largest_layer(self) -> int:
        return max((p.shape[1] for p in self.prev), default=0)

    def solve(self, dist: np.ndarray) -> np.ndarray:
        """Optimal tours (B, n), starting at city 0, for distance matrices (B, n, n)."""
        b, n, _ = dist.shape
        m = self.m
        # Batch is the last axis so every gather moves a contiguous run of B values.
        dmm = np.ascontiguousarray(dist[:, 1:, 1:].reshape(b, m * m).T)  # (m*m, B): d(k, j)
        layers = [np.ascontiguousarray(dist[:, 0, 1:].T)]  # layer 1: C({j}, j) = d(0, j)
        for prev, didx in zip(self.prev, self.dist, strict=True):
            # Minimum over the candidate position c, accumulated elementwise so that the
            # temporaries stay the size of one layer.
            best = layers[-1][prev[0]]
            best += dmm[didx[0]]
            for c in range(1, len(prev)):
                cand = layers[-1][prev[c]]
                cand += dmm[didx[c]]
                np.minimum(best, cand, out=best)
            layers.append(best)
        # Walk back without parent pointers: the predecessor k of j in S is the argmin of
        # C(S \ {j}, k) + d(k, j), recomputed with the same float operations as the DP.
        cols = np.arange(b)[:, None]
        bit = np.arange(m, dtype=np.int64)
        j = (layers[m - 1] + dist[:, 1:, 0].T).argmin(axis=0)  # layers[p - 1] is layer p
        subset = np.full(b, (1 << m) - 1, dtype=np.int64)
        rev = np.empty((b, m), dtype=np.int64)
        for step in range(m):
            rev[:, step] = j
            subset ^= np.int64(1) << j
            p = m - 1 - step
            if p == 0:
                break
            members = np.nonzero((subset[:, None] >> bit) & 1)[1].reshape(b, p)
            rows = self.rank[subset][:, None] * p + np.arange(p)
            cand = layers[p - 1][rows, cols] + dmm[members * m + j[:, None], cols]
            j = members[np.arange(b), cand.argmin(axis=1)]
        return np.concatenate([np.zeros((b, 1), dtype=np.int64), rev[:, ::-1] + 1], axis=1)


def held_karp(
    points_batch: np.ndarray, *, chunk_bytes: int = _HK_CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Exact optimal tours by Held-Karp dynamic programming (Held & Karp, 1962).

    Args:
        points_batch: (B, n, 2) city coordinates.
        chunk_bytes: target memory per batch chunk (DP layers plus the largest layer's
            temporaries); a chunk always holds at least one instance.

    Returns:
        ``(tours, lengths)``: canonical optimal tours (B, n) int64 and their closed lengths
        (B,) float64 (recomputed from the tour with ``tour_lengths``).

    Time O(2^n n^2), memory O(2^n n) per instance (float64 throughout). Vectorised over the
    batch and over all subsets of a popcount layer; the only Python loops run over layers
    and tour positions. The index arrays cost 6 bytes per (S, j, k) triple, about 270 MB
    at n = 20, and are built once per call.
    """
    pts = np.asarray(points_batch, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"points_batch must have shape (B, n, 2), got {pts.shape}")
    b, n, _ = pts.shape
    if n <= 3:
        # Every ordering of <= 3 cities is the same closed tour.
        tours = np.tile(np.arange(n, dtype=np.int64), (b, 1))
        return tours, tour_lengths(pts, tours)
    if n > 21:
        # The index arrays alone take 6 (n-1)(n-2) 2^(n-3) bytes: 0.6 GB at n = 21.
        raise ValueError(f"held_karp needs O(2^n n^2) memory; n={n} is too large (max 21)")
    plan = _HeldKarpPlan(n - 1)
    m = n - 1
    # Per instance: all layers (m 2^(m-1) float64 entries) plus the largest layer's
    # candidate buffers.
    per_instance = m * (1 << (m - 1)) * 8 + plan.largest_layer() * 8 * 3
    chunk = max(1, int(chunk_bytes // per_instance))
    dist = distance_matrix(pts)
    tours = np.empty((b, n), dtype=np.int64)
    for start in range(0, b, chunk):
        tours[start : start + chunk] = plan.solve(dist[start : start + chunk])
    tours = _canonical_batch(tours)
    return tours, tour_lengths(pts, tours)


def optimal_tours(
    points_batch: np.ndarray, cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``held_karp`` with an on-disk cache keyed by a SHA-256 of the points' bytes.

    The cache file is ``<cache_dir>/tsp-optimal-<hash>.npz`` holding ``tours`` and
    ``lengths``; it is written to a temporary file in the same directory and then renamed,
    so concurrent writers never leave a partial file.
    """
    pts = np.ascontiguousarray(points_batch)
    if cache_dir is None:
        return held_karp(pts)
    digest = hashlib.sha256()
    digest.update(f"{pts.dtype.str}{pts.shape}".encode())
    digest.update(pts.tobytes())
    directory = Path(cache_dir)
    path = directory / f"tsp-optimal-{digest.hexdigest()[:32]}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["tours"], cached["lengths"]
    tours, lengths = held_karp(pts)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, tours=tours, lengths=lengths)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tours, lengths


# --------------------------------------------------------------------------- baselines


def nearest_neighbour_tour(points: np.ndarray, start: int = 0) -> list[int]:
    """Greedy tour: from ``start`` always move to the closest unvisited city."""
    d = distance_matrix(points)
    n = len(d)
    visited = np.zeros(n, dtype=bool)
    tour = [int(start)]
    visited[start] = True
    for _ in range(n - 1):
        row = np.where(visited, np.inf, d[tour[-1]])
        nxt = int(row.argmin())
        tour.append(nxt)
        visited[nxt] = True
    return canonical_tour(tour)


def two_opt(points: np.ndarray, tour: Sequence[int] | np.ndarray) -> list[int]:
    """Best-improvement 2-opt local search until no 2-opt move shortens the tour.

    Move (i, j), i < j, reverses tour[i+1 .. j]: edges (a, b) = (t_i, t_{i+1}) and
    (c, e) = (t_j, t_{j+1}) become (a, c) and (b, e), changing the length by
    d(a, c) + d(b, e) - d(a, b) - d(c, e). All moves are scored at once with numpy.
    """
    d = distance_matrix(points)
    t = np.asarray(tour, dtype=np.int64).copy()
    n = len(t)
    if n < 4:
        return canonical_tour(t)
    i_idx, j_idx = np.triu_indices(n, k=2)
    keep = ~((i_idx == 0) & (j_idx == n - 1))  # those two edges share city t_0
    i_idx, j_idx = i_idx[keep], j_idx[keep]
    # Only strict improvements beyond rounding noise, so the loop terminates.
    tol = 1e-12 * max(1.0, float(d.max()))
    while True:
        a, b = t[i_idx], t[(i_idx + 1) % n]
        c, e = t[j_idx], t[(j_idx + 1) % n]
        delta = d[a, c] + d[b, e] - d[a, b] - d[c, e]
        best = int(delta.argmin())
        if delta[best] >= -tol:
            break
        i, j = i_idx[best], j_idx[best]
        t[i + 1 : j + 1] = t[i + 1 : j + 1][::-1]
    return canonical_tour(t)


def _exact_matching(w: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-weight perfect matching of the complete graph ``w`` (k x k, k even) by DP.

    f(S) = min_{j in S, j != l} w(l, j) + f(S \\ {l, j}) with l the lowest vertex of S.
    Always matching the lowest vertex means that after r steps the r lowest vertices are
    gone, so only subsets of {r..k-1} of size k - 2r occur: Fibonacci(k+1) states in all
    (10946 for k = 20) rather than 2^k. Layers are enumerated top-down, solved bottom-up.
    """
    k = len(w)
    if k == 0:
        return []
    bit = np.arange(k, dtype=np.int64)
    layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    subsets = np.array([(1 << k) - 1], dtype=np.int64)
    for p in range(k, 0, -2):
        members = np.nonzero((subsets[:, None] >> bit) & 1)[1].reshape(-1, p)
        low, rest = members[:, 0], members[:, 1:]
        children = subsets[:, None] ^ (np.int64(1) << low)[:, None] ^ (np.int64(1) << rest)
        layers.append((subsets, low, rest, children))
        subsets = np.unique(children)
    f_below = np.zeros(1)
    below = np.zeros(1, dtype=np.int64)  # the empty set
    partners: list[np.ndarray] = []
    for subsets, low, rest, children in reversed(layers):
        cand = w[low[:, None], rest] + f_below[np.searchsorted(below, children)]
        arg = cand.argmin(axis=1)
        rows = np.arange(len(subsets))
        f_below, below = cand[rows, arg], subsets
        partners.append(rest[rows, arg])
    partners.reverse()
    pairs = []
    subset = (1 << k) - 1
    for (subsets, low, _, _), partner in zip(layers, partners, strict=True):
        row = int(np.searchsorted(subsets, subset))
        lo, hi = int(low[row]), int(partner[row])
        pairs.append((lo, hi))
        subset ^= (1 << lo) | (1 << hi)
    return pairs


def _greedy_matching(w: np.ndarray) -> list[tuple[int, int]]:
    """Repeatedly match the globally cheapest pair of unmatched vertices (not optimal)."""
    k = len(w)
    i_idx, j_idx = np.triu_indices(k, k=1)
    order = np.argsort(w[i_idx, j_idx], kind="stable")
    used = np.zeros(k, dtype=bool)
    pairs = []
    for e in order:
        i, j = int(i_idx[e]), int(j_idx[e])
        if not used[i] and not used[j]:
            used[i] = used[j] = True
            pairs.append((i, j))
    return pairs


def min_weight_perfect_matching(weights: np.ndarray, exact_max: int = 20) -> list[tuple[int, int]]:
    """Perfect matching of the complete graph on ``len(weights)`` (even) vertices.

    Exact (bitmask DP) when there are at most ``exact_max`` vertices, otherwise greedy
    (cheapest available pair first), which is not optimal and voids Christofides' 3/2
    guarantee. Pairs are ``(i, j)`` with ``i < j``, indices into ``weights``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(w) % 2:
        raise ValueError(f"a perfect matching needs an even vertex count, got {len(w)}")
    if len(w) <= exact_max:
        return _exact_matching(w)
    return _greedy_matching(w)


def _eulerian_circuit(n: int, edges: list[tuple[int, int]], start: int = 0) -> list[int]:
    """Hierholzer's algorithm on a connected multigraph whose degrees are all even."""
    adjacency: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for e, (u, v) in enumerate(edges):
        adjacency[u].append((v, e))
        adjacency[v].append((u, e))
    used = [False] * len(edges)
    stack, circuit = [start], []
    while stack:
        u = stack[-1]
        while adjacency[u] and used[adjacency[u][-1][1]]:
            adjacency[u].pop()
        if adjacency[u]:
            v, e = adjacency[u].pop()
            used[e] = True
            stack.append(v)
        else:
            circuit.append(stack.pop())
    return circuit[::-1]


def christofides(points: np.ndarray, exact_max: int = 20) -> list[int]:
    """Christofides (1976): MST + min-weight perfect matching on odd vertices, Euler, shortcut.

    With an exact matching (odd set of at most ``exact_max`` vertices) the tour is at most
    3/2 of optimal; beyond that the matching is greedy (see ``min_weight_perfect_matching``).
    """
    d = distance_matrix(points)
    n = len(d)
    if n <= 3:
        return list(range(n))
    # csgraph reads exact zeros as "no edge"; coincident cities still need their edge.
    graph = np.where(np.eye(n, dtype=bool), 0.0, np.maximum(d, np.finfo(np.float64).tiny))
    mst = minimum_spanning_tree(graph).tocoo()
    edges = [(int(u), int(v)) for u, v in zip(mst.row, mst.col, strict=True)]
    degree = np.bincount(np.concatenate([mst.row, mst.col]), minlength=n)
    odd = np.flatnonzero(degree % 2)
    matching = min_weight_perfect_matching(d[np.ix_(odd, odd)], exact_max=exact_max)
    edges += [(int(odd[i]), int(odd[j])) for i, j in matching]
    tour = list(dict.fromkeys(_eulerian_circuit(n, edges)))  # keep first visits: shortcut
    return canonical_tour(tour)


def _nearest_neighbour_two_opt(points: np.ndarray) -> list[int]:
    return two_opt(points, nearest_neighbour_tour(points))


def baseline_tours(name: str, points_batch: np.ndarray) -> np.ndarray:
    """Tours (B, n) int64 from one of the paper's TSP baselines.

    ``name`` is "nearest-neighbour", "2-opt" (started from the nearest-neighbour tour),
    "christofides" or "optimal" (Held-Karp).
    """
    pts = np.asarray(points_batch)
    if name == "optimal":
        return held_karp(pts)[0]
    if name == "nearest-neighbour":
        solve = nearest_neighbour_tour
    elif name == "2-opt":
        solve = _nearest_neighbour_two_opt
    elif name == "christofides":
        solve = christofides
    else:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return np.array([solve(p) for p in pts], dtype=np.int64).reshape(len(pts), pts.shape[1])
