"""Point estimates with bootstrap percentile intervals, and batched least-squares lines.

Efron and Tibshirani, "An Introduction to the Bootstrap" (1993), Section 13.3 (the percentile
interval); Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt" (arXiv:2404.10102),
Section 3, bootstrap the Chinchilla fit the same way (resample runs with replacement, refit).
A resample with replacement of n points is a multinomial count per point, so a refit on it is a
fit with those counts as weights: that is how the fitters batch all replicates at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "estimate", "format_estimate", "resample_counts", "fit_lines"]


@dataclass(frozen=True)
class Estimate:
    """A fitted or derived value and, when bootstrapped, its percentile interval."""

    value: float
    low: float | None = None
    high: float | None = None
    confidence: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high,
                "confidence": self.confidence}

    @staticmethod
    def from_dict(d: dict) -> Estimate:
        return Estimate(float(d["value"]), d.get("low"), d.get("high"), d.get("confidence"))

    def covers(self, x: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= x <= self.high


def estimate(value: float, samples: np.ndarray | None = None,
             confidence: float = 0.95) -> Estimate:
    """`value` with the central `confidence` percentile interval of the finite `samples`."""
    value = float(value)
    if samples is None:
        return Estimate(value)
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 2:
        return Estimate(value, confidence=confidence)
    low, high = np.quantile(s, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(value, float(low), float(high), confidence)


def resample_counts(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) counts of each point in n draws with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(float)


def format_estimate(e: Estimate, digits: int = 5) -> str:
    """'0.34731 [0.31750, 0.36879]'-style text with `digits` significant digits."""

    def fmt(x: float) -> str:
        return f"{x:#.{digits}g}".rstrip(".") if math.isfinite(x) else str(x)

    if e.low is None or e.high is None:
        return fmt(e.value)
    return f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]"


def fit_lines(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of y on x for each row of weights w (..., n).

    A NaN in y or a zero weight drops that point; a row with fewer than 2 distinct x left gets
    NaN. Power laws are lines in log-log, so every frontier and Kaplan law goes through here.
    """
    w = np.where(np.isfinite(y), w, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    sw = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * x).sum(-1) / sw
        my = (w * y).sum(-1) / sw
        dx = x - mx[..., None]
        sxx = (w * dx * dx).sum(-1)
        slope = (w * dx * (y - my[..., None])).sum(-1) / sxx
        bad = ~(sxx > 1e-12 * np.maximum(sw, 1.0))
    slope = np.where(bad, np.nan, slope)
    return slope, my - slope * mx
