"""Small image classifiers for weak-to-strong generalisation (Burns et al., "Weak-to-Strong
Generalization: Eliciting Strong Capabilities With Weak Supervision", 2023, arXiv:2312.09390).

The weak supervisors are small models trained from scratch on ground truth: a linear softmax
classifier of (optionally average-pooled) pixels, an MLP, a small CNN. The strong students are
wider CNNs pretrained without labels whose features a linear head probes, the small-scale
stand-in for the paper's vision setting (linear probes on DINO features). Two pretraining tasks
read the features through their own heads: rotation prediction (Gidaris et al. 2018) and
contrastive instance discrimination (SimCLR, Chen et al. 2020, arXiv:2002.05709).

Models are pure: no optimiser, data or training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SmallNetConfig:
    kind: Literal["linear", "mlp", "cnn"] = "cnn"
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    pool: int = 1                          # linear / mlp: average-pool the pixels by this first
    hidden: tuple[int, ...] = (64,)        # mlp: hidden widths
    channels: tuple[int, ...] = (16, 32, 64)  # cnn: widths of the conv blocks (each halves H, W)
    feature_grid: int = 2                  # cnn: the last map is average-pooled to g x g
    rotations: int = 4                     # cnn: classes of the rotation-prediction head
    projection: tuple[int, ...] = (128, 64)  # cnn: contrastive projection MLP (hidden, out)


class PixelClassifier(nn.Module):
    """Linear softmax classifier (`hidden=()`) or MLP of the average-pooled pixels."""

    def __init__(self, cfg: SmallNetConfig):
        super().__init__()
        self.pool = cfg.pool
        side = cfg.image_size // cfg.pool
        widths = (cfg.in_channels * side * side, *(cfg.hidden if cfg.kind == "mlp" else ()))
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return self.head(self.body(x.flatten(1)))


class ConvNet(nn.Module):
    """A stride-2 4x4 conv stem, then conv3x3-BN-ReLU-maxpool blocks (each halves H and W), then
    the last map average-pooled to g x g and flattened: the features. (The strided stem instead
    of a full-resolution conv + pool is 5-7x faster on a CPU.) Three heads read them: `head` (the
    classes); and for pretraining without labels `rotation_head` (which of the `rotations`
    quarter turns the image was given, Gidaris et al. 2018) and `projection` (SimCLR's MLP
    g(h) = W2 ReLU(W1 h), whose outputs the contrastive loss compares; the probe reads h)."""

    def __init__(self, cfg: SmallNetConfig):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = cfg.in_channels
        for i, c in enumerate(cfg.channels):
            if i == 0:  # (B, C, H, W) -> (B, c, H/2, W/2)
                blocks += [nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU()]
            else:
                blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.backbone = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(cfg.feature_grid),
                                      nn.Flatten())
        self.feature_dim = c_in * cfg.feature_grid ** 2
        self.head = nn.Linear(self.feature_dim, cfg.num_classes)
        self.rotation_head = nn.Linear(self.feature_dim, cfg.rotations)
        hidden, out = cfg.projection
        self.projection = nn.Sequential(nn.Linear(self.feature_dim, hidden), nn.ReLU(),
                                        nn.Linear(hidden, out))

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, F)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.head(self.features(x))


def build_small_net(cfg: SmallNetConfig) -> nn.Module:
    return ConvNet(cfg) if cfg.kind == "cnn" else PixelClassifier(cfg)
