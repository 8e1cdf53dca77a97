"""Weak-to-strong generalisation metrics (Burns et al., "Weak-to-Strong Generalization:
Eliciting Strong Capabilities With Weak Supervision", 2023, arXiv:2312.09390).

- Performance gap recovered (section 3, "Performance gap recovered"):
      PGR = (weak-to-strong - weak) / (strong ceiling - weak)
- The auxiliary confidence loss (section 4.3.2, eq. 1):
      L_conf(f) = (1 - c) CE(f(x), f_w(x)) + c CE(f(x), hard(f(x)))
  Cross-entropy is linear in its target, so this is CE(f(x), t) with the target
      t = (1 - c) f_w(x) + c hard(f(x)),
  where f_w(x) are the weak labels (the weak model's probabilities), hard() hardens the strong
  model's own predictions (detached), and c ramps linearly from 0 to c_max over the first part of
  training (appendix A.4: the first 20%).
- How much of the supervisor's error the student takes on: the fraction of the examples the weak
  model gets wrong on which the student gives the same wrong class (1: it copies every mistake,
  as a perfect imitator would; the paper's "student-supervisor agreement", restricted to the
  supervisor's mistakes, section 5.1).
- The strong models' pretraining without labels, SimCLR's contrastive loss (NT-Xent; Chen et al.
  2020, arXiv:2002.05709, eq. 1): for 2N views where views i and i + N come from one image,
      l(i, j) = -log exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)
  averaged over all 2N (i, positive) pairs, sim the cosine similarity.
- Hardening: for two classes the paper thresholds the strong model's probability of class 1 so
  that the fraction of positives in the batch matches the weak labels' (the class balance); for
  more classes, as here, the argmax (our simplification of the same idea).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pgr(weak: float, weak_to_strong: float, ceiling: float) -> float:
    """Performance gap recovered; NaN when the gap ceiling - weak is zero."""
    gap = ceiling - weak
    if gap == 0:
        return math.nan
    return (weak_to_strong - weak) / gap


def confidence_weight(step: int, total_steps: int, c_max: float, warmup_frac: float) -> float:
    """c at optimizer step `step` (0-based): linear from 0 to c_max over the first
    warmup_frac * total_steps steps, then c_max."""
    warmup = warmup_frac * total_steps
    if warmup <= 0:
        return c_max
    return c_max * min(1.0, step / warmup)


def harden(strong_probs: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """One-hot hardened strong predictions (B, K).

    K = 2: class 1 for the examples whose strong p(class 1) is among the top round(B * m),
    where m is the weak labels' mean p(class 1), so the hardened batch has the weak labels'
    class balance (the paper's threshold). K > 2: the argmax.
    """
    b, k = strong_probs.shape
    if k != 2:
        return F.one_hot(strong_probs.argmax(1), k).to(strong_probs.dtype)
    positives = round(b * float(weak_probs[:, 1].mean()))
    hard = torch.zeros_like(strong_probs)
    order = strong_probs[:, 1].argsort(descending=True, stable=True)
    hard[order[:positives], 1] = 1.0
    hard[order[positives:], 0] = 1.0
    return hard


def confidence_target(weak_probs: torch.Tensor, strong_logits: torch.Tensor,
                      c: float) -> torch.Tensor:
    """The auxiliary confidence loss's target (1 - c) f_w + c hard(f), shape (B, K); the strong
    logits are detached (the target is not differentiated)."""
    strong_probs = strong_logits.detach().float().softmax(-1)
    return (1.0 - c) * weak_probs + c * harden(strong_probs, weak_probs)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k target_k log softmax(logits)_k."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def copied_errors(student_pred: torch.Tensor, weak_pred: torch.Tensor,
                  truth: torch.Tensor) -> float:
    """The fraction of the weak model's mistakes (weak_pred != truth) where the student predicts
    the same wrong class; NaN when the weak model makes none. Predictions are class indices."""
    wrong = weak_pred != truth
    if not bool(wrong.any()):
        return math.nan
    return float((student_pred[wrong] == weak_pred[wrong]).float().mean())


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's contrastive loss of two views' projections z1, z2 (N, D) of the same N images:
    each of the 2N views must pick its partner out of the other 2N - 1 by cosine similarity."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, D)
    sim = z @ z.T / temperature  # (2N, 2N)
    sim.fill_diagonal_(float("-inf"))  # a view is not its own partner
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)
