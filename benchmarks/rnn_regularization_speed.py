"""Training speed of the LSTM language model of "Recurrent Neural Network Regularization"
(Zaremba, Sutskever, Vinyals, 2014, arXiv:1409.2329): words/s and MFU of the paper's `small`
(2x200, unroll 20, no dropout) and `medium` (2x650, unroll 35, dropout 0.5) configs.

    python benchmarks/rnn_regularization_speed.py                  # CPU, and CUDA if present
    python benchmarks/rnn_regularization_speed.py --threads 2 --device cpu
    ... --alternatives        # also time one 2-layer nn.LSTM and the recurrent-dropout ablation
    ... --results RESULTS.md  # also write the numbers there

One training step is the paper's: a BPTT window of `unroll` words x batch 20, forward, softmax
cross-entropy, backward, gradient-norm clip at 5, plain SGD; the hidden state is carried across
windows and detached between them. The tokens are uniformly random over a 10k vocabulary: this
measures speed only (the cost of a step does not depend on the words).

MFU = model FLOP/s / the measured dense float32 matmul FLOP/s of the same device and thread count.
Model FLOPs are `flops_per_token` (LSTM gate and decoder matmuls, x3 for training). On CUDA,
cuDNN may run the LSTM in TF32 (torch.backends.cudnn.allow_tf32, on by default) while the peak
is measured in strict fp32: the line printed says which.

On a machine shared with other busy processes, run with OMP_WAIT_POLICY=PASSIVE: with the
default spinning OpenMP workers, a step of `small` on 2 threads measured 2.1 s instead of ~0.12 s
whenever another process kept the cores busy (both numbers measured on the project's 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sutskever.environment import hardware, matmul_peak_flops
from sutskever.models.lstm_lm import (
    LSTMLanguageModel,
    LSTMLMConfig,
    State,
    detach_state,
    flops_per_token,
)

BATCH = 20
# The paper's settings (PAPERS.md section 3): model config, unroll, clip.
CONFIGS: dict[str, tuple[LSTMLMConfig, int, float]] = {
    "small": (LSTMLMConfig(hidden=200, dropout=0.0, init_scale=0.1), 20, 5.0),
    "medium": (LSTMLMConfig(hidden=650, dropout=0.5, init_scale=0.05), 35, 5.0),
}
# pytorch/examples word_language_model, small config (2x200, batch 20), measured on the 2-core
# machine this project was developed on.
REFERENCE_WORDS_PER_S = {"small": 7.7e3}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class MultiLayerTwin(nn.Module):
    """Benchmark-only alternative: the same function with one L-layer nn.LSTM (its built-in
    inter-layer dropout) instead of one nn.LSTM per layer, to time that design choice."""

    def __init__(self, model: LSTMLanguageModel) -> None:
        super().__init__()
        cfg = model.config
        self.embedding, self.decoder, self.drop = model.embedding, model.decoder, model.drop
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, cfg.n_layers, dropout=cfg.dropout)
        with torch.no_grad():
            for l, layer in enumerate(model.layers):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.lstm, f"{name}_l{l}").copy_(getattr(layer, f"{name}_l0"))

    def forward(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        x, state = self.lstm(self.drop(self.embedding(tokens)), state)  # (T, B, H)
        return self.decoder(self.drop(x)), state


def make_step(model: nn.Module, cfg: LSTMLMConfig, unroll: int, clip: float,
              device: torch.device) -> Callable[[], None]:
    """A closure that trains on the next BPTT window of a random token stream."""
    n_windows = 50
    gen = torch.Generator().manual_seed(0)
    stream = torch.randint(cfg.vocab_size, (n_windows * unroll + 1, BATCH), generator=gen)
    stream = stream.to(device)  # (N, B): column b is one contiguous stretch of "text"
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    zeros = torch.zeros(cfg.n_layers, BATCH, cfg.hidden, device=device)  # (L, B, H)
    state: State = (zeros, zeros.clone())
    window = 0

    def step() -> None:
        nonlocal state, window
        i = (window % n_windows) * unroll
        window += 1
        x, y = stream[i : i + unroll], stream[i + 1 : i + 1 + unroll]  # (T, B) each
        logits, state = model(x, state)  # (T, B, V)
        state = detach_state(state)  # truncated BPTT: the values carry over, the graph does not
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    return step


def time_steps(steps: dict[str, Callable[[], None]], device: torch.device, n: int,
               warmup: int = 3, rounds: int | None = None) -> dict[str, list[float]]:
    """Seconds per step of each closure; rounds (default: two steps each) interleave them so
    that a burst of load from other processes hits all of them alike."""
    rounds = rounds or max(1, n // 2)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(warmup):
            step()
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(max(1, n // rounds)):
                sync(device)
                t = time.perf_counter()
                step()
                sync(device)
                times[name].append(time.perf_counter() - t)
    return times


def benchmark(name: str, device: torch.device, peak: float, n: int,
              alternatives: bool) -> list[str]:
    cfg, unroll, clip = CONFIGS[name]
    torch.manual_seed(0)
    model = LSTMLanguageModel(cfg).to(device).train()
    steps = {"ours": make_step(model, cfg, unroll, clip, device)}
    if alternatives:
        twin = MultiLayerTwin(LSTMLanguageModel(cfg)).to(device).train()
        steps["one multi-layer nn.LSTM"] = make_step(twin, cfg, unroll, clip, device)
        if cfg.dropout > 0:
            ablation = LSTMLanguageModel(
                LSTMLMConfig(hidden=cfg.hidden, dropout=cfg.dropout, init_scale=cfg.init_scale,
                             dropout_mode="recurrent")).to(device).train()
            steps["recurrent-dropout ablation (cell loop)"] = make_step(
                ablation, cfg, unroll, clip, device)
    times = time_steps(steps, device, n)
    words = unroll * BATCH
    lines = []
    for variant, ts in times.items():
        median, best = statistics.median(ts), min(ts)
        wps, best_wps = words / median, words / best
        mfu, best_mfu = (flops_per_token(cfg) * w / peak for w in (wps, best_wps))
        label = f"{name} ({cfg.n_layers}x{cfg.hidden}, unroll {unroll}, dropout {cfg.dropout})"
        line = (f"{label} [{variant}]: {wps:,.0f} words/s = MFU {100 * mfu:.0f}% (median of "
                f"{len(ts)} steps, {1e3 * median:.1f} ms/step); best step {best_wps:,.0f} "
                f"words/s = MFU {100 * best_mfu:.0f}%")
        ref = REFERENCE_WORDS_PER_S.get(name)
        if variant == "ours" and ref and device.type == "cpu":
            line += (f"; pytorch/examples word_language_model: ~{ref:,.0f} words/s on the "
                     f"project's 2 cores (ours x{wps / ref:.2f})")
        lines.append(line)
        print(line, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CPU, then CUDA)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per config")
    parser.add_argument("--configs", default="small,medium")
    parser.add_argument("--alternatives", action="store_true")
    parser.add_argument("--results", help="also write the numbers to this RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                           else [])
    else:
        devices = [torch.device(args.device)]
    lines = [f"torch {torch.__version__}; random tokens, vocab 10000, batch {BATCH} "
             "(speed only)"]
    print(lines[0])
    for device in devices:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        peak = matmul_peak_flops(device)
        head = f"device {device}: {hardware(device)}"
        if device.type == "cpu":
            shared = " (other processes share the cores)" if load > 1 else ""
            head += (f"; load average {load:.1f} at start{shared}; "
                     f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
        else:
            head += f"; cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}"
        head += f"; measured fp32 matmul peak {peak / 1e9:,.0f} GFLOP/s"
        print(head, flush=True)
        lines.append(head)
        for name in args.configs.split(","):
            lines += benchmark(name, device, peak, args.steps, args.alternatives)
    if args.results:
        from sutskever.report.results import update_benchmark

        update_benchmark(args.results, "rnn-regularization", "rnn-regularization speed", lines)


if __name__ == "__main__":
    sys.exit(main())
