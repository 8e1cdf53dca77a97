"""Speed of test-time compute: sampling solutions from the `inference-compute` recipe's GPTs
(Wang et al. 2022; Snell et al. 2024, arXiv:2408.03314), at the `quick` preset's sizes.

    python benchmarks/sampling_speed.py                 # CPU, and CUDA if present (~1 min)
    python benchmarks/sampling_speed.py --threads 2 --batch 512 --results RESULTS.md

Measured, per model size (small 4 x 64, large 4 x 128; untrained weights, which cost the same
per token as trained ones): generated tokens/s when sampling `--new` tokens for `--batch`
prompts of 3-operation problems, with the key/value cache (`GPT.generate`) and without it
(re-reading the whole sequence for every new token, as a decoder without a cache does), and
MFU = forward FLOPs per token (a third of the trainer's 6N + 6LTd) x tokens/s / the device's
measured dense matmul peak (float32). Without the cache a step costs a forward pass over the
whole sequence, so the FLOPs it does per new token are not counted: its MFU is that of the
useful work. Each timing is the median of `--repeats` after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from sutskever import recipes
from sutskever.data import arithmetic as ar
from sutskever.environment import hardware, matmul_peak_flops, median_seconds
from sutskever.models.gpt import GPT, flops_per_token


@torch.no_grad()
def without_cache(model: GPT, tokens: torch.Tensor, n_new: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Sampling that re-reads the whole sequence for every new token."""
    for _ in range(n_new):
        logits = model(tokens[:, -model.cfg.context:])[:, -1].float() / 0.7
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
        tokens = torch.cat([tokens, nxt], dim=1)
    return tokens


def measure(device: torch.device, peak: float, batch: int, n_new: int,
            repeats: int) -> list[str]:
    recipe = recipes.get("inference-compute")
    problems = ar.make_problems(batch, 3, seed=0, operators="+-")  # all 8 characters long
    prompts = torch.tensor([ar.encode(p.prompt) for p in problems], device=device)
    lines = []
    for arm in ("small", "large"):
        cfg = recipe.arm_config("quick", arm)
        torch.manual_seed(0)
        model = GPT(cfg.model).to(device).eval()
        forward = flops_per_token(cfg.model) / 3
        g = torch.Generator(device=device).manual_seed(0)
        cached = batch * n_new / median_seconds(
            lambda _, m=model, g=g: m.generate(prompts, n_new, 0.7, generator=g), device,
            repeats, warmup=1)
        plain = batch * n_new / median_seconds(
            lambda _, m=model, g=g: without_cache(m, prompts, n_new, g), device, repeats,
            warmup=1)
        lines.append(f"{arm} ({cfg.model.n_layer} x {cfg.model.d_model}): {cached:,.0f} "
                     f"tokens/s with the key/value cache (MFU {100 * cached * forward / peak:.1f}%)"
                     f", {plain:,.0f} without it ({100 * plain * forward / peak:.1f}%): "
                     f"{cached / plain:.1f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CPU, then CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=256, help="prompts sampled at once")
    parser.add_argument("--new", type=int, default=40, help="tokens generated per prompt")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", help="also write the numbers to this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ([torch.device(args.device)] if args.device != "auto" else
               [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                        else []))
    lines = [f"torch {torch.__version__}; batch {args.batch}, {args.new} new tokens a prompt"]
    for device in devices:
        peak = matmul_peak_flops(device, torch.float32)
        head = f"device {device}: {hardware(device)}"
        if device.type == "cpu":
            head += f"; load average {os.getloadavg()[0]:.1f} at start"
        lines += [head + f"; measured fp32 matmul peak {peak / 1e9:,.0f} GFLOP/s",
                  *measure(device, peak, args.batch, args.new, args.repeats)]
    for line in lines:
        print(line, flush=True)
    if args.results:
        from sutskever.report.results import update_benchmark

        update_benchmark(args.results, "sampling-speed", "test-time sampling speed", lines)


if __name__ == "__main__":
    sys.exit(main())
