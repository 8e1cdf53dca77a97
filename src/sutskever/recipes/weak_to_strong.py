"""Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision (Burns,
Izmailov, Kirchner, Baker, Gao, Aschenbrenner, Chen, Ecoffet, Joglekar, Leike, Sutskever, Wu;
2023, arXiv:2312.09390), at small scale on Fashion-MNIST.

The paper's vision experiment (section 4, appendix: linear probes of DINO features supervised by
AlexNet) in miniature. The 60k training images are split once, the same for every run:

    train (60k) = A (weak supervisors' ground truth) | B (the students' labels) | rest
    t10k        = the test set of every run

and the runs are ordinary runs of the one trainer, each an arm:
- `pretrain-S`: a CNN of size S trained without labels on all 60k training images, the
  pretraining that gives the strong model its latent knowledge (`w2s.pretext`): to predict which
  of 4 quarter turns an image was given (rotation prediction, Gidaris et al. 2018), or to tell
  two augmented views of an image from the views of the others (SimCLR, Chen et al. 2020; the
  paper's DINO is of this augmentation-invariance family);
- `weak-W`: a small model (linear softmax of average-pooled pixels, an MLP, a small CNN)
  trained on A's ground truth;
- `ceiling-S`: a linear probe on the frozen features of `pretrain-S`, trained on B's ground truth
  (the strong ceiling);
- `w2s-W-S`: the same probe trained on B labelled by `weak-W` (its soft predictions, as in the
  paper), and `w2s-conf-W-S` the same with the auxiliary confidence loss
  (`sutskever.evaluate.weak_to_strong`).
Every run reports test accuracy; PGR = (w2s - weak) / (ceiling - weak) per seed, from runs of
the same seed. A student also reports how often it agrees with its supervisor on test and the
fraction of the supervisor's test mistakes it repeats (`weak_errors_copied`).

The probe trains on the features of B computed once with the frozen backbone (the paper also
probes precomputed embeddings); the model it writes is the whole network (the backbone as loaded
from `train.init_from`, and the trained head), which the test evaluation runs on the images.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sutskever.data.images import load_image_splits
from sutskever.errors import UserError
from sutskever.evaluate.weak_to_strong import (
    confidence_target,
    confidence_weight,
    copied_errors,
    nt_xent,
    pgr,
    soft_cross_entropy,
)
from sutskever.models.small_nets import ConvNet, SmallNetConfig, build_small_net
from sutskever.recipes import register
from sutskever.recipes.base import Claim, Recipe, RecipeData, TrainConfig

Role = Literal["pretrain", "weak", "student"]

PAPER_PGR_VISION = 0.58  # AlexNet -> DINO ResNet50 linear probe, naive (section 4.2, Fig. 3)
PAPER_PGR_NLP = 0.5  # NLP tasks, naive fine-tuning: about half the gap (PAPERS.md section 12)
PAPER_PGR_CONF_NLP = 0.8  # NLP tasks, large gaps, with the confidence loss (Fig. 5)
# The least PGR that counts as generalising beyond the supervisor: a tenth of the gap. The bare
# inequality 0 < PGR was met by students with PGR 0.01-0.04 that repeated 75-87% of their
# supervisors' mistakes, so it could not tell imitation from weak-to-strong generalisation; this
# bound was set after that run, and makes the claim harder to meet, not easier.
MIN_PGR = 0.1


@dataclass(frozen=True)
class W2SDataConfig:
    dataset: Literal["fashion-mnist", "synthetic"] = "fashion-mnist"
    path: str | None = None           # the data directory (else $SUTSKEVER_DATA/<dataset>/, ...)
    role: Role = "pretrain"           # which run: pretraining (no labels), weak (A), student (B)
    weak_examples: int = 10_000       # A: the weak supervisors' ground truth
    student_examples: int = 20_000    # B: labelled by a weak model (or ground truth: ceiling)
    test_examples: int = 0            # 0: the whole test split
    # a run directory of a weak model whose soft predictions label B; "" = B's ground truth
    labels_from: str = ""
    synthetic_side: int = 16          # synthetic: image side (tests)


@dataclass(frozen=True)
class W2SConfig:
    probe: bool = True          # student: train only the head on the frozen backbone's features
    confidence: float = 0.0     # c_max of the auxiliary confidence loss; 0 = naive
    warmup_frac: float = 0.2    # c ramps from 0 to c_max over this fraction of training
    # pretraining without labels: rotation prediction (each image in all 4 quarter turns) or
    # contrastive (SimCLR: two augmented views of each image, `augment`)
    pretext: Literal["rotation", "contrastive"] = "rotation"
    pretrain_images: int = 32   # pretraining: images per batch
    temperature: float = 0.2    # contrastive: tau of the NT-Xent loss
    crop_scale: float = 0.25    # contrastive: the smallest area fraction of a random crop


@dataclass(frozen=True)
class W2SRecipeConfig:
    data: W2SDataConfig = field(default_factory=W2SDataConfig)
    model: SmallNetConfig = field(default_factory=SmallNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    w2s: W2SConfig = field(default_factory=W2SConfig)


# ---- the scales: sizes, steps ------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    base: W2SRecipeConfig
    weak: dict[str, dict[str, Any]]        # name -> model overrides, weakest first
    strong: dict[str, tuple[int, ...]]     # name -> CNN widths, smallest first
    pretrain_steps: int
    weak_epochs: float
    student_epochs: float
    student_lr: float


def _adam(lr: float, batch: int, log_every: int) -> TrainConfig:
    return TrainConfig(optimizer="adam", lr=lr, batch_size=batch, schedule="cosine",
                       min_lr_ratio=0.1, log_every=log_every, eval_every=0, checkpoint_every=0)


WEAK_MODELS = {
    # a linear softmax classifier of the 7x7 average-pooled pixels (49 inputs)
    "linear7": {"model.kind": "linear", "model.pool": 4},
    # a small CNN (8 and 16 channels, the last map pooled to 2x2) trained from scratch on A: the
    # paper's kind of supervisor (AlexNet), a convolutional net trained on ground truth
    "cnn8": {"model.kind": "cnn", "model.channels": (8, 16), "model.feature_grid": 2},
    # an MLP with one hidden layer of 64 units on the 14x14 pixels
    "mlp14": {"model.kind": "mlp", "model.pool": 2, "model.hidden": (64,)},
}

SCALES: dict[str, Scale] = {
    # seconds: synthetic gratings, for tests, not results
    "smoke": Scale(
        base=W2SRecipeConfig(
            data=W2SDataConfig(dataset="synthetic", weak_examples=200, student_examples=300,
                               synthetic_side=16),
            model=SmallNetConfig(kind="cnn", in_channels=3, image_size=16, channels=(4, 8)),
            train=dataclasses.replace(_adam(2e-3, 32, 2), steps=4),
            w2s=W2SConfig(pretrain_images=8)),
        weak={"linear7": {"model.kind": "linear", "model.pool": 4},
              "mlp14": {"model.kind": "mlp", "model.pool": 2, "model.hidden": (8,)}},
        strong={"s": (4, 8)}, pretrain_steps=4, weak_epochs=1, student_epochs=1,
        student_lr=1e-2),
    # 2 CPU cores: A = 10k, B = 20k images; students 16-32-64 and 32-64-128 wide
    "quick": Scale(
        base=W2SRecipeConfig(
            data=W2SDataConfig(dataset="fashion-mnist", weak_examples=10_000,
                               student_examples=20_000),
            model=SmallNetConfig(kind="cnn", in_channels=1, image_size=28, channels=(16, 32, 64),
                                 feature_grid=3),
            train=dataclasses.replace(_adam(2e-3, 128, 50), steps=600),
            w2s=W2SConfig(pretext="rotation", pretrain_images=32, confidence=0.0,
                          warmup_frac=0.2)),
        weak=WEAK_MODELS, strong={"s": (16, 32, 64), "l": (32, 64, 128)},
        pretrain_steps=600, weak_epochs=5, student_epochs=10, student_lr=3e-3),
    # a GPU: 5x the pretraining, wider students, all 30k other images as B
    "paper": Scale(
        base=W2SRecipeConfig(
            data=W2SDataConfig(dataset="fashion-mnist", weak_examples=20_000,
                               student_examples=40_000),
            model=SmallNetConfig(kind="cnn", in_channels=1, image_size=28,
                                 channels=(64, 128, 256), feature_grid=3),
            train=dataclasses.replace(_adam(1e-3, 256, 100), steps=10_000),
            w2s=W2SConfig(pretext="contrastive", pretrain_images=256, confidence=0.0,
                          warmup_frac=0.2)),
        weak=WEAK_MODELS,
        strong={"s": (32, 64, 128), "m": (64, 128, 256), "l": (128, 256, 512)},
        pretrain_steps=10_000, weak_epochs=20, student_epochs=20, student_lr=1e-3),
}
CONFIDENCE = 0.75  # c_max: the paper uses 0.5-0.75 (0.75 for its largest students)


def scale_arms(sc: Scale) -> dict[str, dict[str, Any]]:
    """The runs of a scale, as overrides of its base config."""
    arms: dict[str, dict[str, Any]] = {}
    for s, widths in sc.strong.items():
        arms[f"pretrain-{s}"] = {"data.role": "pretrain", "model.kind": "cnn",
                                 "model.channels": widths, "train.steps": sc.pretrain_steps}
    student = {"data.role": "student", "model.kind": "cnn", "w2s.probe": True,
               "train.epochs": sc.student_epochs, "train.lr": sc.student_lr}
    for w, model in sc.weak.items():
        arms[f"weak-{w}"] = {"data.role": "weak", **model, "train.epochs": sc.weak_epochs}
    for s, widths in sc.strong.items():
        common = {**student, "model.channels": widths, "train.init_from": f"arm:pretrain-{s}"}
        arms[f"ceiling-{s}"] = dict(common)
        for w in sc.weak:
            arms[f"w2s-{w}-{s}"] = {**common, "data.labels_from": f"arm:weak-{w}"}
            arms[f"w2s-conf-{w}-{s}"] = {**common, "data.labels_from": f"arm:weak-{w}",
                                         "w2s.confidence": CONFIDENCE}
    return arms


SCALE_ARMS = {name: scale_arms(sc) for name, sc in SCALES.items()}


def pairs(scale: str) -> list[tuple[str, str]]:
    sc = SCALES[scale]
    return [(w, s) for s in sc.strong for w in sc.weak]


# ---- data ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _images(dataset: str, path: str | None, side: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """{split: (images (N, C, H, W) float, normalised by the training pixels' mean and std,
    labels (N,))}."""
    splits = load_image_splits(dataset, path, synthetic=(768, 256, side))
    raw = {s: (sp.source.data, sp.source.labels) for s, sp in splits.items()}
    train = raw["train"][0].float() / 255.0
    mean, std = float(train.mean()), float(train.std())
    return {s: ((x.float() / 255.0 - mean) / std, y) for s, (x, y) in raw.items()}


def split_indices(n: int, weak: int, student: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A and B: disjoint parts of a fixed permutation of the n training images (the same for
    every run and seed)."""
    if weak + student > n:
        raise UserError(f"data.weak_examples + data.student_examples = {weak + student} exceed "
                        f"the {n} training images; lower them")
    perm = torch.from_numpy(np.random.default_rng([9_011, n]).permutation(n))
    return perm[:weak], perm[weak:weak + student]


def augment(x: torch.Tensor, generator: torch.Generator, crop_scale: float) -> torch.Tensor:
    """A random view of each image (B, C, H, W) -> (B, C, H, W), SimCLR's augmentations for
    grey images (Chen et al. 2020, appendix A): a random crop of area fraction
    U(crop_scale, 1) (square, anywhere inside the image) resized back to H x W, a horizontal flip
    with probability 1/2, contrast and brightness jitter (x * U(0.6, 1.4) + U(-0.4, 0.4), on the
    normalised pixels) and Gaussian noise of std 0.1. One batched resampling, no per-image loop."""
    b = len(x)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    side = uniform(crop_scale, 1.0).sqrt()  # the crop's side, as a fraction of the image's
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)  # output (u, v) in [-1, 1]^2 -> input (side u + tx, side v + ty)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-1, 1) * (1 - side), uniform(-1, 1) * (1 - side)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    view = torch.nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="border")
    contrast = uniform(0.6, 1.4).view(b, 1, 1, 1)
    brightness = uniform(-0.4, 0.4).view(b, 1, 1, 1)
    return view * contrast + brightness + 0.1 * torch.randn(view.shape, generator=generator)


def _stamp(run_dir: str) -> int:
    """When the run's checkpoint was written (0: none): part of the caches' keys, so a run
    trained again is read again."""
    from sutskever.train.checkpoint import MODEL_FILE

    path = Path(run_dir) / "checkpoint" / MODEL_FILE
    return path.stat().st_mtime_ns if path.exists() else 0


@functools.lru_cache(maxsize=8)
def weak_labels(run_dir: str, stamp: int, dataset: str, path: str | None, side: int, weak: int,
                student: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The soft labels (probabilities, (|B|, K)) that the weak model of `run_dir` gives B, and
    its predicted classes of the test images (N_test,)."""
    from sutskever.train.runs import load_model

    if not Path(run_dir).is_dir():
        raise UserError(f"data.labels_from={run_dir} is not a run directory; name the directory "
                        f"of a trained weak-model run")
    _, _, _, model = load_model(run_dir)
    images = _images(dataset, path, side)
    x, _ = images["train"]
    _, b = split_indices(len(x), weak, student)
    return _predict(model, x[b]).softmax(-1), _predict(model, images["test"][0]).argmax(1)


@functools.lru_cache(maxsize=4)
def frozen_features(run_dir: str, stamp: int, dataset: str, path: str | None, side: int, weak: int,
                    student: int) -> torch.Tensor:
    """The features (|B|, F) of B under the backbone of the pretrained run `run_dir`."""
    from sutskever.train.runs import load_model

    _, _, _, model = load_model(run_dir)
    if not isinstance(model, ConvNet):
        raise UserError(f"train.init_from={run_dir} is not a CNN run; a probe needs the "
                        f"pretrained CNN")
    x, _ = _images(dataset, path, side)["train"]
    _, b = split_indices(len(x), weak, student)
    return _predict(model.features, x[b], model)


@torch.no_grad()
def _predict(fn: Any, x: torch.Tensor, module: nn.Module | None = None,
             batch: int = 1000) -> torch.Tensor:
    """fn of x (on the CPU) in batches on the module's device; the result on the CPU."""
    module = module if module is not None else fn
    module.eval()
    device = next(module.parameters()).device
    return torch.cat([fn(x[i:i + batch].to(device)).float().cpu()
                      for i in range(0, len(x), batch)])


class W2SData(RecipeData):
    """Batches of one role, each a pure function of (seed, index): a seeded permutation per
    epoch. Pretraining batches hold `pretrain_images` images, each in all 4 quarter turns
    (rotation) or as two augmented views (contrastive)."""

    def __init__(self, cfg: W2SRecipeConfig, seed: int):
        d = cfg.data
        images = _images(d.dataset, d.path, d.synthetic_side)
        x, y = images["train"]
        self.num_classes = int(max(int(y.max()), int(images["test"][1].max()))) + 1
        a, b = split_indices(len(x), d.weak_examples, d.student_examples)
        xt, yt = images["test"]
        if d.test_examples:
            xt, yt = xt[:d.test_examples], yt[:d.test_examples]
        self.role, self.seed, self.cfg = d.role, seed, cfg
        self.features: torch.Tensor | None = None
        self.weak_test: torch.Tensor | None = None  # the supervisor's test predictions
        if d.role == "pretrain":  # every training image, no labels
            self.x, self.target = x, None
            self.per_batch = cfg.w2s.pretrain_images
        elif d.role == "weak":
            self.x, self.target = x[a], _one_hot(y[a], self.num_classes)
            self.per_batch = cfg.train.batch_size
        else:
            self.x, self.target = x[b], _one_hot(y[b], self.num_classes)
            if d.labels_from:
                self.target, weak_test = weak_labels(
                    str(Path(d.labels_from)), _stamp(d.labels_from), d.dataset, d.path,
                    d.synthetic_side, d.weak_examples, d.student_examples)
                self.weak_test = weak_test[:len(xt)]
            if cfg.w2s.probe:
                if not cfg.train.init_from:
                    raise UserError("w2s.probe=true needs train.init_from (the pretrained run "
                                    "whose frozen features the head probes)")
                self.features = frozen_features(str(Path(cfg.train.init_from)),
                                                _stamp(cfg.train.init_from), d.dataset, d.path,
                                                d.synthetic_side, d.weak_examples,
                                                d.student_examples)
            self.per_batch = cfg.train.batch_size
        if len(self.x) < self.per_batch:
            raise UserError(f"{len(self.x)} images are fewer than a batch of {self.per_batch}")
        self.agreement_truth = (None if self.target is None or d.role != "student" else
                                float((self.target.argmax(1) == y[b]).float().mean()))
        steps_per_epoch = len(self.x) // self.per_batch
        from sutskever.train.optim import total_steps

        accum = cfg.train.grad_accum
        self.total_steps = total_steps(cfg.train, max(1, steps_per_epoch // accum))
        super().__init__(steps_per_epoch=steps_per_epoch,
                         splits={"test": (xt, yt)})

    def _indices(self, index: int) -> torch.Tensor:
        epoch, i = divmod(index, self.steps_per_epoch)
        g = torch.Generator().manual_seed(int(np.random.default_rng(
            [self.seed, epoch, 4_099]).integers(2**62)))
        perm = torch.randperm(len(self.x), generator=g)
        return perm[i * self.per_batch:(i + 1) * self.per_batch]

    def batch(self, index: int) -> dict[str, Any]:
        idx = self._indices(index)
        step = index // self.cfg.train.grad_accum
        if self.role == "pretrain" and self.cfg.w2s.pretext == "contrastive":
            g = torch.Generator().manual_seed(int(np.random.default_rng(
                [self.seed, index, 7_919]).integers(2**62)))
            x = self.x[idx]  # (b, C, H, W) -> two views (b, C, H, W) each
            return {"views": (augment(x, g, self.cfg.w2s.crop_scale),
                              augment(x, g, self.cfg.w2s.crop_scale))}
        if self.role == "pretrain":
            x = self.x[idx]  # (b, C, H, W) -> (4b, C, H, W), k quarter turns for the k-th b
            rotated = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
            return {"x": rotated, "rotation": torch.arange(4).repeat_interleave(len(idx))}
        assert self.target is not None
        source = self.features if self.features is not None else self.x
        return {"x": source[idx], "target": self.target[idx], "step": step,
                "total_steps": self.total_steps, "features": self.features is not None}


def _one_hot(y: torch.Tensor, k: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, k).float()


# ---- the recipe ----------------------------------------------------------------------------------
def pgr_claims(paper_naive: float, naive_setting: str, conf_setting: str) -> tuple[Claim, ...]:
    """The paper's two claims, with how a recipe's setting differs from the paper's."""
    return (
        Claim(id="pgr-between-0-and-1",
              text="Naive weak-to-strong PGR lies in (0, 1): the student beats its weak "
                   "supervisor but not its ceiling, recovering a material part of the gap "
                   f"(mean over seeds in [{MIN_PGR:g}, 1) for all pairs but at most one)",
              kind="fit", metric="accuracy", arm="", paper=paper_naive, setting=naive_setting),
        Claim(id="confidence-raises-pgr",
              text="The auxiliary confidence loss raises PGR for the pair with the largest "
                   "weak-ceiling gap (mean over seeds of PGR(conf) - PGR(naive) > 0)",
              kind="fit", metric="accuracy", arm="", paper=PAPER_PGR_CONF_NLP,
              setting=conf_setting),
    )


@register
class WeakToStrong(Recipe):
    name = "weak-to-strong"
    title = "Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision"
    authors = ("Collin Burns, Pavel Izmailov, Jan Hendrik Kirchner, Bowen Baker, Leo Gao, "
               "Leopold Aschenbrenner, Yining Chen, Adrien Ecoffet, Manas Joglekar, Jan Leike, "
               "Ilya Sutskever, Jeff Wu")
    year = 2023
    arxiv = "2312.09390"
    data_note = ("Fashion-MNIST (Debian's dataset-fashion-mnist, unpacked by make): A = 10k "
                 "training images for the weak supervisors, B = 20k for the students, t10k test")
    config_class = W2SRecipeConfig
    claims = pgr_claims(
        PAPER_PGR_VISION,
        "paper: AlexNet -> DINO ResNet50 linear probe on ImageNet, PGR ~0.58; ours: "
        "pooled-pixel linear / MLP and small-CNN supervisors -> linear probes of "
        "self-supervised CNNs on Fashion-MNIST",
        "paper: NLP tasks, ~0.5 naive to ~0.8 with the confidence loss for large gaps (c_max "
        "0.75, ramp over 20%); ours: the same loss, c_max 0.75, argmax hardening for 10 "
        "classes, on the vision probes")
    arms: dict[str, Any] = {}  # per scale: see `arm_overrides`
    # what a subclass on other data replaces: its scales (each with a `base` config), their
    # arms, and the paper's naive PGR for the setting it stands for
    scale_table: dict[str, Any] = SCALES
    arm_table: dict[str, dict[str, dict[str, Any]]] = SCALE_ARMS
    paper_naive, paper_setting = PAPER_PGR_VISION, "vision"
    fit_over_seeds = True
    scale_notes = {
        "smoke": "synthetic gratings, tiny models: for tests, not for results",
        "quick": "Fashion-MNIST; weak: linear softmax of 7x7 pooled pixels, CNN 8-16, MLP(64) "
                 "of 14x14 pixels, 5 epochs on A (10k); strong: CNNs 16-32-64 and 32-64-128 "
                 "pretrained 600 steps on rotation prediction (32 images x 4 turns a step), "
                 "linear probes of their 3x3-pooled last maps, 10 epochs on B (20k); Burns: "
                 "AlexNet -> DINO ResNet50/ViT probes on ImageNet",
        "paper": "for a GPU: A 20k, B 40k, three students up to 128-256-512 wide pretrained "
                 "10k steps by SimCLR (256 images x 2 views a step); still Fashion-MNIST, not "
                 "ImageNet and DINO",
    }

    def scales(self) -> dict[str, Any]:
        return {name: sc.base for name, sc in self.scale_table.items()}

    def presets(self) -> dict[str, Any]:
        from sutskever.config import apply_overrides

        scales = self.scales()
        arms = {arm: apply_overrides(scales["paper"], o)
                for arm, o in self.arm_table["paper"].items()}
        return {**scales, **arms}

    def arm_overrides(self, scale: str, arm: str) -> dict[str, Any]:
        self.scale(scale)  # a one-line error for an unknown scale
        return self.arm_table[scale][arm]  # KeyError: an unknown arm (reproduce reports it)

    def pairs(self, scale: str) -> list[tuple[str, str]]:
        """(weak, strong) names of the scale's pairs, strong-major."""
        return pairs(scale)

    def claim_arms(self, scale: str, claims: Iterable[Claim]) -> list[str]:
        self.scale(scale)
        both = self.pairs(scale)
        names = [f"weak-{w}" for w in dict.fromkeys(w for w, _ in both)]
        names += [f"ceiling-{s}" for s in dict.fromkeys(s for _, s in both)]
        for w, s in both:
            names.append(f"w2s-{w}-{s}")
            if any(c.id == "confidence-raises-pgr" for c in claims):
                names.append(f"w2s-conf-{w}-{s}")
        return names

    # ---- the trainer's hooks ---------------------------------------------------------------------
    def build_model(self, cfg: W2SRecipeConfig) -> nn.Module:
        model = build_small_net(cfg.model)
        if cfg.data.role == "pretrain" and not isinstance(model, ConvNet):
            raise UserError("data.role=pretrain needs model.kind=cnn (its pretraining heads)")
        if cfg.data.role == "student" and cfg.w2s.probe and not isinstance(model, ConvNet):
            raise UserError("w2s.probe=true needs model.kind=cnn")
        return model

    def build_data(self, cfg: W2SRecipeConfig, seed: int) -> W2SData:
        return W2SData(cfg, seed)

    def loss(self, model: nn.Module, batch: Any, cfg: W2SRecipeConfig) -> tuple[torch.Tensor, int]:
        net = getattr(model, "module", model)  # under DDP, the wrapped network
        if "views" in batch:  # SimCLR: NT-Xent of the projections of the two views
            v1, v2 = batch["views"]
            z1, z2 = net.projection(net.features(v1)), net.projection(net.features(v2))
            return nt_xent(z1, z2, cfg.w2s.temperature), len(v1)
        x = batch["x"]
        if "rotation" in batch:
            logits = net.rotation_head(net.features(x))
            return torch.nn.functional.cross_entropy(logits.float(), batch["rotation"]), len(x)
        logits = net.head(x) if batch["features"] else model(x)
        return student_loss(logits, batch, cfg.w2s), len(x)

    def evaluate(self, model: nn.Module, cfg: W2SRecipeConfig, data: RecipeData, split: str,
                 full: bool = True) -> tuple[dict[str, float], list[dict]]:
        assert isinstance(data, W2SData)
        xt, yt = data.splits["test"]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            if cfg.data.role == "pretrain" and cfg.w2s.pretext == "contrastive":
                # how often a test image's view finds its partner among 2 x 1000 views
                g = torch.Generator().manual_seed(0)
                x = xt[:1000]
                views = torch.cat([augment(x, g, cfg.w2s.crop_scale),
                                   augment(x, g, cfg.w2s.crop_scale)])
                z = torch.nn.functional.normalize(
                    _predict(lambda v: model.projection(model.features(v)), views, model), dim=1)
                sim = z @ z.T
                sim.fill_diagonal_(-2.0)
                partner = torch.cat([torch.arange(len(x), 2 * len(x)), torch.arange(len(x))])
                metrics = {"view_match_accuracy": float((sim.argmax(1) == partner).float()
                                                        .mean())}
            elif cfg.data.role == "pretrain":
                x = xt[:2000]
                rotated = torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)])
                truth = torch.arange(4).repeat_interleave(len(x))
                logits = _predict(lambda v: model.rotation_head(model.features(v)), rotated,
                                  model)
                metrics = {"rotation_accuracy": float((logits.argmax(1) == truth).float().mean())}
            else:
                metrics = student_metrics(_predict(model, xt).argmax(1), yt,
                                          data.agreement_truth, data.weak_test)
        model.train(was_training)
        return metrics, []

    # ---- the claims, from all runs at once -------------------------------------------------------
    def score_claims(self, scale: str, claims: list[Claim], summaries: dict[str, list[dict]],
                     out_dir: Any) -> list[Any]:
        table = pgr_table(self.pairs(scale), summaries)
        out = Path(out_dir) / f"pgr-{scale}"
        write_pgr_table(out / "pgr.csv", table)
        try:
            plot_pgr(out / "pgr.png", table, self.paper_naive, self.paper_setting)
        except Exception as e:  # a figure must never cost the claims their results
            print(f"warning: could not draw {out / 'pgr.png'}: {e}")
        return [_score(claim, table, self.paper_naive, self.paper_setting) for claim in claims]


def student_loss(logits: torch.Tensor, batch: dict[str, Any], w2s: Any) -> torch.Tensor:
    """Soft cross-entropy with the batch's labels; with w2s.confidence > 0 the auxiliary
    confidence loss, eq. 1: CE(f, (1 - c) f_w + c hard(f)), c ramped over w2s.warmup_frac."""
    target = batch["target"]
    if w2s.confidence > 0:
        c = confidence_weight(batch["step"], batch["total_steps"], w2s.confidence,
                              w2s.warmup_frac)
        target = confidence_target(target, logits, c)
    return soft_cross_entropy(logits, target)


def student_metrics(pred: torch.Tensor, truth: torch.Tensor, label_accuracy: float | None,
                    weak_test: torch.Tensor | None) -> dict[str, float]:
    """Test accuracy; how right B's labels were; how much a student imitates its supervisor
    (agreement, and the share of the supervisor's mistakes it repeats)."""
    metrics = {"accuracy": float((pred == truth).float().mean())}
    if label_accuracy is not None:
        metrics["label_accuracy"] = label_accuracy
    if weak_test is not None:
        metrics["weak_agreement"] = float((pred == weak_test).float().mean())
        metrics["weak_errors_copied"] = copied_errors(pred, weak_test, truth)
    return metrics


# ---- PGR table, figure and claim scores ----------------------------------------------------------
def _acc(summaries: dict[str, list[dict]], arm: str) -> list[float]:
    return [float(s["metrics"]["accuracy"]) for s in summaries[arm]]


def pgr_table(pair_list: list[tuple[str, str]],
              summaries: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """One row per weak/strong pair: accuracies (mean over seeds) and PGR per seed."""
    rows = []
    for w, s in pair_list:
        weak, ceiling = _acc(summaries, f"weak-{w}"), _acc(summaries, f"ceiling-{s}")
        row: dict[str, Any] = {"weak": w, "strong": s, "seeds": len(weak),
                               "weak_acc": weak, "ceiling_acc": ceiling,
                               "gap": [c - a for a, c in zip(weak, ceiling, strict=True)]}
        for kind, arm in (("naive", f"w2s-{w}-{s}"), ("conf", f"w2s-conf-{w}-{s}")):
            if arm in summaries:
                acc = _acc(summaries, arm)
                row[f"{kind}_acc"] = acc
                row[f"{kind}_pgr"] = [pgr(a, b, c) for a, b, c in
                                      zip(weak, acc, ceiling, strict=True)]
        rows.append(row)
    return rows


def _mean(v: list[float]) -> float:
    return statistics.fmean(v)


def _std(v: list[float]) -> float:
    return statistics.stdev(v) if len(v) > 1 else 0.0


def _ms(v: list[float], digits: int = 3) -> str:
    return f"{_mean(v):.{digits}f} ± {_std(v):.{digits}f}" if len(v) > 1 else \
        f"{_mean(v):.{digits}f}"


def write_pgr_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["weak_acc", "ceiling_acc", "gap", "naive_acc", "naive_pgr", "conf_acc", "conf_pgr"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["weak", "strong", "seeds", *(f"{c}_{m}" for c in cols
                                                      for m in ("mean", "std"))])
        for r in rows:
            cells = []
            for c in cols:
                cells += ([f"{_mean(r[c]):.5f}", f"{_std(r[c]):.5f}"] if c in r else ["", ""])
            writer.writerow([r["weak"], r["strong"], r["seeds"], *cells])
    return path


def plot_pgr(path: Path, rows: list[dict[str, Any]], paper_naive: float = PAPER_PGR_VISION,
             paper_setting: str = "vision") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['weak']}→{r['strong']}\ngap {100 * _mean(r['gap']):.1f}" for r in rows]
    xs = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 4))
    for offset, kind, name in ((-0.2, "naive", "naive"), (0.2, "conf", "confidence loss")):
        if all(f"{kind}_pgr" in r for r in rows):
            ax.bar(xs + offset, [_mean(r[f"{kind}_pgr"]) for r in rows], 0.4,
                   yerr=[_std(r[f"{kind}_pgr"]) for r in rows], capsize=3, label=name)
    ax.axhline(paper_naive, color="k", ls="--", lw=0.8,
               label=f"paper, {paper_setting} naive ({paper_naive})")
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set(ylabel="PGR (mean ± std over seeds)", title="Performance gap recovered")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _score(claim: Claim, rows: list[dict[str, Any]], paper_naive: float = PAPER_PGR_VISION,
           paper_setting: str = "vision") -> Any:
    from sutskever.reproduce import ClaimResult

    seeds = rows[0]["seeds"]
    if claim.id == "pgr-between-0-and-1":
        inside = [MIN_PGR <= _mean(r["naive_pgr"]) < 1 for r in rows]
        need = len(rows) - 1 if len(rows) > 1 else 1
        ours = "; ".join(f"{r['weak']}→{r['strong']} {_ms(r['naive_pgr'], 2)} (gap "
                         f"{100 * _mean(r['gap']):.1f} pts)" for r in rows)
        bars = [{"label": f"{r['weak']}→{r['strong']}", "paper": paper_naive,
                 "mean": _mean(r["naive_pgr"]), "std": _std(r["naive_pgr"])} for r in rows]
        return ClaimResult(claim.id, claim.text, claim.kind, f"{paper_naive:g} ({paper_setting})",
                           f"{sum(inside)}/{len(rows)} pairs in [{MIN_PGR:g}, 1): {ours}",
                           f"mean PGR in [{MIN_PGR:g}, 1) for ≥ {need} of {len(rows)} pairs",
                           sum(inside) >= need, claim.setting, seeds, bars)
    big = max(rows, key=lambda r: _mean(r["gap"]))
    diff = [c - n for c, n in zip(big["conf_pgr"], big["naive_pgr"], strict=True)]
    holds = _mean(diff) > 0
    return ClaimResult(
        claim.id, claim.text, claim.kind, "~0.5 → ~0.8 (NLP, large gaps)",
        f"{big['weak']}→{big['strong']} (gap {100 * _mean(big['gap']):.1f} pts): conf "
        f"{_ms(big['conf_pgr'], 2)} vs naive {_ms(big['naive_pgr'], 2)} (Δ {_ms(diff, 2)})",
        f"mean Δ PGR > 0 over {len(diff)} seed(s), the largest-gap pair", holds,
        claim.setting, seeds,
        [{"label": "naive", "paper": PAPER_PGR_NLP, "mean": _mean(big["naive_pgr"]),
          "std": _std(big["naive_pgr"])},
         {"label": "confidence", "paper": PAPER_PGR_CONF_NLP, "mean": _mean(big["conf_pgr"]),
          "std": _std(big["conf_pgr"])}])
