"""Optimizers and learning-rate schedules used by the papers.

- SGD (optionally with momentum), Adam, AdamW (weight decay on matrices only for AdamW).
- Schedules as a multiplier of the base lr, a pure function of the step:
  constant; step decay by epoch (lr * factor^k after `decay_start_epoch`, every
  `decay_every_epochs`: Zaremba et al.'s and Sutskever et al.'s rules); linear warmup + cosine.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sutskever.errors import UserError
from sutskever.recipes.base import TrainConfig


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    betas = (cfg.betas[0], cfg.betas[1])
    # the fused kernels (one per step instead of several per tensor), where torch has them
    fused = {"fused": True} if all(p.device.type in _FUSED_DEVICES for p in params) else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay,
                                **fused)
    # AdamW: decoupled weight decay on weight matrices only, not on biases, gains or embeddings'
    # 1-d parameters.
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, **fused)


# fused Adam/AdamW: CUDA since torch 2.0, CPU since 2.4
_FUSED_DEVICES = ("cuda", "cpu") if tuple(map(int, torch.__version__.split(".")[:2])) >= (2, 4) \
    else ("cuda",)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """`epochs` x steps per epoch when epochs are given, else `steps`."""
    return math.ceil(cfg.epochs * steps_per_epoch) if cfg.epochs > 0 else cfg.steps


def lr_multiplier(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The factor applied to the base lr at optimizer step `step` (0-based)."""
    if cfg.schedule in ("constant", "plateau"):  # plateau: the trainer applies its decays
        return 1.0
    if cfg.schedule == "step":
        epoch = step / max(steps_per_epoch, 1)
        if epoch < cfg.decay_start_epoch:
            return 1.0
        n_decays = 1 + math.floor((epoch - cfg.decay_start_epoch) / cfg.decay_every_epochs)
        return cfg.decay_factor ** n_decays
    if cfg.schedule == "cosine":
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        span = max(total_steps(cfg, steps_per_epoch) - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


def plateau_step(state: dict[str, float], metrics: dict[str, float], cfg: TrainConfig) -> None:
    """Update the plateau schedule's state after a periodic evaluation: a new best of
    `plateau_metric` resets the count; `plateau_patience` evaluations without one multiply the
    lr scale by `decay_factor` (AlexNet: /10 when the validation error stops improving)."""
    if cfg.plateau_metric not in metrics:
        raise UserError(f"train.plateau_metric={cfg.plateau_metric!r} is not a metric of the "
                        f"periodic evaluation; choose one of: {', '.join(metrics)}")
    value = float(metrics[cfg.plateau_metric])
    if value < state["best"]:
        state.update(best=value, bad=0)
        return
    state["bad"] += 1
    if state["bad"] >= cfg.plateau_patience:
        state.update(scale=state["scale"] * cfg.decay_factor, bad=0)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
