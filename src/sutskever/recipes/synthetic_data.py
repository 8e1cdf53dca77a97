"""Verified synthetic data past "peak data": self-training on checked samples.

The finite training set of `inference-compute` is all the labelled data there is; problems, but
not their solutions, are free. After the `base` run, each round continues training from the
previous round's weights for the same number of steps, on one of three mixtures:

- `repeat`: the finite set again (the data-constrained baseline of Muennighoff et al. 2023);
- `verified`: the finite set plus the previous model's sampled solutions to fresh problems that
  the exact verifier accepts (rejection sampling / self-training, as in STaR and ReST);
- `unverified`: the finite set plus the same samples unfiltered (training on one's own output).

Every round is an ordinary trainer run built on the previous one (`train.init_from="arm:..."`),
so rounds are reused and resumed like any run. Training compute is the same for the three arms;
the sampling compute of the synthetic arms is on top (FLOPs of generation, reported).
Claims: after the last round, verified data beats repeating the finite data, and beats unverified
data, on held-out problems (greedy accuracy, mean over seeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sutskever.data import arithmetic as ar
from sutskever.errors import UserError
from sutskever.models.gpt import GPTConfig
from sutskever.recipes import register
from sutskever.recipes.base import Claim, TrainConfig
from sutskever.recipes.inference_compute import (
    PAPER,
    QUICK,
    SMOKE,
    ArithmeticGPT,
    TaskConfig,
    finite_examples,
    solve,
)


@dataclass(frozen=True)
class SyntheticConfig:
    mode: Literal["none", "verified", "unverified"] = "none"
    round: int = 0              # seeds the round's fresh problems
    problems: int = 2000        # fresh problems sampled per round (one solution each)
    temperature: float = 1.0


@dataclass(frozen=True)
class SyntheticDataConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _scale(base: Any, problems: int, lr: float | None = None, steps: int | None = None,
           **task: Any) -> SyntheticDataConfig:
    """inference-compute's scale preset (greedy evaluation only, solutions in the fixed order),
    with synthetic settings."""
    train = dataclasses.replace(base.train, lr=lr or base.train.lr,
                                steps=steps or base.train.steps)
    return SyntheticDataConfig(task=dataclasses.replace(base.task, samples=0, order="fixed",
                                                        temperature=1.0, **task),
                               synthetic=SyntheticConfig(problems=problems), model=base.model,
                               train=train)


ROUNDS = 3
MODES = ("repeat", "verified", "unverified")


def _arms() -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, Any]] = {"base": {}}
    for mode in MODES:
        for r in range(1, ROUNDS + 1):
            previous = "base" if r == 1 else f"{mode}-r{r - 1}"
            arms[f"{mode}-r{r}"] = {"train.init_from": f"arm:{previous}",
                                    "synthetic.mode": "none" if mode == "repeat" else mode,
                                    "synthetic.round": r, "train.warmup_steps": 0}
    return arms


CLAIMS = (
    Claim(id="verified-beats-repeat",
          text=f"After {ROUNDS} rounds, training on verified self-generated solutions beats "
               f"repeating the finite data for the same training steps (greedy accuracy %)",
          kind="effect", metric="greedy", arm=f"verified-r{ROUNDS}",
          baseline=f"repeat-r{ROUNDS}", paper=None,
          setting="STaR / ReST-style rejection sampling on written arithmetic with a small "
                  "GPT; the papers use LLMs on reasoning benchmarks"),
    Claim(id="verified-beats-unverified",
          text=f"After {ROUNDS} rounds, verified synthetic data beats the same samples "
               f"unfiltered (greedy accuracy %)",
          kind="effect", metric="greedy", arm=f"verified-r{ROUNDS}",
          baseline=f"unverified-r{ROUNDS}", paper=None,
          setting="unfiltered self-training feeds the model its own errors (model collapse, "
                  "Shumailov et al. 2024); small GPT on arithmetic"),
)


@register
class SyntheticData(ArithmeticGPT):
    name = "synthetic-data"
    title = "Verified synthetic data: self-training with a checker vs repeating finite data"
    authors = "Zelikman et al. 2022 (STaR); Gulcehre et al. 2023 (ReST); Muennighoff et al. 2023"
    year = 2023
    arxiv = "2308.08998"
    data_note = "the inference-compute arithmetic task: a finite set of 2,000 solved problems, " \
                "fresh problems for self-training"
    config_class = SyntheticDataConfig
    claims = CLAIMS
    arms = _arms()
    scale_notes = {
        "quick": "inference-compute's quick small model (4 x 64), on a finite set of 2,000 "
                 "problems solved in the fixed order; base 3,000 steps, then 3 rounds of 1,000 "
                 "steps, each adding the previous model's solutions to 2,000 fresh problems",
        "paper": "inference-compute's paper model and data; 3 rounds of 6,666 steps",
        "smoke": "a tiny model trained for seconds: for tests, not for results",
    }

    def scales(self) -> dict[str, Any]:
        # quick: the setting it was measured in (2,000 problems of + and -, lr 1e-2)
        return {"smoke": _scale(SMOKE, 20),
                "quick": _scale(QUICK, 2000, train_problems=2000, lr=1e-2, steps=3000,
                                operators="+-"),
                "paper": _scale(PAPER, 20000)}

    def arm_overrides(self, scale: str, arm: str) -> dict[str, Any]:
        overrides = dict(self.arms[arm])
        if arm != "base":  # a round trains a third of the base run's steps
            overrides["train.steps"] = max(1, self.scale(scale).train.steps // 3)
        return overrides

    def examples(self, cfg: SyntheticDataConfig,
                 seed: int) -> list[tuple[ar.Problem, str | None]]:
        finite = finite_examples(cfg.task)
        s = cfg.synthetic
        if s.mode == "none":
            return finite
        if not cfg.train.init_from:
            raise UserError("synthetic.mode needs train.init_from: the run whose model writes "
                            "the synthetic solutions")
        from sutskever.train.runs import load_model

        _, _, _, model = load_model(cfg.train.init_from)
        problems = ar.make_problems(s.problems, cfg.task.ops,
                                    seed=cfg.task.data_seed * 1000 + 300 + s.round,
                                    operators=cfg.task.operators)
        generator = torch.Generator().manual_seed(seed * 1000 + s.round)
        sols = [ss[0] for ss in solve(model, problems, 1, s.temperature, generator)]
        kept = [(p, sol) for p, sol in zip(problems, sols, strict=True)
                if s.mode == "unverified" or ar.verify(p, sol)]
        print(f"  synthetic round {s.round}: {len(kept)} of {len(problems)} sampled solutions "
              f"kept ({s.mode})")
        return finite + kept
