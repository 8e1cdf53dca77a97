"""Our GPipe engine against PyTorch's own (`torch.distributed.pipelining.ScheduleGPipe`).

    python benchmarks/gpipe_vs_torch.py                          # the gpipe recipe's quick GPT
    python benchmarks/gpipe_vs_torch.py --stages 4 --chunks 8    # 4 processes
    OMP_NUM_THREADS=1 python benchmarks/gpipe_vs_torch.py --rounds 5 --steps 10

Both engines train the same GPT (the gpipe recipe's `quick` shape unless told otherwise) cut
into the same stages (one balance, profiled once), on the same Shakespeare mini-batches split
into the same M micro-batches, with AdamW, in the same K processes (gloo on CPU, NCCL on CUDA).
The two alternate, `--steps` training steps each per round, so that a change in the machine's
load hits both; throughput is tokens per second of the median round, and the ratio is ours /
theirs. The output embedding is untied from the input embedding for both, because
torch.distributed.pipelining does not sum a tied weight's gradients across stages.

Run alone: on few shared cores any other busy process distorts both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sutskever import recipes
from sutskever.environment import hardware
from sutskever.parallel import Pipeline, PipelineConfig, spawn
from sutskever.parallel.partition import split
from sutskever.recipes.gpipe import gpt_layers, lm_loss
from sutskever.train.optim import make_optimizer


def _worker(stage: int, device: torch.device, args: argparse.Namespace) -> dict | None:
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    recipe = recipes.get("gpipe")
    cfg = recipe.configure(args.preset, args.set)
    torch.manual_seed(0)
    model = recipe.build_model(cfg).to(device)
    model.head.weight = nn.Parameter(model.wte.weight.detach().clone())  # untied, see above
    data = recipe.build_data(cfg, 0)
    K, M = args.stages, args.chunks
    layers = gpt_layers(model)
    x0, _ = data.batch(0)
    ours = Pipeline(layers, lm_loss, PipelineConfig(stages=K, chunks=M), device=device,
                    sample=torch.tensor_split(x0, M)[0])
    ours_opt = make_optimizer(cfg.train, ours.module)
    # theirs: a separate copy of the same stage (same initial weights)
    torch.manual_seed(0)
    twin = recipe.build_model(cfg).to(device)
    twin.head.weight = nn.Parameter(twin.wte.weight.detach().clone())
    their_module = split(gpt_layers(twin), ours.balance)[stage]
    their_stage = PipelineStage(their_module, stage, K, device)
    # every stage is given the loss: a stage without one skips its backward pass (and the
    # others then wait for it)
    schedule = ScheduleGPipe(their_stage, M, loss_fn=lm_loss)
    their_opt = make_optimizer(cfg.train, their_module)

    def ours_step(step: int) -> float | None:
        x, y = (t.to(device) for t in data.batch(step))
        ours_opt.zero_grad(set_to_none=True)
        loss = ours.step(x, y)
        ours_opt.step()
        return loss

    def their_step(step: int) -> float | None:
        x, y = (t.to(device) for t in data.batch(step))
        their_opt.zero_grad(set_to_none=True)
        losses: list[torch.Tensor] = []
        if stage == 0:
            schedule.step(x)
        elif stage == K - 1:
            schedule.step(target=y, losses=losses)
        else:
            schedule.step()
        their_opt.step()
        return float(torch.stack(losses).detach().mean()) if losses else None

    def timed(fn: Any, first: int) -> float:
        _sync(device)
        dist.barrier()
        start = time.perf_counter()
        for i in range(args.steps):
            fn(first + i)
        _sync(device)
        dist.barrier()
        return time.perf_counter() - start

    for i in range(args.warmup):  # shape inference, allocator and thread pools warm
        ours_step(i)
        their_step(i)
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    for r in range(args.rounds):
        first = args.warmup + r * args.steps
        order = (("ours", ours_step), ("torch", their_step))
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            times[name].append(timed(fn, first))
    # the same weights and batches in both: the same loss (a check that both do the same work)
    step = args.warmup + args.rounds * args.steps
    losses = ours.gather((ours_step(step), their_step(step)))
    if stage != 0:
        return None
    tokens = args.steps * cfg.train.batch_size * cfg.model.context
    return {"balance": list(ours.balance), "tokens": tokens, "times": times,
            "hardware": hardware(device), "losses": losses[-1] if losses else None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick", help="a gpipe recipe preset (the model)")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument("--stages", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stage")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds a stage may wait")
    args = parser.parse_args()
    result = spawn(_worker, args.stages, args, backend="gloo" if args.device == "cpu" else "nccl",
                   threads=args.threads, timeout_s=args.timeout)[0]
    rates = {name: result["tokens"] / statistics.median(t) for name, t in result["times"].items()}
    print(f"hardware: {result['hardware']} ({args.stages} processes x {args.threads} thread(s))")
    print(f"torch {torch.__version__}; model: gpipe preset {args.preset} {' '.join(args.set)}; "
          f"K={args.stages}, M={args.chunks}, balance {result['balance']}; {args.rounds} "
          f"alternating rounds of {args.steps} steps")
    for name, rate in rates.items():
        rounds = ", ".join(f"{result['tokens'] / t:,.0f}" for t in result["times"][name])
        print(f"{name:>6}: {rate:,.0f} tokens/s (median round; rounds: {rounds})")
    print(f"loss after the same steps: ours {result['losses'][0]:.5f}, torch "
          f"{result['losses'][1]:.5f}")
    print(f"ratio ours/theirs: {rates['ours'] / rates['torch']:.3f}")


if __name__ == "__main__":
    main()
