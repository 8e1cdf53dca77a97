"""Speed of the sequence models: "Sequence to Sequence Learning with Neural Networks" (Sutskever,
Vinyals, Le 2014, arXiv:1409.3215) and "Order Matters" (Vinyals, Bengio, Kudlur 2016,
arXiv:1511.06391), at their recipes' `quick` presets.

    python benchmarks/seq2seq_speed.py                  # CPU, and CUDA if present (~2-3 min)
    python benchmarks/seq2seq_speed.py --device cpu --threads 2
    ... --runs runs /tmp/om-runs   # where to look for finished quick runs (time to claims)
    ... --results RESULTS.md       # also write the numbers there

Measured:
- seq2seq training: target tokens/s of the `quick` config (2 x 128 LSTMs, 5k/4k vocabularies,
  batch 64, Adam, clip 5) on real batches of its data (the Bible Es->En, reversed source), and
  MFU = the recipe's model FLOPs (`flops_per_sample`, per target token) x tokens/s / the
  device's measured dense matmul peak (float32 on CPU; bf16 on CUDA, where the trainer
  autocasts to bf16);
- seq2seq decoding: sentences/s of greedy decoding and beam search (beam 2 and 12, the paper's
  table) on test sentences, with the trained `quick` checkpoint when one is found under --runs
  (an untrained model decodes to the length limit, which is slower);
- order-matters training samples/s: sorting (RPW, P=5, glimpse, N=10, batch 128) and the 5-gram
  language model (batch 128) in a fixed order and while learning the order (which also scores
  each 5-gram under its candidate orders);
- time to claims: the training time (`train_time_s`, evaluation excluded) of the finished quick
  runs found under --runs, per recipe.

Each timing is the median of timed steps after warm-up. On a machine shared with other busy
processes the numbers are lower and noisier than on an idle one: the load average at the start
is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from sutskever import recipes
from sutskever.environment import hardware, matmul_peak_flops, median_seconds
from sutskever.recipes.seq2seq import translate_ids
from sutskever.train.checkpoint import find_checkpoint, load_weights


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_fn(recipe, cfg, model, data, device: torch.device) -> Callable[[int], int]:
    """One training step of the recipe's loss (the trainer's inner loop); returns samples."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    carry = None

    def step(i: int) -> int:
        nonlocal carry
        batch = data.to(data.batch(i), device)
        with autocast:
            loss, n, carry = recipe.step_loss(model, batch, cfg, carry)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_norm)
        opt.step()
        return n

    return step


def seq2seq_training(device: torch.device, peak: float, steps: int) -> list[str]:
    recipe = recipes.get("seq2seq")
    cfg = recipe.arm_config("quick", "reversed")
    torch.manual_seed(0)
    model = recipe.build_model(cfg).to(device).train()
    data = recipe.build_data(cfg, seed=0)
    step = train_step_fn(recipe, cfg, model, data, device)
    tokens = []

    def timed(i: int) -> None:
        tokens.append(step(i))

    seconds = median_seconds(timed, device, steps, warmup=3)
    per_step = statistics.fmean(tokens)  # target tokens per batch (padding excluded)
    rate = per_step / seconds
    flops = recipe.flops_per_sample(cfg)
    mfu = flops * rate / peak if flops else float("nan")
    return [f"seq2seq quick training (2x{cfg.model.hidden}, batch {cfg.train.batch_size}): "
            f"{rate:,.0f} target tokens/s ({1e3 * seconds:.0f} ms/step, {per_step:.0f} tokens "
            f"a step), {flops * rate / 1e9:.2f} model GFLOP/s = MFU {100 * mfu:.1f}%"]


def seq2seq_decoding(device: torch.device, runs: list[Path], sentences: int) -> list[str]:
    recipe = recipes.get("seq2seq")
    cfg = recipe.arm_config("quick", "reversed")
    torch.manual_seed(0)
    model = recipe.build_model(cfg).to(device).eval()
    data = recipe.build_data(cfg, seed=0)
    trained = "untrained model"
    for root in runs:
        checkpoint = find_checkpoint(root / "seq2seq" / "quick-reversed-s0" / "checkpoint")
        if checkpoint is not None:
            load_weights(checkpoint, model)
            trained = f"trained checkpoint {root / 'seq2seq' / 'quick-reversed-s0'}"
            break
    sources = data.splits["test"].src[:sentences]
    lines = []
    for beam in (1, 2, 12):
        with torch.no_grad():
            translate_ids(model, sources[:8], beam, cfg, data.tgt_vocab)  # warm-up
            sync(device)
            t = time.perf_counter()
            hyps = translate_ids(model, sources, beam, cfg, data.tgt_vocab)
            sync(device)
            seconds = time.perf_counter() - t
        words = statistics.fmean(len(h.split()) for h in hyps)
        name = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(f"seq2seq quick decoding, {name}: {len(sources) / seconds:,.1f} sentences/s "
                     f"({len(sources)} test sentences, eval batch {cfg.eval.batch_size}, "
                     f"mean output {words:.1f} words; {trained})")
    return lines


def order_matters_training(device: torch.device, steps: int) -> list[str]:
    recipe = recipes.get("order-matters")
    lines = []
    for arm, label in (("p5", "sorting N=10, RPW P=5 + glimpse"),
                       ("lm-natural", "5-gram LM, fixed order"),
                       ("lm-learned", "5-gram LM, learning the order")):
        cfg = recipe.arm_config("quick", arm)
        if cfg.order.mode == "learned":
            label += f" ({cfg.order.candidates} candidate orders scored a 5-gram)"
        if cfg.train.init_from:
            from sutskever.config import apply_overrides

            cfg = apply_overrides(cfg, {"train.init_from": ""})  # speed only: fresh weights
        torch.manual_seed(0)
        model = recipe.build_model(cfg).to(device).train()
        data = recipe.build_data(cfg, seed=0)
        step = train_step_fn(recipe, cfg, model, data, device)
        seconds = median_seconds(step, device, steps, warmup=3)
        rate = cfg.train.batch_size / seconds
        lines.append(f"order-matters quick training, {label} (batch {cfg.train.batch_size}): "
                     f"{rate:,.0f} samples/s ({1e3 * seconds:.0f} ms/step)")
    return lines


def time_to_claims(runs: list[Path]) -> list[str]:
    """The training time of the finished quick runs found under `runs`, per recipe."""
    lines = []
    for name in ("seq2seq", "order-matters"):
        found: dict[Path, dict] = {}
        for root in runs:
            for summary in sorted((root / name).glob("quick-*-s*/summary.json")):
                found.setdefault(summary.parent.resolve(), json.loads(summary.read_text()))
        if not found:
            lines.append(f"time to claims, {name}: no finished quick runs under "
                         f"{', '.join(map(str, runs))}")
            continue
        total = sum(s.get("train_time_s", 0.0) for s in found.values())
        arms: dict[str, int] = {}
        for d in found:
            arm = d.name[len("quick-"):d.name.rindex("-s")]
            arms[arm] = arms.get(arm, 0) + 1
        detail = ", ".join(f"{arm} x{k}" for arm, k in arms.items())
        lines.append(f"time to claims, {name}: {len(found)} quick runs, {total / 60:.1f} min of "
                     f"training in all (evaluation excluded; {detail})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CPU, then CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--sentences", type=int, default=48, help="decoded test sentences")
    parser.add_argument("--runs", nargs="*", default=["runs"],
                        help="run directories (`--out` of reproduce) to read quick runs from")
    parser.add_argument("--results", help="also write the numbers to this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [Path(r) for r in args.runs]
    if args.device == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                           else [])
    else:
        devices = [torch.device(args.device)]
    lines = [f"torch {torch.__version__}"]
    print(lines[0], flush=True)
    for device in devices:
        peak = matmul_peak_flops(device, torch.bfloat16 if device.type == "cuda"
                                 else torch.float32)
        head = f"device {device}: {hardware(device)}"
        if device.type == "cpu":
            load = os.getloadavg()[0]
            head += (f"; load average {load:.1f} at start"
                     + (" (other processes share the cores)" if load > 1 else ""))
        head += (f"; measured {'bf16' if device.type == 'cuda' else 'fp32'} matmul peak "
                 f"{peak / 1e9:,.0f} GFLOP/s")
        print(head, flush=True)
        lines.append(head)
        for part in (seq2seq_training(device, peak, args.steps),
                     seq2seq_decoding(device, runs, args.sentences),
                     order_matters_training(device, args.steps)):
            for line in part:
                print(line, flush=True)
            lines += part
    for line in time_to_claims(runs):
        print(line, flush=True)
        lines.append(line)
    if args.results:
        from sutskever.report.results import update_benchmark

        update_benchmark(args.results, "seq2seq-speed", "seq2seq and order-matters speed", lines)


if __name__ == "__main__":
    sys.exit(main())
