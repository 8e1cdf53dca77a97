"""Learning-rate schedules of the papers and the optimizers."""

from __future__ import annotations

import math

import pytest
import torch

from sutskever.recipes.base import TrainConfig
from sutskever.train.optim import lr_multiplier, make_optimizer


def test_step_decay_by_epoch() -> None:
    # Zaremba et al. (medium): lr 1, constant for 6 epochs, then x0.8 every epoch.
    cfg = TrainConfig(schedule="step", decay_start_epoch=6, decay_every_epochs=1,
                      decay_factor=0.8)
    spe = 100
    assert lr_multiplier(cfg, 599, spe) == 1.0
    assert lr_multiplier(cfg, 600, spe) == pytest.approx(0.8)
    assert lr_multiplier(cfg, 699, spe) == pytest.approx(0.8)
    assert lr_multiplier(cfg, 700, spe) == pytest.approx(0.64)
    # Sutskever et al. (seq2seq): halve every half epoch after 5 epochs.
    cfg = TrainConfig(schedule="step", decay_start_epoch=5, decay_every_epochs=0.5,
                      decay_factor=0.5)
    assert lr_multiplier(cfg, 549, spe) == pytest.approx(0.5)
    assert lr_multiplier(cfg, 550, spe) == pytest.approx(0.25)


def test_warmup_cosine() -> None:
    cfg = TrainConfig(schedule="cosine", steps=1100, warmup_steps=100, min_lr_ratio=0.1)
    assert lr_multiplier(cfg, 0, 1) == pytest.approx(0.01)
    assert lr_multiplier(cfg, 99, 1) == pytest.approx(1.0)
    assert lr_multiplier(cfg, 600, 1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_multiplier(cfg, 1100, 1) == pytest.approx(0.1)
    values = [lr_multiplier(cfg, s, 1) for s in range(100, 1100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # monotone decay
    assert lr_multiplier(TrainConfig(), 12345, 7) == 1.0


def test_adamw_decays_matrices_only() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.1), model)
    decayed = [p for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    assert len(decayed) == 1 and decayed[0].shape == (4, 3)
    opt = make_optimizer(TrainConfig(optimizer="sgd", momentum=0.9, lr=0.5), model)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert math.isclose(opt.param_groups[0]["lr"], 0.5)


def test_plateau_decays_after_patience_evaluations_without_a_new_best() -> None:
    from sutskever.errors import UserError
    from sutskever.train.optim import plateau_step

    cfg = TrainConfig(schedule="plateau", plateau_metric="err", plateau_patience=2,
                      decay_factor=0.1, eval_every=10)
    state = {"best": math.inf, "bad": 0, "scale": 1.0}
    scales = []
    for err in (5.0, 4.0, 4.5, 4.2, 3.9, 3.9, 4.0, 4.1, 4.0):
        plateau_step(state, {"err": err}, cfg)
        scales.append(state["scale"])
    assert scales == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001])
    assert lr_multiplier(cfg, 123, 10) == 1.0  # the trainer applies the scale
    with pytest.raises(UserError, match="choose one of: loss"):
        plateau_step(state, {"loss": 1.0}, cfg)


def test_trainer_follows_the_plateau_decisions_of_its_evaluations(tmp_path) -> None:
    import json

    from sutskever import recipes
    from sutskever.errors import UserError
    from sutskever.train import RunSpec, train
    from sutskever.train.optim import plateau_step

    recipe = recipes.get("gpt")
    over = {"train.schedule": "plateau", "train.plateau_metric": "val_loss",
            "train.decay_factor": 0.5, "train.eval_every": 2, "train.log_every": 1,
            "train.steps": 12, "train.lr": 0.3}
    cfg = recipe.configure("smoke", over)
    train(recipe, cfg, tmp_path, RunSpec("gpt", "smoke", over, 0), device=torch.device("cpu"))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    state, checked = {"best": math.inf, "bad": 0, "scale": 1.0}, 0
    for row in rows:
        if row.get("split") == "valid" and "val_loss" in row:
            plateau_step(state, row, cfg.train)
        elif row.get("split") == "train":
            assert row["lr"] == pytest.approx(0.3 * state["scale"])
            checked += 1
    assert checked == 12 and state["scale"] < 1  # it did decay
    with pytest.raises(UserError, match="plateau_metric"):
        train(recipe, recipe.configure("smoke", {"train.schedule": "plateau"}), tmp_path / "b",
              RunSpec("gpt", "smoke", {}, 0), device=torch.device("cpu"))
