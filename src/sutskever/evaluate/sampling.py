"""Metrics of test-time compute: pass@k, majority vote, best-of-N.

pass@k is Chen et al.'s (2021) unbiased estimator: with n samples of which c are correct,
E[1 - C(n-c, k) / C(n, k)], computed in the stable product form 1 - prod_{i=n-c+1..n} (1 - k/i).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct)
    is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most common answer (None, a malformed answer, never wins); ties go to the answer
    seen first, so the vote is a pure function of the samples' order."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def best_of(answers: Sequence[Hashable | None], scores: Sequence[float]) -> Hashable | None:
    """The answer of the highest-scoring sample (a verifier's choice; first on ties)."""
    if len(answers) != len(scores) or not answers:
        raise ValueError("best_of needs one score per answer, and at least one answer")
    return answers[int(np.argmax(scores))]
