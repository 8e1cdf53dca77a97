"""Reading finished run directories back: their config and their trained model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sutskever.config import apply_overrides, from_dict
from sutskever.errors import UserError
from sutskever.train.checkpoint import find_checkpoint, load_weights
from sutskever.train.trainer import CHECKPOINT_DIR, CONFIG_FILE


def load_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Any, Any, dict]:
    """(recipe, config, config.json record) of a run directory, with eval-time overrides."""
    from sutskever import recipes

    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    try:
        record = json.loads(path.read_text())
        recipe = recipes.get(record["recipe"])
        cfg = from_dict(recipe.config_class, record["config"])
    except FileNotFoundError:
        raise UserError(f"{run_dir} is not a run directory (no {CONFIG_FILE})") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path} is corrupt ({type(e).__name__}: {e}); it cannot be evaluated"
                        ) from None
    return recipe, apply_overrides(cfg, overrides), record


def load_model(run_dir: str | Path, overrides: Sequence[str] = (),
               device: Any = "cpu") -> tuple[Any, Any, dict, torch.nn.Module]:
    """(recipe, config, config.json record, model with the checkpoint's weights)."""
    run_dir = Path(run_dir)
    recipe, cfg, record = load_run(run_dir, overrides)
    checkpoint = find_checkpoint(run_dir / CHECKPOINT_DIR)
    if checkpoint is None:
        raise UserError(f"{run_dir} has no checkpoint; train it first "
                        f"(sutskever run ... --out {run_dir})")
    torch.manual_seed(record.get("seed", 0))
    model = recipe.build_model(cfg)
    load_weights(checkpoint, model)
    return recipe, cfg, record, model.to(device)
