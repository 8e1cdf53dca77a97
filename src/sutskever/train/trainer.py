"""The one training loop for every recipe.

    for step in range(start, cfg.train.steps):
        for micro in range(grad_accum):
            batch = data.batch(step * grad_accum + micro)  # pure function of (seed, index)
            loss = recipe.loss(model, batch, cfg)          # the recipe's loss
            (loss / grad_accum).backward()
        clip; optimizer.step()  # lr from the schedule, a pure function of step

Because batches and the lr are functions of the step, and the checkpoint holds the model,
optimizer and RNG states, a run stopped (Ctrl-C, `stop_at`) and resumed with `--resume` ends with
the same weights as an uninterrupted one (exactly, on CPU).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from sutskever.config import to_dict
from sutskever.environment import environment, matmul_peak_flops
from sutskever.errors import UserError
from sutskever.recipes.base import Recipe, RecipeData
from sutskever.train.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    find_checkpoint,
    finite_json,
    load_matching_weights,
    load_state,
    load_weights,
    save_checkpoint,
)
from sutskever.train.distributed import all_sum, broadcast, ranks
from sutskever.train.optim import (
    lr_multiplier,
    make_optimizer,
    plateau_step,
    set_lr,
    total_steps,
)

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PREDICTIONS_FILE = "predictions.jsonl"
CHECKPOINT_DIR = "checkpoint"


class Interrupted(Exception):
    """Training stopped early with a checkpoint saved; `--resume` continues it."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"stopped at step {step}; checkpoint saved in {run_dir}/{CHECKPOINT_DIR}"
                         f"; continue with --resume")
        self.step = step


@dataclass
class RunSpec:
    """What identifies a run: recipe, preset, overrides and seed (+ where it is written)."""

    recipe: str
    preset: str
    overrides: dict[str, Any]
    seed: int


def run_config_record(spec: RunSpec, cfg: Any, device: torch.device) -> dict:
    return {"recipe": spec.recipe, "preset": spec.preset, "overrides": spec.overrides,
            "seed": spec.seed, "config": to_dict(cfg), "environment": environment(device)}


def train(recipe: Recipe, cfg: Any, run_dir: str | Path, spec: RunSpec, *,
          device: torch.device, resume: bool = False, stop_at: int | None = None,
          console: Console | None = None) -> dict:
    """Train `recipe` with `cfg` into `run_dir`; returns the summary (also in summary.json).

    `stop_at` stops after that many steps with a checkpoint, as Ctrl-C would (tests use it).
    Under torchrun (`distributed.init_from_env` called first) every rank calls this; each
    trains on its shard of the global batch and only rank 0 writes files.
    """
    run_dir = Path(run_dir)
    rk = ranks()
    console = console or Console(stderr=True)
    tcfg = cfg.train
    record = run_config_record(spec, cfg, device)
    checkpoint = find_checkpoint(run_dir / CHECKPOINT_DIR)
    if resume:
        if checkpoint is None:
            raise UserError(f"--resume: no checkpoint in {run_dir}; run without --resume")
        _check_same_run(run_dir, record)
    elif checkpoint is not None or (run_dir / SUMMARY_FILE).exists():
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --out "
                        f"to write a new one elsewhere")
    torch.manual_seed(spec.seed)
    model = recipe.build_model(cfg).to(device)  # a bad config fails here, before any file
    if tcfg.init_from and not resume:
        _init_from(model, Path(tcfg.init_from), console if rk.main else None)
    data = recipe.build_data(cfg, spec.seed)
    if rk.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / CONFIG_FILE, record)
    optimizer = make_optimizer(tcfg, model)
    accum = tcfg.grad_accum
    steps_per_epoch = max(1, data.steps_per_epoch // accum)  # optimizer steps
    n_steps = total_steps(tcfg, steps_per_epoch)
    flops = recipe.flops_per_sample(cfg)  # for MFU
    if flops:
        _peak_flops(device)  # measured once per process, before the clock starts
    step, elapsed, samples, carry = 0, 0.0, 0, None
    plateau = {"best": float("inf"), "bad": 0, "scale": 1.0}  # the plateau schedule's state
    if tcfg.schedule == "plateau" and (not tcfg.plateau_metric or tcfg.eval_every < 1):
        raise UserError("train.schedule=plateau needs train.plateau_metric (a metric of the "
                        "periodic evaluation) and train.eval_every > 0")
    if resume:
        assert checkpoint is not None
        load_weights(checkpoint, model)
        state = load_state(checkpoint)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
        samples, carry = int(state.get("samples", 0)), data.to(state.get("carry"), device)
        plateau = state.get("plateau", plateau)
        if rk.main:
            _truncate_metrics(run_dir / METRICS_FILE, step)
    ddp = None
    if rk.world > 1:
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                      else None)  # broadcasts rank 0's weights
        # each rank its own dropout masks (a function of seed, rank and the step resumed from)
        torch.manual_seed(hash((spec.seed, rk.rank, step)) % 2**63)
    step_fn = _compile(ddp or model) if tcfg.compile else (ddp or model)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if tcfg.amp and device.type == "cuda" else contextlib.nullcontext())

    def save() -> None:
        if not rk.main:
            return
        state = {"optimizer": optimizer.state_dict(), "step": step, "rng": torch.get_rng_state(),
                 "elapsed": elapsed, "samples": samples, "carry": carry, "plateau": plateau}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        save_checkpoint(run_dir / CHECKPOINT_DIR, model, state)

    # a fresh run starts a fresh log (a crash before the first checkpoint may have left one)
    metrics_log = (open(run_dir / METRICS_FILE, "a" if resume else "w")  # noqa: SIM115
                   if rk.main else open(os.devnull, "w"))  # noqa: SIM115
    progress = _progress(console, f"{spec.recipe}/{spec.preset}", n_steps, step, rk.main)
    # Training time excludes evaluation and checkpointing: `tick` books the time since `t0`.
    window_loss, window_samples, window_time = 0.0, 0, 0.0
    last_loss, t0 = float("nan"), time.perf_counter()

    def tick() -> None:
        nonlocal elapsed, window_time, t0
        now = time.perf_counter()
        elapsed, window_time, t0 = elapsed + now - t0, window_time + now - t0, now

    try:
        with progress:
            model.train()
            while step < n_steps:
                if stop_at is not None and step >= stop_at:
                    raise KeyboardInterrupt
                set_lr(optimizer, tcfg.lr * lr_multiplier(tcfg, step, steps_per_epoch)
                       * plateau["scale"])
                optimizer.zero_grad(set_to_none=True)
                for micro in range(accum):  # gradient accumulation over micro-batches
                    batch = data.batch(step * accum + micro)
                    if rk.world > 1:
                        batch = data.shard(batch, rk.rank, rk.world)
                    batch = data.to(batch, device)
                    # under DDP, average the gradients across ranks only on the last micro-batch
                    sync = (ddp.no_sync() if ddp is not None and micro < accum - 1
                            else contextlib.nullcontext())
                    with sync:
                        with autocast:
                            loss, n_samples, carry = recipe.step_loss(step_fn, batch, cfg, carry)
                        if not torch.isfinite(loss):
                            raise UserError(f"the loss became {loss.item()} at step {step}; "
                                            f"lower train.lr or set train.clip_norm")
                        (loss / accum).backward()
                    samples += n_samples * rk.world
                    window_loss += loss.item() * n_samples
                    window_samples += n_samples
                if tcfg.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm)
                optimizer.step()
                step += 1
                if step % tcfg.log_every == 0 or step == n_steps:
                    tick()
                    window_loss, window_samples = all_sum([window_loss, window_samples], device)
                    last_loss = window_loss / max(window_samples, 1)
                    rate = window_samples / max(window_time, 1e-9)
                    _log(metrics_log, {"step": step, "epoch": step / steps_per_epoch,
                                       "split": "train", "loss": last_loss,
                                       "lr": optimizer.param_groups[0]["lr"],
                                       "samples_per_s": rate, "elapsed_s": elapsed,
                                       **_utilisation(flops, rate / rk.world, device)})
                    progress.update(0, completed=step, loss=f"{last_loss:.4f}",
                                    rate=f"{rate:,.0f}")
                    window_loss, window_samples, window_time = 0.0, 0, 0.0
                if tcfg.eval_every and step % tcfg.eval_every == 0 and step < n_steps:
                    tick()
                    if rk.main:
                        metrics, _ = recipe.evaluate(model, cfg, data, "valid", full=False)
                        model.train()
                        _log(metrics_log, {"step": step, "epoch": step / steps_per_epoch,
                                           "split": "valid", **metrics})
                        if tcfg.schedule == "plateau":
                            plateau_step(plateau, metrics, tcfg)
                    plateau = broadcast(plateau)  # the decision of rank 0, which evaluates
                    t0 = time.perf_counter()
                if tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0:
                    tick()
                    save()
                    t0 = time.perf_counter()
    except KeyboardInterrupt:
        save()
        raise Interrupted(run_dir, step) from None
    finally:
        metrics_log.close()
    save()
    summary = None
    if rk.main:
        summary = evaluate_run(recipe, model, cfg, data, run_dir, "test")
        rate = samples / max(elapsed, 1e-9)
        summary.update({"steps": step, "train_time_s": elapsed, "samples_per_s": rate,
                        "final_train_loss": last_loss, "processes": rk.world,
                        **_utilisation(flops, rate / rk.world, device)})  # MFU per device
        atomic_write_json(run_dir / SUMMARY_FILE, summary)
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())  # as stored: NaN -> None
    return broadcast(summary)  # type: ignore[return-value]


def evaluate_run(recipe: Recipe, model: torch.nn.Module, cfg: Any, data: RecipeData,
                 run_dir: Path, split: str) -> dict:
    """Full evaluation: metrics, predictions.jsonl and the recipe's plots."""
    metrics, predictions = recipe.evaluate(model, cfg, data, split, full=True)
    if predictions:
        atomic_write_text(run_dir / PREDICTIONS_FILE,
                          "".join(json.dumps(p) + "\n" for p in predictions))
    try:
        from sutskever.report.plots import plot_learning_curves

        plot_learning_curves(run_dir)
        recipe.plot(run_dir, model, cfg, data)
    except Exception as e:  # a figure must never cost a run its results
        print(f"warning: could not draw plots for {run_dir}: {e}")
    return {"split": split, "metrics": metrics}


def _init_from(model: torch.nn.Module, run_dir: Path, console: Console | None) -> None:
    """Start from the weights of the finished run in `run_dir` (train.init_from)."""
    checkpoint = find_checkpoint(run_dir / CHECKPOINT_DIR)
    if checkpoint is None:
        raise UserError(f"train.init_from={run_dir}: no checkpoint there; name the directory of "
                        f"a trained run")
    copied = load_matching_weights(checkpoint, model)
    if console is not None:
        n = len(model.state_dict())
        console.print(f"  initialised {len(copied)} of {n} tensors from {run_dir}")


def _check_same_run(run_dir: Path, record: dict) -> None:
    path = run_dir / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{path} is missing or corrupt; cannot check that --resume continues "
                        f"the same run") from None
    for key in ("recipe", "seed", "config"):
        if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(record[key])):
            raise UserError(f"--resume: {run_dir} was written with a different {key}; resume "
                            f"with the same recipe, preset, --set and --seed, or use --out")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write_text(path, "".join(kept))


def _log(f: Any, obj: dict) -> None:
    f.write(json.dumps(finite_json(obj), allow_nan=False) + "\n")
    f.flush()


@functools.cache
def _peak_flops(device: torch.device) -> float:
    return matmul_peak_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)


def _utilisation(flops_per_sample: float | None, samples_per_s: float,
                 device: torch.device) -> dict[str, float]:
    """Model FLOP/s and MFU: their fraction of the device's measured matmul peak (bf16 on CUDA,
    where training autocasts to it; float32 on CPU)."""
    if not flops_per_sample:
        return {}
    achieved = flops_per_sample * samples_per_s
    return {"model_flops_per_s": achieved, "mfu": achieved / _peak_flops(device)}


def _compile(model: torch.nn.Module) -> Any:
    return torch.compile(model)


def _progress(console: Console, name: str, total: int, completed: int,
              show: bool = True) -> Progress:
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} samples/s"),
        TimeRemainingColumn(), console=console, transient=True,
        disable=not (show and console.is_terminal),
    )
    progress.add_task(name, total=total, completed=completed, loss="-", rate="-")
    return progress
