"""Every registered recipe: its smoke preset trains and its claims machinery runs end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from rich.console import Console

from sutskever import recipes
from sutskever.reproduce import reproduce, seeds_for
from sutskever.train import RunSpec, train

ALL = [r.name for r in recipes.all()]


@pytest.mark.parametrize("name", ALL)
def test_recipe_contract(name: str) -> None:
    recipe = recipes.get(name)
    presets = recipe.presets()
    assert {"smoke", "quick", "paper"} <= presets.keys()
    assert recipe.title and recipe.year and recipe.claims
    for claim in recipe.claims:
        if claim.kind == "fit":  # scored from a sweep of runs the recipe names per scale
            assert all(recipe.claim_arms(scale, [claim]) for scale in ("smoke", "quick"))
            continue
        assert claim.arm in recipe.arms and set(claim.trend_arms) <= recipe.arms.keys()
        assert claim.baseline is None or claim.baseline in recipe.arms
        assert (claim.kind == "effect") == (claim.baseline is not None or
                                           claim.baseline_metric is not None)


@pytest.mark.parametrize("name", ALL)
def test_smoke_preset_trains(name: str, tmp_path: Path) -> None:
    recipe = recipes.get(name)
    cfg = recipe.configure("smoke")
    summary = train(recipe, cfg, tmp_path, RunSpec(name, "smoke", {}, 0),
                    device=torch.device("cpu"))
    assert summary["steps"] >= 1
    assert math.isfinite(summary["final_train_loss"])
    values = summary["metrics"].values()
    assert values and all(v is None or isinstance(v, float) for v in values)


@pytest.mark.parametrize("name", ALL)
def test_reproduce_smoke(name: str, tmp_path: Path) -> None:
    recipe = recipes.get(name)
    results = reproduce(recipe, "smoke", seeds=2, out=tmp_path, device=torch.device("cpu"),
                        console=Console(quiet=True))
    assert [r.id for r in results] == [c.id for c in recipe.claims]
    for r, c in zip(results, recipe.claims, strict=True):
        if r.holds is None:  # not run: needs a setting the smoke scale lacks (e.g. PTB)
            assert (c.requires or c.scales) and r.ours == "not run" and r.seeds == 0
            continue
        assert r.seeds == seeds_for(recipe, c.arm, 2)
        assert isinstance(r.holds, bool) and r.paper and r.ours
    # a second call reuses every finished run
    again = reproduce(recipe, "smoke", seeds=2, out=tmp_path, device=torch.device("cpu"),
                      console=Console(quiet=True))
    assert [r.ours for r in again] == [r.ours for r in results]


def test_a_finished_run_is_reused_when_only_new_fields_at_defaults_differ(tmp_path: Path) -> None:
    import json

    from sutskever.reproduce import ensure_run

    recipe, console = recipes.get("gpt"), Console(quiet=True)
    first = ensure_run(recipe, "smoke", "gpt", 0, tmp_path, torch.device("cpu"), console)
    config_file = next(tmp_path.rglob("config.json"))
    saved = json.loads(config_file.read_text())
    del saved["config"]["data"]["train_chunks"]  # as written before that field existed
    config_file.write_text(json.dumps(saved))
    again = ensure_run(recipe, "smoke", "gpt", 0, tmp_path, torch.device("cpu"), console)
    assert again == first  # reused: the field's default is what the older code did
    saved["config"]["data"]["train_chunks"] = 4  # trained with another value: stale
    config_file.write_text(json.dumps(saved))
    (config_file.parent / "summary.json").write_text(json.dumps({**first, "steps": -1}))
    assert ensure_run(recipe, "smoke", "gpt", 0, tmp_path, torch.device("cpu"),
                      console)["steps"] == first["steps"]
