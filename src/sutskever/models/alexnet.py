"""AlexNet: "ImageNet Classification with Deep Convolutional Neural Networks" (Krizhevsky,
Sutskever, Hinton, NeurIPS 2012), section 3, and a small member of the family for 28-32 px images.

The full network (`arch="imagenet"`), for 224x224x3 crops (section 3.5, Figure 2):

    conv1  96 x 11x11 stride 4 -> ReLU -> LRN -> max-pool 3/2  (B, 96, 55, 55) -> (B, 96, 27, 27)
    conv2 256 x  5x5           -> ReLU -> LRN -> max-pool 3/2  (B, 256, 27, 27) -> (B, 256, 13, 13)
    conv3 384 x  3x3           -> ReLU                         (B, 384, 13, 13)
    conv4 384 x  3x3           -> ReLU                         (B, 384, 13, 13)
    conv5 256 x  3x3           -> ReLU -> max-pool 3/2         (B, 256, 6, 6)
    fc6  4096 -> ReLU -> dropout 0.5
    fc7  4096 -> ReLU -> dropout 0.5
    fc8  1000 (the softmax is in the loss)

A 224 crop with stride 4 gives 54.25 positions per side; we pad conv1 by 2, which gives the 55x55
of the paper's Figure 2 (the paper does not state its padding).

Local response normalisation (section 3.3), over n adjacent channels at the same position:

    b^i = a^i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} (a^j)^2)^beta,
    k=2, n=5, alpha=1e-4, beta=0.75.

torch's `nn.LocalResponseNorm` divides alpha by n; `local_response_norm` below is the paper's sum.

`groups=2` is the paper's two-GPU layout (section 3.2): each GPU holds half of the kernels of
every layer; conv2, conv4 and conv5 see only the kernel maps of their own GPU, conv3 and the
fully-connected layers see both; LRN runs within each GPU's half. With groups=2 the network has
60,965,224 parameters (the paper: "60 million"); with groups=1, 62,378,344.

Initialisation (section 5): every weight ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the
hidden fully-connected layers (so ReLUs start with positive inputs), 0 elsewhere.

The small member (`arch="small"`, for 28-32 px inputs, in the spirit of the CIFAR-10 network of
section 3.1) keeps the ingredients: three conv layers with ReLU, LRN after the first two,
overlapping max-pooling after conv1, conv2 and conv3, two dropout fully-connected layers. Its
pools are padded (3/2 pad 1; non-overlapping 2/2 rounds up) so both pooling choices give
ceil(side/2) and the ablation changes nothing else.

Ablation switches: `activation` (relu | tanh), `lrn`, `overlap` (3/2 vs 2/2 pooling, which give
the same output sizes, as section 3.4 notes), `dropout` (0 = off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AlexNet", "AlexNetConfig", "LocalResponseNorm", "local_response_norm",
           "flops_per_image"]

IMAGENET_CHANNELS = (96, 256, 384, 384, 256)


@dataclass(frozen=True)
class AlexNetConfig:
    arch: Literal["imagenet", "small"] = "imagenet"
    num_classes: int = 1000
    in_channels: int = 3
    image_size: int = 224           # side of the (square) input crop
    channels: tuple[int, ...] = IMAGENET_CHANNELS  # 5 conv widths (imagenet) or 3 (small)
    hidden: int = 4096              # width of the two hidden fully-connected layers
    activation: Literal["relu", "tanh"] = "relu"
    lrn: bool = True                # local response normalisation after conv1 and conv2
    lrn_size: int = 5               # n
    lrn_k: float = 2.0
    lrn_alpha: float = 1e-4         # the paper's alpha (not divided by n)
    lrn_beta: float = 0.75
    overlap: bool = True            # max-pool 3x3 stride 2; False: 2x2 stride 2
    dropout: float = 0.5            # on the outputs of fc6 and fc7; 0 = off
    groups: int = 1                 # 2: the paper's two-GPU columns
    init_std: float = 0.01          # weights ~ N(0, init_std)
    paper_biases: bool = True       # biases 1 in conv2, conv4, conv5, fc6, fc7 (else all 0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("num_classes", "in_channels", "image_size", "hidden", "groups",
                     "lrn_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def local_response_norm(x: Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0, groups: int = 1) -> Tensor:
    """The paper's LRN (section 3.3) of x (B, C, H, W), within each of `groups` channel groups.

    b^i = a^i / (k + alpha * sum over the `size` channels centred on i of (a^j)^2)^beta; the
    window is cut at the group's edges (the paper's min/max bounds).
    """
    b, c, h, w = x.shape
    sq = x.reshape(b * groups, 1, c // groups, h, w).pow(2)  # (B*G, 1, C/G, H, W)
    # zero-pad the channel axis so that every channel sums a full window of `size`
    sq = F.pad(sq, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window_sum = F.avg_pool3d(sq, (size, 1, 1), stride=1) * size  # (B*G, 1, C/G, H, W)
    denom = (k + alpha * window_sum.reshape(b, c, h, w)).pow(beta)
    return x / denom


class LocalResponseNorm(nn.Module):
    def __init__(self, size: int, alpha: float, beta: float, k: float, groups: int = 1):
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.groups)

    def extra_repr(self) -> str:
        return f"n={self.size}, k={self.k}, alpha={self.alpha}, beta={self.beta}, " \
               f"groups={self.groups}"


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"activation must be relu or tanh, got {name!r}")


class AlexNet(nn.Module):
    """Images (B, C, S, S), normalised by the caller, -> class logits (B, num_classes)."""

    def __init__(self, cfg: AlexNetConfig):
        super().__init__()
        self.cfg = cfg
        _check(cfg)
        g = cfg.groups
        act = lambda: _activation(cfg.activation)  # noqa: E731
        lrn = lambda: (LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta,  # noqa: E731
                                         cfg.lrn_k, g) if cfg.lrn else nn.Identity())
        c = cfg.channels
        if cfg.arch == "imagenet":
            pool = lambda: (nn.MaxPool2d(3, 2) if cfg.overlap  # noqa: E731
                            else nn.MaxPool2d(2, 2))
            self.conv1 = nn.Conv2d(cfg.in_channels, c[0], 11, stride=4, padding=2)
            self.conv2 = nn.Conv2d(c[0], c[1], 5, padding=2, groups=g)
            self.conv3 = nn.Conv2d(c[1], c[2], 3, padding=1)  # sees both GPUs' maps
            self.conv4 = nn.Conv2d(c[2], c[3], 3, padding=1, groups=g)
            self.conv5 = nn.Conv2d(c[3], c[4], 3, padding=1, groups=g)
            self.features = nn.Sequential(
                self.conv1, act(), lrn(), pool(),
                self.conv2, act(), lrn(), pool(),
                self.conv3, act(),
                self.conv4, act(),
                self.conv5, act(), pool(),
            )
            biased = (self.conv2, self.conv4, self.conv5)
        else:
            pool = lambda: (nn.MaxPool2d(3, 2, padding=1) if cfg.overlap  # noqa: E731
                            else nn.MaxPool2d(2, 2, ceil_mode=True))
            self.conv1 = nn.Conv2d(cfg.in_channels, c[0], 5, padding=2)
            self.conv2 = nn.Conv2d(c[0], c[1], 5, padding=2, groups=g)
            self.conv3 = nn.Conv2d(c[1], c[2], 3, padding=1, groups=g)
            self.features = nn.Sequential(
                self.conv1, act(), lrn(), pool(),
                self.conv2, act(), lrn(), pool(),
                self.conv3, act(), pool(),
            )
            biased = (self.conv2, self.conv3)
        side = self.feature_side(cfg)
        self.fc6 = nn.Linear(c[-1] * side * side, cfg.hidden)
        self.fc7 = nn.Linear(cfg.hidden, cfg.hidden)
        self.fc8 = nn.Linear(cfg.hidden, cfg.num_classes)
        drop = lambda: nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()  # noqa: E731
        self.classifier = nn.Sequential(self.fc6, act(), drop(), self.fc7, act(), drop(),
                                        self.fc8)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, cfg.init_std)
                nn.init.zeros_(m.bias)
        if cfg.paper_biases:
            for m in (*biased, self.fc6, self.fc7):
                nn.init.ones_(m.bias)

    @staticmethod
    def feature_side(cfg: AlexNetConfig) -> int:
        """Side of the last pooled feature map for an image_size input."""
        s = cfg.image_size
        if cfg.arch == "imagenet":
            s = (s + 2 * 2 - 11) // 4 + 1  # conv1
            for _ in range(3):  # the three pools (3/2 and 2/2 agree on these odd sides)
                s = (s - 3) // 2 + 1 if cfg.overlap else s // 2
            return s
        for _ in range(3):
            s = math.ceil(s / 2)
        return s

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, C5, s, s)
        return self.classifier(torch.flatten(x, 1))  # (B, num_classes)


def _check(cfg: AlexNetConfig) -> None:
    want = 5 if cfg.arch == "imagenet" else 3
    if len(cfg.channels) != want:
        raise ValueError(f"arch {cfg.arch!r} has {want} conv layers; channels has "
                         f"{len(cfg.channels)} widths")
    if any(ch % cfg.groups for ch in cfg.channels):
        raise ValueError(f"every conv width must divide into groups={cfg.groups}")
    if AlexNet.feature_side(cfg) < 1:
        raise ValueError(f"image_size={cfg.image_size} is too small for arch {cfg.arch!r}")


def flops_per_image(model: AlexNet) -> float:
    """Training FLOPs per image: 3 x (2 x multiply-adds) of the forward convs and matmuls
    (forward, and the backward's two products per layer); pooling and LRN are not counted."""
    cfg = model.cfg
    macs = 0
    side = cfg.image_size
    device = next(model.parameters()).device
    x = torch.zeros(1, cfg.in_channels, side, side, device=device)
    with torch.no_grad():
        for m in model.features:
            x = m(x)
            if isinstance(m, nn.Conv2d):  # each output value: k multiply-adds
                macs += x[0].numel() * m.kernel_size[0] * m.kernel_size[1] * (
                    m.in_channels // m.groups)
    for m in (model.fc6, model.fc7, model.fc8):
        macs += m.in_features * m.out_features
    return 3.0 * 2.0 * macs
