"""The step loop of pipelined training: the one place where training does not go through the
one trainer (`sutskever.train.trainer`), and why.

The trainer's step is `loss = recipe.loss(model, batch); loss.backward(); optimizer.step()` in
every process on a whole model (DDP replicates it). A pipeline stage holds a slice of the model,
has no loss (except the last), and must run its forwards and backwards interleaved with its
neighbours' under the GPipe schedule; its optimizer sees only its own parameters, and gradient
clipping needs a norm summed over all stages. Rather than thread those cases through the trainer,
this loop reuses the trainer's parts (optimizer, lr schedule, batches as pure functions of the
step) and is otherwise as small as a loop can be:

    for step in range(steps):
        set_lr(...); zero_grad()
        loss = pipeline.step(x, y)        # M forwards, M backwards, tied gradients summed
        pipeline.clip_grad_norm_(clip)    # the global norm, across stages
        optimizer.step()                  # each stage updates its own layers

so with the same seed, data and config it follows the trainer's run of the unpartitioned model
(same batches, same lr at every step, same clipping).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sutskever.parallel.pipeline import LossFn, Pipeline, PipelineConfig
from sutskever.train.optim import lr_multiplier, make_optimizer, set_lr, total_steps

__all__ = ["collect_weights", "train_pipeline"]


def train_pipeline(layers: Sequence[nn.Module], loss_fn: LossFn,
                   batch: Callable[[int], tuple[Tensor, Tensor]], tcfg: Any,
                   pcfg: PipelineConfig, *, steps_per_epoch: int,
                   device: torch.device | None = None) -> tuple[Pipeline, list[dict]]:
    """Train the layers (this process's stage of them) for `tcfg`'s steps; returns the pipeline
    and, identical on every stage, the log: one record per `log_every` steps with the mean loss
    of the window, lr, samples/s and the elapsed training time."""
    if tcfg.grad_accum != 1:
        from sutskever.errors import UserError

        raise UserError("a pipelined run accumulates over pipeline.chunks micro-batches; set "
                        "train.grad_accum=1")
    x0, _ = batch(0)
    sample = scatter0(x0, pcfg.chunks)
    pipe = Pipeline(layers, loss_fn, pcfg, device=device, sample=sample)
    optimizer = make_optimizer(tcfg, pipe.module)
    n_steps = total_steps(tcfg, steps_per_epoch)
    log: list[dict] = []
    window_loss, window_samples, elapsed, t0 = 0.0, 0, 0.0, time.perf_counter()
    window_time = 0.0
    for step in range(n_steps):
        set_lr(optimizer, tcfg.lr * lr_multiplier(tcfg, step, steps_per_epoch))
        optimizer.zero_grad(set_to_none=True)
        x, y = batch(step)
        loss = pipe.step(x, y)
        if tcfg.clip_norm is not None:
            pipe.clip_grad_norm_(tcfg.clip_norm)
        optimizer.step()
        window_loss += (loss or 0.0) * y.numel()
        window_samples += y.numel()
        if (step + 1) % tcfg.log_every == 0 or step + 1 == n_steps:
            now = time.perf_counter()
            elapsed, window_time, t0 = elapsed + now - t0, window_time + now - t0, now
            total_loss, = pipe.all_sum([window_loss])  # only the last stage has the loss
            log.append({"step": step + 1, "epoch": (step + 1) / steps_per_epoch,
                        "split": "train", "loss": total_loss / window_samples,
                        "lr": optimizer.param_groups[0]["lr"],
                        "samples_per_s": window_samples / max(window_time, 1e-9),
                        "elapsed_s": elapsed})
            window_loss, window_samples, window_time = 0.0, 0, 0.0
            t0 = time.perf_counter()
    return pipe, log


def scatter0(x: Tensor, chunks: int) -> Tensor:
    """The first micro-batch of `x` (a sample for profiling layer times)."""
    return torch.tensor_split(x, min(chunks, x.shape[0]))[0]


def collect_weights(pipe: Pipeline, model: nn.Module) -> nn.Module | None:
    """On stage 0: `model` (the whole model every process built) with every stage's trained
    weights copied in, for evaluation and checkpoints; None on the other stages."""
    mine = {id(p) for p in pipe.parameters()}
    state = {name: p.detach().cpu() for name, p in model.named_parameters() if id(p) in mine}
    gathered = pipe.gather(state)
    if gathered is None:
        return None
    with torch.no_grad():
        params = dict(model.named_parameters())
        for part in gathered:
            for name, value in part.items():
                params[name].copy_(value)
    return model
