"""The GPipe schedule on one stage (Huang et al. 2019, "GPipe: Efficient Training of Giant Neural
Networks using Pipeline Parallelism", arXiv:1811.06965, sections 2.2-2.3).

A model given as a sequence of layers is cut into K stages, one process each; a mini-batch of N
samples is split into M micro-batches. Each stage runs

    F_0, F_1, ..., F_{M-1}          forward of every micro-batch, sending each output on at once
    B_{M-1}, ..., B_1, B_0          backward in reverse order, sending each input gradient back
    (tied weights: sum their gradients across the stages that hold them)

and the caller then takes one optimizer step. The loss of micro-batch m is weighted by its share
of the mini-batch's loss elements, n_m / N, so the accumulated gradient is the gradient of the
mini-batch's mean loss: training is the same as without the pipeline (up to float summation
order). With K stages of equal cost, each stage idles during (K-1) of the M+K-1 slots of each
phase: the bubble fraction (K-1)/(M+K-1).

Re-materialisation (`checkpoint`): the forward pass runs without autograd and keeps only the
micro-batch's input (and the RNG state, so dropout draws the same mask twice); the backward pass
recomputes the activations from it, one micro-batch at a time. `except_last` keeps the last
micro-batch's activations, whose backward comes right after its forward (as torchgpipe does).

Micro-batches: `torch.tensor_split` into exactly M parts whose sizes differ by at most one (so N
need not be a multiple of M); M < K is allowed (the bubble is then most of the step).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sutskever.errors import UserError
from sutskever.parallel.comm import Link, Pending, Spec
from sutskever.parallel.memory import ActivationMeter
from sutskever.parallel.partition import (
    as_layers,
    balance_by_cost,
    check_balance,
    layer_costs_by_params,
    layer_times,
    shared_parameters,
    split,
)

__all__ = ["Event", "Pipeline", "PipelineConfig", "scatter"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class PipelineConfig:
    """How a model is pipelined."""

    stages: int = 1                      # K: processes, each holding consecutive layers
    chunks: int = 1                      # M: micro-batches per mini-batch
    balance: tuple[int, ...] = ()        # layers per stage; () = chosen by `balance_by`
    balance_by: Literal["time", "params"] = "time"  # profiled forward+backward time, or size
    checkpoint: Literal["never", "always", "except_last"] = "never"  # re-materialisation
    timeout_s: float = 300.0             # the longest wait for a neighbouring stage

    def check(self, n_layers: int | None = None) -> None:
        """A UserError for a configuration no pipeline can run."""
        if self.stages < 1:
            raise UserError(f"pipeline.stages must be at least 1, got {self.stages}")
        if self.chunks < 1:
            raise UserError(f"pipeline.chunks (micro-batches) must be at least 1, got "
                            f"{self.chunks}")
        if self.timeout_s <= 0:
            raise UserError(f"pipeline.timeout_s must be positive, got {self.timeout_s}")
        if n_layers is not None:
            if self.stages > n_layers:
                raise UserError(f"{self.stages} stages for a model of {n_layers} layers: every "
                                f"stage needs a layer; use at most {n_layers} stages")
            if self.balance:
                check_balance(self.balance, n_layers, self.stages)


@dataclass(frozen=True)
class Event:
    """One interval of a stage's timeline, in seconds from the start of its step."""

    stage: int
    step: int
    kind: Literal["forward", "recompute", "backward"]
    micro: int
    start: float
    end: float


def scatter(t: Tensor, chunks: int) -> list[Tensor]:
    """`chunks` micro-batches along dim 0, sizes differing by at most one."""
    if t.shape[0] < chunks:
        raise UserError(f"a mini-batch of {t.shape[0]} samples cannot make {chunks} "
                        f"micro-batches; lower pipeline.chunks to at most {t.shape[0]}")
    return list(torch.tensor_split(t, chunks))


class Pipeline:
    """This process's stage of a GPipe pipeline.

    Every process builds the whole model (same seed, same weights) and passes its layers here;
    the pipeline keeps this rank's stage and drops the rest. With K = 1 no process group is
    needed and `step` is plain gradient accumulation over micro-batches. With K > 1 the default
    process group must hold exactly K ranks (`sutskever.parallel.launch` sets it up), rank k
    being stage k. Without an explicit balance, `balance_by="time"` profiles the layers on
    `sample` (a micro-batch of inputs) on rank 0 and broadcasts the result; without a sample the
    balance is by parameter count. Stages pass one tensor to each other; the first stage's
    input may be any tensor (e.g. token ids).
    """

    def __init__(self, layers: nn.Module | Sequence[nn.Module], loss_fn: LossFn,
                 cfg: PipelineConfig, *, device: torch.device | None = None,
                 sample: Tensor | None = None, measure_memory: bool = False):
        layers = as_layers(layers)
        cfg.check(len(layers))
        self.cfg, self.loss_fn = cfg, loss_fn
        self.device = device or torch.device("cpu")
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if cfg.stages > 1 and world != cfg.stages:
            raise UserError(f"a pipeline of {cfg.stages} stages needs {cfg.stages} processes, "
                            f"this process group has {world}; launch one process per stage")
        self.stage = dist.get_rank() if cfg.stages > 1 else 0
        self.first, self.last = self.stage == 0, self.stage == cfg.stages - 1
        self.balance = self._choose_balance(layers, sample)
        stages = split(layers, self.balance)
        self.module = stages[self.stage].to(self.device)
        # tied weights: every rank creates every group, in the same order (a collective call)
        self._tied: list[tuple[nn.Parameter, Any]] = []
        for param, holders in shared_parameters(stages):
            group = (dist.new_group(list(holders), timeout=timedelta(seconds=cfg.timeout_s))
                     if cfg.stages > 1 else None)
            if self.stage in holders and len(holders) > 1 and cfg.stages > 1:
                self._tied.append((param, group))
        self.link = Link(self.stage, self.device, cfg.timeout_s)
        self.meter = ActivationMeter(self.module.parameters()) if measure_memory else None
        self.events: list[Event] = []
        self.trace = False           # record `events` (a barrier starts each step's clock)
        self.input_bytes = 0         # bytes of the last step's micro-batch inputs
        self._steps = 0

    def _choose_balance(self, layers: list[nn.Module], sample: Tensor | None) -> tuple[int, ...]:
        cfg = self.cfg
        if cfg.balance:
            return check_balance(cfg.balance, len(layers), cfg.stages)
        if cfg.stages == 1:
            return (len(layers),)
        if cfg.balance_by == "params" or sample is None:
            return balance_by_cost(layer_costs_by_params(layers), cfg.stages)
        # profiled on rank 0 and broadcast, so that every stage cuts the model the same way
        box: list[Any] = [None]
        if self.stage == 0:
            forward, backward = layer_times(layers, sample.to(self.device))
            box[0] = balance_by_cost([f + b for f, b in zip(forward, backward, strict=True)],
                                     cfg.stages)
        dist.broadcast_object_list(box, src=0)
        return tuple(box[0])

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.module.parameters()

    # ---- one mini-batch --------------------------------------------------------------------------
    def step(self, inputs: Tensor, targets: Tensor | None = None) -> float | None:
        """Forward and backward of one mini-batch under the GPipe schedule; gradients accumulate
        into the stage's `.grad`s (zero them before, step the optimizer after).

        Every stage is given the mini-batch: the first reads `inputs`, the last `targets`, and
        the others only the micro-batch shapes. Returns the mini-batch's mean loss on the last
        stage, None on the others.
        """
        cfg, M = self.cfg, self.cfg.chunks
        xs = scatter(inputs, M)
        keys = [(tuple(x.shape), x.dtype) for x in xs]  # what each micro-batch's header is under
        weights: list[float] = []
        ts: list[Tensor] = []
        if self.last:
            if targets is None:
                raise ValueError("the last stage needs the targets")
            ts = [t.to(self.device) for t in scatter(targets, M)]
            total = sum(t.numel() for t in ts)
            weights = [t.numel() / total for t in ts]
        if self.trace and cfg.stages > 1:
            dist.barrier()
        origin = time.perf_counter()

        def span(kind: Any, m: int) -> Any:
            return _Span(self, kind, m, origin) if self.trace else contextlib.nullcontext()

        if self.meter is not None:
            self.meter.reset_peak()
        meter = self.meter or _NO_METER
        prev, nxt = self.stage - 1, self.stage + 1
        inbox: dict[int, Pending] = {}
        if not self.first:  # post the receives whose shape is known now
            for m in range(M):
                if self.link.knows(prev, keys[m]):
                    inbox[m] = self.link.post(prev, 2 * m, f"activation {m}", announced=keys[m])
        saved: list[tuple[Tensor, Any, Tensor | None, Spec]] = []
        loss = 0.0
        self.input_bytes = inputs.nbytes if self.first else 0
        for m in range(M):
            if self.first:
                x = xs[m].to(self.device)
            else:
                pending = inbox.pop(m, None) or self.link.post(prev, 2 * m, f"activation {m}",
                                                               announced=keys[m])
                x = self.link.take(pending)
                x.requires_grad_(x.is_floating_point())
                self.input_bytes += x.nbytes
            recompute = cfg.checkpoint == "always" or (cfg.checkpoint == "except_last"
                                                       and m < M - 1)
            with span("forward", m):
                meter.hold(x)
                if recompute:
                    rng = _rng_state(self.device)
                    with torch.no_grad():
                        y = self.module(x)
                        out = self.loss_fn(y, ts[m]) * weights[m] if self.last else y
                    kept = None
                else:
                    rng = None
                    with meter.saving():
                        y = self.module(x)
                        out = self.loss_fn(y, ts[m]) * weights[m] if self.last else y
                    kept = out
                    meter.hold(out)
                if self.last:
                    loss += float(out.detach())
                else:
                    self.link.send(y, nxt, 2 * m, f"activation {m}", announce=keys[m])
            saved.append((x, rng, kept, Spec(tuple(y.shape), y.dtype)))
            del y, out
        grads: dict[int, Pending] = {}
        if not self.last:  # the next stage sends gradients back in the order M-1, ..., 0
            for m in reversed(range(M)):
                if saved[m][3].dtype.is_floating_point:
                    grads[m] = self.link.post(nxt, 2 * m + 1, f"gradient {m}", spec=saved[m][3])
        for m in reversed(range(M)):
            x, rng, out, spec = saved.pop()
            if out is None:  # re-materialise this micro-batch's activations
                with span("recompute", m), _replay_rng(rng, self.device), meter.saving():
                    y = self.module(x)
                    out = self.loss_fn(y, ts[m]) * weights[m] if self.last else y
                    meter.hold(out)
                    del y
            grad = self.link.take(grads.pop(m)) if m in grads else None
            with span("backward", m):
                if self.last:
                    out.backward()
                elif grad is not None and out.requires_grad:
                    torch.autograd.backward(out, grad)
                if not self.first and x.is_floating_point():  # the previous stage waits for it
                    dx = x.grad if x.grad is not None else torch.zeros_like(x)
                    self.link.send(dx, prev, 2 * m + 1, f"gradient {m}")
            meter.release(out)
            meter.release(x)
            del out, x, grad
        self.link.flush()
        self._sum_tied_gradients()
        self._steps += 1
        return loss if self.last else None

    def _sum_tied_gradients(self) -> None:
        for param, group in self._tied:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            work = dist.all_reduce(param.grad, group=group, async_op=True)
            self.link.wait(work, "summing a tied weight's gradient")

    # ---- across stages ---------------------------------------------------------------------------
    def grad_norm_squared(self) -> float:
        """Sum of squared gradients over all stages, each tied weight once."""
        tied = {id(p) for p, group in self._tied if dist.get_rank(group) > 0}
        local = sum(float(p.grad.detach().float().pow(2).sum()) for p in self.parameters()
                    if p.grad is not None and id(p) not in tied)
        return self.all_sum([local])[0]

    def clip_grad_norm_(self, max_norm: float) -> float:
        """`torch.nn.utils.clip_grad_norm_` over the whole pipelined model; returns the norm."""
        norm = self.grad_norm_squared() ** 0.5
        scale = min(max_norm / (norm + 1e-6), 1.0)
        if scale < 1.0:
            for p in self.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
        return norm

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the stages (identity with one stage)."""
        if self.cfg.stages == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.link.wait(dist.all_reduce(t, async_op=True), "summing across stages")
        return t.tolist()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every stage's `obj` on stage 0 (None elsewhere)."""
        if self.cfg.stages == 1:
            return [obj]
        box: list[Any] = [None] * self.cfg.stages if self.first else []
        dist.gather_object(obj, box if self.first else None, dst=0)
        return box if self.first else None


class _Span:
    def __init__(self, pipe: Pipeline, kind: Any, micro: int, origin: float):
        self.pipe, self.kind, self.micro, self.origin = pipe, kind, micro, origin

    def __enter__(self) -> None:
        if self.pipe.device.type == "cuda":
            torch.cuda.synchronize(self.pipe.device)
        self.start = time.perf_counter() - self.origin

    def __exit__(self, *exc: Any) -> None:
        if self.pipe.device.type == "cuda":
            torch.cuda.synchronize(self.pipe.device)
        self.pipe.events.append(Event(self.pipe.stage, self.pipe._steps, self.kind, self.micro,
                                      self.start, time.perf_counter() - self.origin))


class _NoMeter:
    def hold(self, t: Tensor) -> None:
        pass

    def release(self, t: Tensor) -> None:
        pass

    def saving(self) -> Any:
        return contextlib.nullcontext()


_NO_METER: Any = _NoMeter()


def _rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _replay_rng(state: Any, device: torch.device) -> Iterator[None]:
    """Run the block with the RNG as it was at the micro-batch's first forward (so a recomputed
    dropout mask equals the original), leaving the RNG as it was before the block."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield

