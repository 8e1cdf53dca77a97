"""Benchmark of the pointer-networks recipe: training throughput (samples/s and MFU) of the
`quick` preset, and the wall time for `reproduce --preset quick` to reach its claims.

    python benchmarks/pointer_networks.py                 # throughput only (~1 min)
    python benchmarks/pointer_networks.py --time-to-claims  # + a full quick reproduction
    ... --results RESULTS.md                              # also write the numbers there

MFU = model FLOPs per second / the device's measured dense matmul peak (float32 on CPU,
bf16 on CUDA), both measured here. Model FLOPs count the matrix multiplies of the embedding, the
LSTMs and the pointer attention over the real (unpadded) target tokens (training = 3x forward),
not the elementwise work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from sutskever import recipes
from sutskever.environment import hardware, matmul_peak_flops, pick_device
from sutskever.report.results import update_benchmark
from sutskever.reproduce import reproduce


def train_flops_per_sample(hidden: int, n: int, out_len: float, slot_dim: int = 3) -> float:
    """Matmul FLOPs of one training example of the Ptr-Net (3x the forward pass)."""
    embed = (n + 1) * 2 * slot_dim * hidden                  # slot vectors -> H
    lstm_step = 2 * 4 * hidden * (hidden + hidden)           # gates: W [x; h], x embedded (H)
    encoder = embed + (n + 1) * lstm_step
    decoder = out_len * lstm_step
    attention = (2 * (n + 1) * hidden * hidden               # W1 e_j, once
                 + out_len * 2 * hidden * hidden             # W2 d_i
                 + out_len * (n + 1) * 2 * hidden)           # v^T tanh(.)
    return 3 * (encoder + decoder + attention)


def throughput(device: torch.device, steps: int = 60, warmup: int = 10) -> dict:
    recipe = recipes.get("pointer-networks")
    cfg = recipe.arm_config("quick", "hull-10")
    torch.manual_seed(0)
    model = recipe.build_model(cfg).to(device)
    data = recipe.build_data(cfg, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    times, flops = [], []
    for step in range(warmup + steps):
        points, targets = data.to(data.batch(step), device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss, _ = recipe.loss(model, (points, targets), cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t)
            # useful work only: decoder steps of real target tokens, not the batch's padding
            real_len = (targets != -100).sum(1).float().mean().item()
            flops.append(len(points) * train_flops_per_sample(cfg.model.hidden, points.shape[1],
                                                              real_len))
    step_s = statistics.median(times)
    batch = cfg.train.batch_size
    return {"step_ms": 1e3 * step_s, "samples_per_s": batch / step_s,
            "model_flops_per_s": statistics.fmean(flops) / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--time-to-claims", action="store_true")
    parser.add_argument("--results", help="also write the numbers to this RESULTS.md")
    args = parser.parse_args()
    device = pick_device(args.device)
    peak = matmul_peak_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    result = throughput(device)
    lines = [
        f"hardware: {hardware(device)}; torch {torch.__version__}",
        f"measured matmul peak: {peak / 1e9:.1f} GFLOP/s",
        f"pointer-networks quick (hull n=10, H=128, batch 128): {result['step_ms']:.1f} ms/step, "
        f"{result['samples_per_s']:,.0f} samples/s, {result['model_flops_per_s'] / 1e9:.2f} "
        f"GFLOP/s = MFU {100 * result['model_flops_per_s'] / peak:.1f}%",
    ]
    print("\n".join(lines))
    if args.time_to_claims:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            results = reproduce(recipes.get("pointer-networks"), "quick", 1, Path(out), device,
                                Console(stderr=True))
            minutes = (time.perf_counter() - start) / 60
        held = sum(r.holds for r in results)
        lines.append(f"reproduce --preset quick --seeds 1: {held}/{len(results)} claims hold "
                     f"after {minutes:.1f} min (data generation included when not cached)")
        print(lines[-1])
    if args.results:
        update_benchmark(args.results, "pointer-networks", "pointer-networks", lines)


if __name__ == "__main__":
    sys.exit(main())
