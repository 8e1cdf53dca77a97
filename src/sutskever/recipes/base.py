"""What a recipe is: a paper's model, data, configurations, metric and claims, as data.

A recipe does not own a training loop; the one trainer (`sutskever.train`) runs every recipe
through the hooks below. See DESIGN.md ("A recipe").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from sutskever.config import apply_overrides
from sutskever.errors import UserError


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the one trainer, shared by every recipe."""

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    batch_size: int = 128
    grad_accum: int = 1              # micro-batches of batch_size per optimizer step
    steps: int = 1000                # total optimizer steps ...
    epochs: float = 0.0              # ... unless > 0: train this many epochs (papers' unit)
    # lr schedule: constant | step (papers' decay by epoch) | cosine (with linear warmup) |
    # plateau (times decay_factor when the periodic evaluation's plateau_metric stops improving)
    schedule: Literal["constant", "step", "cosine", "plateau"] = "constant"
    warmup_steps: int = 0
    decay_start_epoch: float = 0.0   # step schedule: first decay after this many epochs ...
    decay_every_epochs: float = 1.0  # ... then every this many epochs ...
    decay_factor: float = 0.5        # ... multiply the lr by this
    min_lr_ratio: float = 0.0        # cosine floor as a fraction of lr
    plateau_metric: str = ""         # plateau: a metric of the periodic evaluation, lower better
    plateau_patience: int = 1        # ... evaluations without a new best before each decay
    clip_norm: float | None = None   # clip by global gradient norm
    log_every: int = 50
    eval_every: int = 0              # 0: only at the end
    checkpoint_every: int = 0        # 0: only at the end (and on Ctrl-C)
    amp: bool = True                 # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False            # torch.compile the model
    # a run directory whose trained weights initialise the model (fine-tuning; parameters of the
    # same name and shape are copied, the rest keep their fresh init). In a recipe's arms,
    # "arm:NAME" names the run of arm NAME at the same scale and seed, which `reproduce` trains
    # first (any string field of a config may hold such a reference).
    init_from: str = ""

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "log_every", "plateau_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Claim:
    """One thing the paper reports that a reproduction must show.

    value:  our `metric` of the run `arm`, beside the paper's number. It holds when the metric is
            at most (`higher_is_better=False`) or at least `threshold`, where the threshold is a
            number, or `factor` times `reference` (another metric of the same run, e.g. the
            optimal tour length), or else `factor` times the paper's number.
    effect: `arm` beats `baseline` on `metric` (mean over seeds) by more than `margin`. The
            baseline may be another run (`baseline` overrides) or another metric of the same run
            (`baseline_metric`), e.g. accuracy at the training n versus beyond it.
    power-law: across the runs `arm` + `trend_arms`, `metric` falls as a power of `x_metric`
            (e.g. loss against parameters): the log-log fit has slope -exponent with exponent
            > `margin` and R^2 >= `threshold`. `paper` is the paper's exponent.
    fit:    scored by the recipe's `score_claims` hook from many runs at once (a sweep's
            scaling-law fits); the recipe's `claim_arms` hook names the runs.
    `arm`, `baseline` and `trend_arms` name entries of the recipe's `arms`: config overrides
    applied on top of the scale preset (`smoke`, `quick`, `paper`).
    """

    id: str
    text: str
    kind: Literal["value", "effect", "power-law", "fit"]
    metric: str
    arm: str
    paper: float | None  # None: the paper states the effect without a number
    higher_is_better: bool = True
    # config values the claim needs (e.g. the paper's corpus); otherwise it is shown as not run
    requires: Mapping[str, Any] | None = None
    # the scale presets it runs at (None: all); e.g. an ablation too slow for `quick`
    scales: tuple[str, ...] | None = None
    # value claims
    threshold: float | None = None
    reference: str | None = None
    reference_label: str = "reference"  # what the reference is, e.g. "optimal"
    factor: float = 1.0
    paper_reference: float | None = None
    # effect claims
    baseline: str | None = None
    baseline_metric: str | None = None
    paper_baseline: float | None = None
    margin: float = 0.0
    # power-law claims
    trend_arms: tuple[str, ...] = ()
    x_metric: str = ""
    setting: str = ""  # how our setting differs from the paper's


class Recipe:
    """Base class: subclasses fill in the paper, presets, claims and the hooks."""

    name: str = ""
    title: str = ""
    authors: str = ""
    year: int = 0
    arxiv: str = ""
    data_note: str = ""          # what data the recipe uses and where it comes from
    config_class: type = object  # the frozen dataclass of the recipe's config
    claims: tuple[Claim, ...] = ()
    # The runs the claims compare, as overrides of a scale preset. Each is also a preset of its
    # own at the paper's scale (`paper` + the arm), so `run --preset ARM` trains it as the paper.
    arms: Mapping[str, Mapping[str, Any]] = {}
    # How each scale preset's setting differs from the paper's, printed with its results.
    scale_notes: Mapping[str, str] = {}
    # fit claims measured over `reproduce --seeds` seeds (a sweep's fit uses one seed a point)
    fit_over_seeds: bool = False

    def scales(self) -> dict[str, Any]:
        """The scale presets: `smoke` (seconds), `quick` (a CPU in minutes), `paper`."""
        raise NotImplementedError

    def presets(self) -> dict[str, Any]:
        """Named configs: the scales, then the paper's scale with each arm applied."""
        scales = self.scales()
        arms = {name: apply_overrides(scales["paper"], arm) for name, arm in self.arms.items()}
        return {**scales, **arms}

    def scale(self, name: str) -> Any:
        scales = self.scales()
        if name not in scales:
            raise UserError(f"recipe {self.name!r} has no scale preset {name!r}; choose one of: "
                            f"{', '.join(scales)}")
        return scales[name]

    def arm_overrides(self, scale: str, arm: str) -> Mapping[str, Any]:
        """The overrides that make `arm` at `scale` (the same at every scale unless a recipe's
        arms depend on it, as a sweep's do)."""
        return self.arms[arm]

    def arm_config(self, scale: str, arm: str) -> Any:
        """The config of `arm` at `scale` (a scale preset)."""
        return apply_overrides(self.scale(scale), self.arm_overrides(scale, arm))

    def preset(self, name: str) -> Any:
        presets = self.presets()
        if name not in presets:
            raise UserError(
                f"recipe {self.name!r} has no preset {name!r}; choose one of: {', '.join(presets)}"
            )
        return presets[name]

    def configure(self, preset: str, overrides: Mapping[str, Any] | list[str] = ()) -> Any:
        return apply_overrides(self.preset(preset), overrides)

    # ---- hooks used by the trainer -------------------------------------------------------------
    def build_model(self, cfg: Any) -> nn.Module:
        raise NotImplementedError

    def build_data(self, cfg: Any, seed: int) -> RecipeData:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, cfg: Any) -> tuple[torch.Tensor, int]:
        """Mean loss of a batch and the number of samples (or tokens) in it."""
        raise NotImplementedError

    def step_loss(self, model: nn.Module, batch: Any, cfg: Any,
                  carry: Any) -> tuple[torch.Tensor, int, Any]:
        """The hook for state carried across training steps (truncated BPTT's hidden state).

        `carry` is what the previous step returned (None at the start of training); return the
        next one, detached from the graph. The trainer keeps it in the checkpoint, so a resumed
        run continues with it. Recipes without carried state only implement `loss`.
        """
        loss, n = self.loss(model, batch, cfg)
        return loss, n, None

    def evaluate(self, model: nn.Module, cfg: Any, data: RecipeData, split: str,
                 full: bool = True) -> tuple[dict[str, float], list[dict]]:
        """Metrics on a split and, where outputs are structured, one prediction per example.

        `full=False` is the cheap evaluation run every `eval_every` steps during training.
        """
        raise NotImplementedError

    def evaluate_ensemble(self, models: list[nn.Module], cfg: Any, data: RecipeData,
                          split: str) -> dict[str, float]:
        """Metrics of the models' ensemble (`sutskever eval RUN_DIR RUN_DIR ...`)."""
        raise UserError(f"recipe {self.name!r} does not evaluate ensembles")

    def flops_per_sample(self, cfg: Any) -> float | None:
        """Training FLOPs per sample (or token), for the MFU the trainer reports; None: not
        counted."""
        return None

    def sample(self, model: nn.Module, cfg: Any, data: RecipeData, prompt: str, length: int,
               temperature: float, generator: torch.Generator, top_k: int | None = None) -> str:
        """Generated text (`sutskever sample RUN_DIR`); `top_k` keeps the k likeliest tokens."""
        raise UserError(f"recipe {self.name!r} does not generate text")

    def plot(self, run_dir: Any, model: nn.Module, cfg: Any, data: RecipeData) -> list[str]:
        """Optional recipe-specific figures; returns the files written."""
        return []

    def train_pipelined(self, cfg: Any, run_dir: Any, spec: Any) -> dict | None:
        """A run the recipe trains itself (GPipe: one process per pipeline stage) and its
        summary; None: the one trainer runs it (every other recipe)."""
        return None

    # ---- hooks used by `reproduce` -------------------------------------------------------------
    def claim_arms(self, scale: str, claims: Iterable[Claim]) -> list[str]:
        """The arms (runs) the claims need at `scale`: by default those they name."""
        return claim_arms(claims)

    def score_claims(self, scale: str, claims: list[Claim], summaries: dict[str, list[dict]],
                     out_dir: Any) -> list[Any]:
        """`ClaimResult`s of the claims of kind `fit`, scored from the summaries of all the
        runs at once; figures and tables go under `out_dir`."""
        raise NotImplementedError(f"recipe {self.name!r} has no fit claims")


@dataclass
class RecipeData:
    """The data a run needs. `batch(step)` is a pure function of (seed, step), so a resumed run
    sees exactly the batches an uninterrupted one would."""

    steps_per_epoch: int
    splits: dict[str, Any] = field(default_factory=dict)

    def batch(self, step: int) -> Any:
        raise NotImplementedError

    def to(self, batch: Any, device: torch.device) -> Any:
        return _to_device(batch, device)

    def shard(self, batch: Any, rank: int, world: int) -> Any:
        """This rank's part of a global batch under data parallelism: a contiguous 1/world of
        every tensor's batch dimension (dim 0; recipes with another layout override)."""
        return _map_tensors(batch, lambda t: split_dim(t, 0, rank, world))


def split_dim(t: torch.Tensor, dim: int, rank: int, world: int) -> torch.Tensor:
    if t.dim() <= dim:
        return t
    if t.shape[dim] % world:
        raise UserError(f"a batch of {t.shape[dim]} does not split evenly over {world} "
                        f"processes; make train.batch_size a multiple of {world}")
    return t.chunk(world, dim)[rank]


def _map_tensors(obj: Any, fn: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj)})
    return obj


def _to_device(obj: Any, device: torch.device) -> Any:
    return _map_tensors(obj, lambda t: t.to(device, non_blocking=True))


def claim_runnable(recipe: Recipe, claim: Claim, scale: str) -> bool:
    """Whether the claim runs at this scale and its `requires` holds there."""
    if claim.scales is not None and scale not in claim.scales:
        return False
    if not claim.requires:
        return True
    cfg = recipe.arm_config(scale, claim.arm)
    for key, value in claim.requires.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        if node != value:
            return False
    return True


def claim_arms(claims: Iterable[Claim]) -> list[str]:
    """The distinct arms the claims need, in order of first use."""
    names: list[str] = []
    for claim in claims:
        for arm in (claim.arm, claim.baseline, *claim.trend_arms):
            if arm is not None and arm not in names:
                names.append(arm)
    return names
