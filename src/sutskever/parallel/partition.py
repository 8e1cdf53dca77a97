"""Cutting a sequence of layers into K contiguous stages (GPipe, Huang et al. 2019, section 2.2).

A model is given as a sequence of layers (an `nn.Sequential` or a list of modules) whose
composition is the model: `model(x) = layers[-1](...layers[1](layers[0](x)))`. A *balance* is the
number of consecutive layers in each stage, e.g. (3, 3, 4) for ten layers on three stages.

The balance is either given, or chosen to minimise the largest stage cost (the pipeline runs at
the pace of its slowest stage) where a layer's cost is its profiled forward + backward time, or its
parameter count. The exact minimiser over contiguous splits is a small dynamic programme.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from sutskever.errors import UserError

__all__ = ["as_layers", "balance_by_cost", "check_balance", "layer_costs_by_params",
           "layer_times", "shared_parameters", "split"]


def as_layers(model: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    """The layers of an `nn.Sequential` or a list of modules."""
    if isinstance(model, nn.Sequential):
        return list(model.children())
    if isinstance(model, (list, tuple, nn.ModuleList)) and all(
            isinstance(m, nn.Module) for m in model):
        return list(model)
    raise UserError("a pipeline takes its model as an nn.Sequential or a list of modules; "
                    f"got {type(model).__name__}")


def check_balance(balance: Sequence[int], n_layers: int, stages: int) -> tuple[int, ...]:
    """`balance` as a tuple, or a UserError saying what is wrong with it."""
    balance = tuple(int(b) for b in balance)
    if stages < 1:
        raise UserError(f"pipeline.stages must be at least 1, got {stages}")
    if stages > n_layers:
        raise UserError(f"{stages} stages for {n_layers} layers: every stage needs a layer; "
                        f"use at most {n_layers} stages")
    if len(balance) != stages:
        raise UserError(f"the balance {list(balance)} has {len(balance)} entries for {stages} "
                        f"stages; give one layer count per stage")
    if any(b < 1 for b in balance):
        raise UserError(f"the balance {list(balance)} has a stage with no layers; every entry "
                        f"must be at least 1")
    if sum(balance) != n_layers:
        raise UserError(f"the balance {list(balance)} covers {sum(balance)} layers but the model "
                        f"has {n_layers}; make the entries sum to {n_layers}")
    return balance


def split(layers: Sequence[nn.Module], balance: Sequence[int]) -> list[nn.Sequential]:
    """The stages: consecutive runs of `balance[k]` layers."""
    stages, start = [], 0
    for count in balance:
        stages.append(nn.Sequential(*layers[start: start + count]))
        start += count
    return stages


def balance_by_cost(costs: Sequence[float], stages: int) -> tuple[int, ...]:
    """The contiguous split of layers with `costs` into `stages` parts that minimises the largest
    part's cost (ties: the earliest cut points).

        best[k][i] = min_{j < i} max(best[k-1][j], cost(j..i))     (first i layers on k stages)
    """
    n = len(costs)
    if stages < 1:
        raise UserError(f"pipeline.stages must be at least 1, got {stages}")
    if stages > n:
        raise UserError(f"{stages} stages for {n} layers: every stage needs a layer; use at "
                        f"most {n} stages")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + float(c))
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for k in range(1, stages + 1):
        for i in range(k, n - (stages - k) + 1):
            for j in range(k - 1, i):
                worst = max(best[k - 1][j], prefix[i] - prefix[j])
                if worst < best[k][i] - 1e-12 * abs(worst):
                    best[k][i], cut[k][i] = worst, j
    bounds, i = [], n
    for k in range(stages, 0, -1):
        bounds.append(i - cut[k][i])
        i = cut[k][i]
    return tuple(reversed(bounds))


def layer_costs_by_params(layers: Sequence[nn.Module]) -> list[float]:
    """Each layer's parameter count (a parameter shared by layers counts in each)."""
    return [float(sum(p.numel() for p in layer.parameters())) for layer in layers]


def layer_times(layers: Sequence[nn.Module], sample: Tensor, repeats: int = 3,
                clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[float]]:
    """Per-layer forward and backward times (seconds, median of `repeats`) on `sample`, measured
    layer by layer: each layer's input is the previous layer's output, detached."""
    forward: list[list[float]] = [[] for _ in layers]
    backward: list[list[float]] = [[] for _ in layers]
    sync = torch.cuda.synchronize if sample.device.type == "cuda" else (lambda: None)
    for _ in range(repeats + 1):  # the first pass warms up
        x = sample
        for i, layer in enumerate(layers):
            x = x.detach().requires_grad_(x.is_floating_point())
            sync()
            t0 = clock()
            y = layer(x)
            sync()
            t1 = clock()
            if y.requires_grad:
                y.backward(torch.ones_like(y))
            sync()
            t2 = clock()
            forward[i].append(t1 - t0)
            backward[i].append(t2 - t1)
            x = y
        for layer in layers:
            layer.zero_grad(set_to_none=True)
    return ([statistics.median(t[1:]) for t in forward],
            [statistics.median(t[1:]) for t in backward])


def shared_parameters(stages: Sequence[nn.Module]) -> list[tuple[nn.Parameter, tuple[int, ...]]]:
    """For each parameter held by more than one stage (tied weights, e.g. a language model's
    input and output embeddings), the stages that hold it, in the order of the first stage's
    `parameters()`, with the parameter. Their gradients must be summed across those stages
    after backward."""
    holders: dict[int, list[int]] = {}
    params: dict[int, nn.Parameter] = {}
    for k, stage in enumerate(stages):
        for p in stage.parameters():
            params[id(p)] = p
            holders.setdefault(id(p), [])
            if k not in holders[id(p)]:
                holders[id(p)].append(k)
    return [(params[i], tuple(ks)) for i, ks in holders.items() if len(ks) > 1]
