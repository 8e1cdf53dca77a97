"""Runs that build on other runs: train.init_from, and "arm:NAME" references in reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from sutskever import recipes
from sutskever.errors import UserError
from sutskever.recipes.gpt import GPTPretraining
from sutskever.reproduce import dependencies, ensure_run, run_dir_for
from sutskever.train import Interrupted, RunSpec, train
from sutskever.train.runs import load_model

CPU = torch.device("cpu")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoint" / "model.safetensors"))


def test_init_from_starts_from_the_other_runs_weights(tmp_path: Path) -> None:
    recipe = recipes.get("gpt")
    cfg = recipe.configure("smoke")
    train(recipe, cfg, tmp_path / "a", RunSpec("gpt", "smoke", {}, 0), device=CPU)
    fine = recipe.configure("smoke", [f"train.init_from={tmp_path / 'a'}"])
    with pytest.raises(Interrupted):  # stopped before its first step: the initial weights
        train(recipe, fine, tmp_path / "b", RunSpec("gpt", "smoke", {}, 1), device=CPU,
              stop_at=0)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = recipe.build_model(cfg).state_dict()
    assert not torch.equal(fresh["wpe.weight"], a["wpe.weight"])
    # and the loaded run is the trained model
    _, _, record, model = load_model(tmp_path / "a")
    assert record["seed"] == 0 and torch.equal(model.state_dict()["wpe.weight"], a["wpe.weight"])


def test_init_from_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    recipe = recipes.get("gpt")
    cfg = recipe.configure("smoke", [f"train.init_from={tmp_path / 'none'}"])
    with pytest.raises(UserError, match="no checkpoint there"):
        train(recipe, cfg, tmp_path / "b", RunSpec("gpt", "smoke", {}, 0), device=CPU)


class _Chain(GPTPretraining):  # not registered: a recipe whose arms build on each other
    name = "gpt-chain"
    arms = {"base": {}, "ft": {"train.init_from": "arm:base"},
            "ft2": {"train.init_from": "arm:ft"},
            "loop": {"train.init_from": "arm:loop2"}, "loop2": {"train.init_from": "arm:loop"},
            "typo": {"train.init_from": "arm:bsae"}}


def test_arm_references_train_the_run_built_on_first(tmp_path: Path) -> None:
    recipe = _Chain()
    assert dependencies(recipe, "smoke", "ft2") == ["base", "ft"]
    summary = ensure_run(recipe, "smoke", "ft2", 1, tmp_path, CPU, Console(quiet=True))
    assert summary["steps"] >= 1
    for arm, parent in (("ft", "base"), ("ft2", "ft")):
        record = json.loads((run_dir_for(tmp_path, recipe, "smoke", arm, 1) / "config.json")
                            .read_text())
        assert record["config"]["train"]["init_from"] == str(
            run_dir_for(tmp_path, recipe, "smoke", parent, 1))
    assert (run_dir_for(tmp_path, recipe, "smoke", "base", 1) / "summary.json").exists()


def test_cyclic_and_unknown_arm_references_are_clear_errors(tmp_path: Path) -> None:
    recipe = _Chain()
    with pytest.raises(UserError, match="cycle"):
        dependencies(recipe, "smoke", "loop")
    with pytest.raises(UserError, match="unknown arm 'bsae'"):
        ensure_run(recipe, "smoke", "typo", 0, tmp_path, CPU, Console(quiet=True))
