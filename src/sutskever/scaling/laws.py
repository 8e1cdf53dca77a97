"""The scaling laws themselves: loss as a function of parameters N, tokens D and compute C.

- Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361: Section 3
  (L(N) = (N_c/N)^alpha_N, L(D) = (D_c/D)^alpha_D, L(C_min) = (C_c/C_min)^alpha_C) and
  Section 4, Eq. (4.1) (L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D).
- Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556:
  Section 3.3, Eq. (2) (L = E + A/N^alpha + B/D^beta) and Eq. (4) (the efficient frontier
  N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b).

Compute is C = 6 N D FLOPs throughout (Kaplan et al. Section 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PowerLaw", "KaplanJointLaw", "ChinchillaLaw", "FLOPS_PER_PARAM_TOKEN"]

FLOPS_PER_PARAM_TOKEN = 6.0  # forward + backward: C = 6 N D


@dataclass(frozen=True)
class PowerLaw:
    """y = (x_c / x)^exponent, Kaplan et al.'s form; a negative exponent gives a growing law.

    Written as y = coefficient * x^slope with slope = -exponent and
    coefficient = x_c^exponent, which is how it is fitted (a line in log-log).
    """

    x_c: float
    exponent: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return np.exp(self.exponent * (np.log(self.x_c) - np.log(x)))

    @staticmethod
    def from_line(intercept: float, slope: float) -> PowerLaw:
        """From log y = intercept + slope log x."""
        return PowerLaw(x_c=float(np.exp(-intercept / slope)), exponent=-slope)


@dataclass(frozen=True)
class KaplanJointLaw:
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. Eq. 4.1)."""

    n_c: float
    d_c: float
    alpha_n: float
    alpha_d: float

    def loss(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        n_term = (self.alpha_n / self.alpha_d) * (np.log(self.n_c) - np.log(n))
        d_term = np.log(self.d_c) - np.log(d)
        return np.exp(self.alpha_d * np.logaddexp(n_term, d_term))


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. Eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return self.E + self.A * np.power(n, -self.alpha) + self.B * np.power(d, -self.beta)

    def loss_at_flops(self, n: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
        """Loss of a model of N parameters trained with C FLOPs (D = C / 6N): an isoFLOP curve."""
        return self.loss(n, np.asarray(c) / (FLOPS_PER_PARAM_TOKEN * np.asarray(n)))

    @property
    def a(self) -> float:
        """N_opt ~ C^a with a = beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt ~ C^b with b = alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)) of N_opt = G (C/6)^a."""
        # fields may be arrays of bootstrap samples: then so is G
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def n_opt(self, c: np.ndarray | float) -> np.ndarray:
        """Compute-optimal parameters for C FLOPs: argmin_N L(N, C/6N) = G (C/6)^a."""
        return self.G * np.power(np.asarray(c, dtype=float) / FLOPS_PER_PARAM_TOKEN, self.a)

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("E", "A", "B", "alpha", "beta")}

    def d_opt(self, c: np.ndarray | float) -> np.ndarray:
        """Compute-optimal tokens: D_opt = (C/6) / N_opt = G^-1 (C/6)^b."""
        return np.asarray(c, dtype=float) / FLOPS_PER_PARAM_TOKEN / self.n_opt(c)

    def tokens_per_parameter(self, c: np.ndarray | float) -> np.ndarray:
        return self.d_opt(c) / self.n_opt(c)
