"""Checkpoints and result files, written atomically.

A checkpoint is a directory: `model.safetensors` (the state dict; never a pickled module) and
`trainer.pt` (optimizer state, step, RNG states: plain tensors and numbers, loaded with
`weights_only=True`). It is written to `checkpoint.new/` and swapped in by renames, so a crash
leaves either the old checkpoint or the new one, never half of each.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sutskever.errors import UserError

MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer.pt"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: a NaN or infinite metric (undefined, e.g. the paper's "FAIL") becomes null."""
    text = json.dumps(finite_json(obj), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def finite_json(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (JSON null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, state: dict) -> None:
    directory = Path(directory)
    new, old = directory.with_name(directory.name + ".new"), directory.with_name(
        directory.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    # clone: tied weights (one tensor under two names) must be stored as separate tensors
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(new / MODEL_FILE), metadata={"step": str(state.get("step", 0))})
    torch.save(state, new / STATE_FILE)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(new, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint directory to load, falling back to `.old` after an interrupted swap."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / MODEL_FILE).exists():
            return candidate
    return None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as e:
        raise UserError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); delete it and run again"
                        ) from None


def load_matching_weights(directory: str | os.PathLike, model: nn.Module) -> list[str]:
    """Copy the checkpoint's tensors into the model's parameters and buffers of the same name
    and shape (fine-tuning from another run: a new head keeps its fresh init); returns the names
    copied. None in common is an error: the checkpoint is of another model."""
    path = Path(directory) / MODEL_FILE
    weights = _read_weights(path)
    own = model.state_dict()
    copied = [k for k, v in weights.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise UserError(f"checkpoint {path} shares no parameter with this model; train.init_from "
                        f"must name a run of a compatible model")
    model.load_state_dict({k: weights[k] for k in copied}, strict=False)
    return copied


def load_weights(directory: str | os.PathLike, model: nn.Module) -> None:
    path = Path(directory) / MODEL_FILE
    weights = _read_weights(path)
    missing, unexpected = _diff_keys(model.state_dict().keys(), weights.keys())
    if missing or unexpected:
        raise UserError(f"checkpoint {path} does not fit this model (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}); was it written with another config?")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"checkpoint {path} does not fit this model: "
                        f"{str(e).splitlines()[-1].strip()}") from None


def load_state(directory: str | os.PathLike) -> dict:
    path = Path(directory) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"trainer state {path} is missing; the checkpoint is incomplete") from None
    except Exception as e:
        raise UserError(f"trainer state {path} is corrupt or unreadable ({type(e).__name__}); "
                        f"delete the checkpoint and run again") from None


def _diff_keys(expected: Any, found: Any) -> tuple[list[str], list[str]]:
    expected, found = set(expected), set(found)
    return sorted(expected - found), sorted(found - expected)
