"""The one trainer: resume determinism, checkpoints, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sutskever import recipes
from sutskever.errors import UserError
from sutskever.train import Interrupted, RunSpec, train
from sutskever.train.checkpoint import find_checkpoint, load_state, load_weights

CPU = torch.device("cpu")


def _run(out: Path, stop_at: int | None = None, resume: bool = False,
         overrides: tuple[str, ...] = ()) -> dict:
    recipe = recipes.get("pointer-networks")
    cfg = recipe.configure("smoke", ["train.steps=12", "train.checkpoint_every=0",
                                     "train.log_every=2", "train.eval_every=4", *overrides])
    spec = RunSpec(recipe.name, "smoke", {}, seed=7)
    return train(recipe, cfg, out, spec, device=CPU, resume=resume, stop_at=stop_at)


def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path: Path) -> None:
    # dropout-free model, but RNG state, optimizer moments, schedule and data order all matter
    overrides = ("train.schedule=cosine", "train.warmup_steps=3", "train.optimizer=adam")
    whole = _run(tmp_path / "whole", overrides=overrides)
    with pytest.raises(Interrupted) as e:
        _run(tmp_path / "split", stop_at=5, overrides=overrides)
    assert e.value.step == 5
    assert load_state(tmp_path / "split" / "checkpoint")["step"] == 5
    resumed = _run(tmp_path / "split", resume=True, overrides=overrides)
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert whole["metrics"] == resumed["metrics"]
    # the metrics log of the resumed run has each step once, in order
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_run_directory_contents(tmp_path: Path) -> None:
    summary = _run(tmp_path)
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["recipe"] == "pointer-networks" and record["seed"] == 7
    assert record["config"]["train"]["steps"] == 12
    assert {"torch", "commit", "hardware"} <= record["environment"].keys()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {x["split"] for x in lines} == {"train", "valid"}
    assert all(x["samples_per_s"] > 0 for x in lines if x["split"] == "train")
    assert summary["steps"] == 12 and summary["split"] == "test"
    assert json.loads((tmp_path / "summary.json").read_text())["metrics"] == summary["metrics"]
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path: Path) -> None:
    _run(tmp_path / "a")
    with pytest.raises(UserError, match="already holds a run"):
        _run(tmp_path / "a")
    with pytest.raises(UserError, match="no checkpoint"):
        _run(tmp_path / "b", resume=True)
    with pytest.raises(UserError, match="different config"):
        _run(tmp_path / "a", resume=True, overrides=("train.lr=0.5",))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    _run(tmp_path)
    ckpt = tmp_path / "checkpoint"
    model = recipes.get("pointer-networks").build_model(
        recipes.get("pointer-networks").configure("smoke"))
    load_weights(ckpt, model)  # intact: loads
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="corrupt"):
        load_weights(ckpt, model)
    (ckpt / "trainer.pt").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="corrupt"):
        load_state(ckpt)


def test_interrupted_swap_falls_back_to_the_old_checkpoint(tmp_path: Path) -> None:
    _run(tmp_path)
    ckpt = tmp_path / "checkpoint"
    ckpt.rename(tmp_path / "checkpoint.old")  # as if we died between the two renames
    assert find_checkpoint(ckpt) == tmp_path / "checkpoint.old"


class _CarryRecipe(recipes.Recipe):
    """A toy recipe whose loss depends on state carried across steps (as truncated BPTT's)."""

    name = "toy-carry"

    def build_model(self, cfg):  # noqa: ANN001, ANN201
        return torch.nn.Linear(1, 1)

    def build_data(self, cfg, seed):  # noqa: ANN001, ANN201
        class Data(recipes.RecipeData):
            def batch(self, step: int) -> torch.Tensor:
                return torch.tensor([[float(step % 5)]])

        return Data(steps_per_epoch=5, splits={"test": None})

    def step_loss(self, model, batch, cfg, carry):  # noqa: ANN001, ANN201
        carry = torch.zeros(1, 1) if carry is None else carry
        out = model(batch) + 0.5 * carry          # the carried state feeds the loss ...
        loss = (out - 1.0).pow(2).mean()
        return loss, 1, out.detach()              # ... and is detached between steps

    def evaluate(self, model, cfg, data, split, full=True):  # noqa: ANN001, ANN201
        return {"weight": float(model.weight.item())}, []


def test_carried_state_survives_stop_and_resume(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Cfg:
        train: recipes.TrainConfig = field(default_factory=lambda: recipes.TrainConfig(
            optimizer="sgd", lr=0.05, steps=9, log_every=1))

    recipe, cfg = _CarryRecipe(), Cfg()
    whole = train(recipe, cfg, tmp_path / "whole", RunSpec("toy", "x", {}, 0), device=CPU)
    with pytest.raises(Interrupted):
        train(recipe, cfg, tmp_path / "split", RunSpec("toy", "x", {}, 0), device=CPU, stop_at=4)
    assert load_state(tmp_path / "split" / "checkpoint")["carry"].shape == (1, 1)
    resumed = train(recipe, cfg, tmp_path / "split", RunSpec("toy", "x", {}, 0), device=CPU,
                    resume=True)
    assert resumed["metrics"] == whole["metrics"]
    # and the carry matters: resuming the second half without it ends elsewhere
    with pytest.raises(Interrupted):
        train(recipe, cfg, tmp_path / "lost", RunSpec("toy", "x", {}, 0), device=CPU, stop_at=4)
    state = load_state(tmp_path / "lost" / "checkpoint")
    torch.save({**state, "carry": None}, tmp_path / "lost" / "checkpoint" / "trainer.pt")
    lost = train(recipe, cfg, tmp_path / "lost", RunSpec("toy", "x", {}, 0), device=CPU,
                 resume=True)
    assert lost["metrics"]["weight"] != whole["metrics"]["weight"]


def test_checkpoint_of_tied_weights(tmp_path: Path) -> None:
    from sutskever.models.lstm_lm import LSTMLanguageModel, LSTMLMConfig
    from sutskever.train.checkpoint import save_checkpoint

    cfg = LSTMLMConfig(vocab_size=50, hidden=8, tie_weights=True)
    model = LSTMLanguageModel(cfg)
    save_checkpoint(tmp_path / "ckpt", model, {"step": 1})
    other = LSTMLanguageModel(cfg)
    load_weights(tmp_path / "ckpt", other)
    assert torch.equal(other.decoder.weight, model.embedding.weight)
    assert other.decoder.weight is other.embedding.weight  # still tied after loading
