"""Training speed of the gpt recipe: tokens/s and MFU, beside nanoGPT on the same shapes.

    python benchmarks/gpt_speed.py                              # nanogpt-cpu preset, 300 steps
    python benchmarks/gpt_speed.py --nanogpt ~/src/nanoGPT      # also time nanoGPT's train.py
    python benchmarks/gpt_speed.py --preset gpt2-124m --device cuda --set data.corpus=web
    ... --results RESULTS.md                                    # also write the numbers there

Ours: the real trainer (`sutskever run`) on the preset for `--steps` steps, logging every 10
steps; tokens/s is the median over those 10-step windows after the first (the first pays for
start-up), MFU = model FLOP/s / the device's measured dense matmul peak (float32 on CPU, bf16 on
CUDA), model FLOPs = `flops_per_token` (6 N + 6 L T d + the output layer).

nanoGPT (`--nanogpt DIR`, a checkout of karpathy/nanoGPT): its `train.py` with its README's CPU
recipe (4 layers, 4 heads, width 128, context 64, batch 12, no dropout, no compile), on the same
Shakespeare text (written to its data/shakespeare_char/input.txt and encoded by its own
prepare.py), for the same number of steps; tokens/s = 12 x 64 / the median of its printed
per-iteration times after the first 10. Run it with the same Python (torch) as ours.

Run alone: on 2 shared cores a second busy process slows both by far more than 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from sutskever import recipes
from sutskever.environment import hardware, matmul_peak_flops, pick_device
from sutskever.train import RunSpec, train

NANOGPT_CPU_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
                    "--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12",
                    "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0"]


def ours(preset: str, overrides: list[str], steps: int, device: torch.device) -> dict:
    recipe = recipes.get("gpt")
    cfg = recipe.configure(preset, [*overrides, f"train.steps={steps}", "train.log_every=10",
                                    "train.checkpoint_every=0", "data.eval_tokens=20000",
                                    "data.train_eval_tokens=20000"])
    with tempfile.TemporaryDirectory() as tmp:
        train(recipe, cfg, tmp, RunSpec("gpt", preset, {}, 0), device=device)
        logs = [json.loads(line) for line in Path(tmp, "metrics.jsonl").read_text().splitlines()]
    rates = [e["samples_per_s"] for e in logs if e.get("split") == "train"][1:]
    rate = statistics.median(rates)
    return {"tokens_per_s": rate, "flops_per_token": recipe.flops_per_sample(cfg), "cfg": cfg}


def nanogpt(directory: Path, steps: int) -> float:
    """nanoGPT's CPU recipe on our Shakespeare: median tokens/s over its iterations 10..steps."""
    from sutskever.data.tokens import corpus_text

    data = directory / "data" / "shakespeare_char"
    text = corpus_text("shakespeare")
    (data / "input.txt").write_text(text["train"] + text["val"])
    subprocess.run([sys.executable, "prepare.py"], cwd=data, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([sys.executable, "train.py", *NANOGPT_CPU_ARGS,
                              f"--max_iters={steps}", f"--lr_decay_iters={steps}",
                              f"--eval_interval={steps}", f"--out_dir={out}"],
                             cwd=directory, check=True, capture_output=True, text=True)
    times = [float(t) for i, t in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms",
                                             run.stdout) if int(i) >= 10]
    return 12 * 64 / (statistics.median(times) / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nanogpt-cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, in turn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout to time beside ours")
    parser.add_argument("--results", help="also write the numbers to this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    peak = matmul_peak_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    load = os.getloadavg()[0]
    lines = [f"device {device}: {hardware(device)}; torch "
             f"{torch.__version__}; measured matmul peak {peak / 1e9:,.0f} GFLOP/s "
             f"({'bf16' if device.type == 'cuda' else 'fp32'}); load average {load:.1f} at "
             f"start"]
    print(lines[-1], flush=True)
    # ours and nanoGPT in turn, `--repeat` times: the machine's speed drifts, pairs cancel it
    mine, theirs = [], []
    for _ in range(args.repeat):
        result = ours(args.preset, args.set, args.steps, device)
        mine.append(result["tokens_per_s"])
        if args.nanogpt:
            theirs.append(nanogpt(args.nanogpt.expanduser(), args.steps))
    m = result["cfg"].model
    rate = statistics.median(mine)
    shape = (f"{m.n_layer} layers x {m.d_model}, {m.n_head} heads, context {m.context}, "
             f"batch {result['cfg'].train.batch_size}, vocab {m.vocab_size}")
    flops = rate * result["flops_per_token"]
    lines.append(f"ours, preset {args.preset} ({shape}): {rate:,.0f} tokens/s = "
                 f"{flops / 1e9:.1f} GFLOP/s = MFU {100 * flops / peak:.1f}% (median of "
                 f"10-step windows over {args.steps} steps; median of {args.repeat} runs: "
                 f"{', '.join(f'{r:,.0f}' for r in mine)})")
    print(lines[-1], flush=True)
    if args.nanogpt:
        from sutskever.data.tokens import load_tokens

        vocab = load_tokens("shakespeare", "char").n_vocab
        ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
        lines.append(f"nanoGPT train.py, its CPU recipe (same shapes; vocab {vocab}, the "
                     f"corpus's characters): {statistics.median(theirs):,.0f} tokens/s (median "
                     f"iteration time; runs: {', '.join(f'{r:,.0f}' for r in theirs)}); "
                     f"ours / nanoGPT per pair: {', '.join(f'{r:.2f}' for r in ratios)}, "
                     f"median {statistics.median(ratios):.2f}x")
        print(lines[-1], flush=True)
    if args.results:
        from sutskever.report.results import update_benchmark

        update_benchmark(args.results, "gpt", "gpt training speed", lines)


if __name__ == "__main__":
    sys.exit(main())
