"""Data-parallel training under torchrun (gloo on CPU): two processes each train on half of every
global batch, and end with the weights of one process training on the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def _run(tmp_path: Path, out: str, *args: str, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
                 "--standalone", "-m", "sutskever"] if nproc > 1
                else [sys.executable, "-m", "sutskever"])
    return subprocess.run([*launcher, "run", *args, "--device", "cpu", "--out",
                           str(tmp_path / out)], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("recipe", ["gpt", "rnn-regularization"])
def test_two_processes_train_like_one_on_the_whole_batch(tmp_path: Path, recipe: str) -> None:
    # no dropout, so that the two runs compute the same function
    overrides = ["--set", "model.dropout=0.0", "--set", "train.steps=6", "--set",
                 "train.epochs=0", "--set", "train.batch_size=8"]
    if recipe == "gpt":
        overrides += ["--set", "train.grad_accum=2"]  # accumulation and no_sync, too
    one = _run(tmp_path, "one", recipe, "--preset", "smoke", *overrides)
    two = _run(tmp_path, "two", recipe, "--preset", "smoke", *overrides, nproc=2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_file(tmp_path / "one" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=2e-5, rtol=1e-4), key
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 6
    # only rank 0 wrote the log: one line per log step
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines())
    first = json.loads(lines[0])
    assert abs(first["loss"] - json.loads((tmp_path / "one" / "metrics.jsonl").read_text()
                                          .splitlines()[0])["loss"]) < 1e-4


def test_a_batch_that_does_not_split_is_a_clear_error() -> None:
    # what every rank raises on its first batch (a UserError: one line, exit status 2); checked
    # in-process, since starting two ranks only to fail costs 17 s of the suite
    from sutskever.errors import UserError
    from sutskever.recipes.base import split_dim

    batch = torch.arange(12).reshape(6, 2)
    assert torch.equal(split_dim(batch, 0, 1, 2), batch[3:])
    assert torch.equal(split_dim(batch, 1, 0, 2), batch[:, :1])
    with pytest.raises(UserError, match="make train.batch_size a multiple of 4"):
        split_dim(batch, 0, 0, 4)
