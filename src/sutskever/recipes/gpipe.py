"""GPipe: pipeline parallelism with micro-batches (Huang et al. 2019, "GPipe: Efficient Training of
Giant Neural Networks using Pipeline Parallelism", arXiv:1811.06965), on a deep GPT.

The model is the `gpt` recipe's Transformer language model on its shipped Shakespeare characters
(same data, batches and loss), cut into K stages as a sequence of layers

    [embedding (token + position), block_1, ..., block_L, head (final LayerNorm + tied output)]

so that the token embedding, used again by the output layer, is a weight tied across the first
and the last stage (the engine sums its two gradients). The `unpartitioned` arm is an ordinary
run of the one trainer; everything pipelined runs through `sutskever.parallel` in K processes
(`score_claims`), each measurement cached under `runs/gpipe/gpipe-<scale>/`:

- the same training run pipelined (K = pipeline.stages, M = pipeline.chunks), written as a run
  directory `<scale>-pipelined-s0` beside the trainer's, and its loss curve compared with it;
- timed steps at K = study.stages for each M in study.chunks: the stages' measured idle
  fractions beside (K-1)/(M+K-1), throughput against M, a Chrome trace and the schedule's picture;
- the peak activation memory of each stage with and without re-materialisation (saved-tensor
  hooks, so it is measured on CPU too) beside the expected ratio;
- GPipe's Table 2 simulated from the measured per-layer times and transfer time, beside the
  paper's numbers (`sutskever.parallel.simulate.PAPER_TABLE2`).

Presets: `smoke` (tests), `quick` (an 8-block GPT, K = 2 for two CPU cores, M = 1, 2, 4, 8),
`quick-k1` and `quick-k4` (K = 1: plain accumulation; K = 4 for machines with 4+ cores, M = 1,
4, 8, 32), `paper` (a 24-block GPT, K = 4, M = 1, 4, 8, 32: four GPUs, or 4+ CPU cores).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from sutskever.config import to_dict
from sutskever.errors import UserError
from sutskever.models.gpt import GPT, GPTConfig
from sutskever.parallel import Pipeline, PipelineConfig, spawn
from sutskever.parallel.memory import ActivationMeter
from sutskever.parallel.partition import layer_times
from sutskever.parallel.simulate import (
    PAPER_TABLE2,
    Transfer,
    bubble_fraction,
    ideal_throughput,
    simulate,
    simulated_table2,
)
from sutskever.parallel.trace import idle_fractions, plot_schedule, write_chrome_trace
from sutskever.parallel.train import collect_weights, train_pipeline
from sutskever.recipes import register
from sutskever.recipes.base import Claim
from sutskever.recipes.gpt import GPTDataConfig, GPTPretraining, GPTRecipeConfig, _adamw
from sutskever.train.checkpoint import atomic_write_json, atomic_write_text, save_checkpoint
from sutskever.train.trainer import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    RunSpec,
    evaluate_run,
    run_config_record,
)


# ---- the GPT as a sequence of layers -------------------------------------------------------------
class GPTEmbedding(nn.Module):
    """tokens (B, T) -> h_0 = W_e[tokens] + W_p[positions]   (B, T, d); the GPT's own modules."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.wte, self.wpe, self.drop = gpt.wte, gpt.wpe, gpt.drop

    def forward(self, tokens: Tensor) -> Tensor:
        return self.drop(self.wte(tokens) + self.wpe.weight[: tokens.shape[1]])


class GPTHead(nn.Module):
    """h_L (B, T, d) -> logits = LN(h_L) W_e^T   (B, T, V); the GPT's own modules."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.ln_f, self.head = gpt.ln_f, gpt.head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.ln_f(x))


def gpt_layers(model: GPT) -> list[nn.Module]:
    """The GPT as layers whose composition is `model.forward` (sharing its parameters)."""
    return [GPTEmbedding(model), *model.blocks, GPTHead(model)]


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy, as the gpt recipe's `loss`."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


# ---- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyConfig:
    """The measurements behind the claims (timing, memory, simulation)."""

    stages: int = 2                          # K of the timed runs
    chunks: tuple[int, ...] = (1, 2, 4, 8)   # the M values timed
    steps: int = 6                           # timed steps per M (after `warmup`)
    warmup: int = 2
    memory_chunks: int = 8                   # M of the memory measurement
    threads: int = 1                         # torch threads per stage process
    sim_stages: tuple[int, ...] = (2, 4, 8)  # the simulated Table 2
    sim_chunks: tuple[int, ...] = (1, 4, 32)


@dataclass(frozen=True)
class GPipeConfig(GPTRecipeConfig):
    pipeline: PipelineConfig = field(default_factory=lambda: PipelineConfig(stages=2, chunks=4))
    study: StudyConfig = field(default_factory=StudyConfig)


def _config(layers: int, width: int, heads: int, context: int, batch: int, steps: int,
            lr: float, pipeline: PipelineConfig, study: StudyConfig,
            data: GPTDataConfig | None = None) -> GPipeConfig:
    train = dataclasses.replace(_adamw(lr=lr, steps=steps, warmup=max(1, steps // 20),
                                       min_lr=lr / 10, beta2=0.99, batch=batch,
                                       log_every=max(1, steps // 20)),
                                checkpoint_every=0)
    return GPipeConfig(
        data=data or GPTDataConfig(corpus="shakespeare", tokenizer="char", eval_tokens=50_000,
                                   train_eval_tokens=20_000),
        model=GPTConfig(vocab_size=80, context=context, n_layer=layers, n_head=heads,
                        d_model=width, dropout=0.0, bias=False),  # no dropout: same function
        train=train, pipeline=pipeline, study=study)


SMOKE = _config(4, 16, 2, 16, 8, 6, 1e-2, PipelineConfig(stages=2, chunks=4),
                StudyConfig(stages=2, chunks=(1, 2, 4), steps=2, warmup=1, memory_chunks=4,
                            sim_stages=(2, 4)),
                GPTDataConfig(corpus="shakespeare", tokenizer="char", train_tokens=50_000,
                              eval_tokens=2_000, train_eval_tokens=2_000))
QUICK = _config(8, 96, 4, 64, 32, 200, 1e-3, PipelineConfig(stages=2, chunks=4),
                StudyConfig(stages=2, chunks=(1, 2, 4, 8)))
PAPER = _config(24, 512, 8, 256, 64, 2000, 3e-4, PipelineConfig(stages=4, chunks=32),
                StudyConfig(stages=4, chunks=(1, 4, 8, 32), memory_chunks=32))
QUICK_K1 = dataclasses.replace(QUICK, pipeline=PipelineConfig(stages=1, chunks=4))
QUICK_K4 = dataclasses.replace(QUICK, pipeline=PipelineConfig(stages=4, chunks=8),
                               study=StudyConfig(stages=4, chunks=(1, 4, 8, 32)))


def _claim(id: str, text: str, paper: float | None, setting: str) -> Claim:
    return Claim(id=id, text=text, kind="fit", metric="val_loss", arm="unpartitioned",
                 paper=paper, setting=setting)


ONE_MACHINE = ("K processes on one machine (CPU cores with gloo, or GPUs with NCCL), not TPU "
               "cores; a character-level GPT, not AmoebaNet or Transformer-48")
CLAIMS = (
    _claim("same-loss-curve", "The pipelined model trains like the unpartitioned one: same loss "
           "curve and final validation loss from the same seed", None,
           "GPipe shows identical gradients by design (no BatchNorm); here a K-stage run and "
           "the trainer's run are compared step by step"),
    _claim("bubble-fraction", "Each stage idles for (K-1)/(M+K-1) of the step (within 5 "
           "points)", None, ONE_MACHINE),
    _claim("rematerialisation-memory", "Re-materialisation lowers peak activation memory from "
           "O(N L/K) to O(N + (L/K)(N/M)): by the expected factor (within 15%)", None,
           "activation bytes counted by saved-tensor hooks (what autograd keeps), not a "
           "device's allocator peak"),
    _claim("throughput-rises-with-m", "Throughput rises with M as K M/(M+K-1) predicts "
           "(within 20%)", None, ONE_MACHINE),
    _claim("table2-simulated", "Normalised throughput rises with M and with K (Table 2), "
           "simulated from measured stage and transfer times", 3.48,
           "simulated for K = 2, 4, 8 from this machine's per-layer and transfer times; "
           "the paper measured TPUs and P100s"),
)


class GPipe(GPTPretraining):
    name = "gpipe"
    title = "GPipe: Efficient Training of Giant Neural Networks using Pipeline Parallelism"
    authors = "Yanping Huang, Youlong Cheng, Ankur Bapna, Orhan Firat, Mia Xu Chen, Dehao " \
              "Chen, HyoukJoong Lee, Jiquan Ngiam, Quoc V. Le, Yonghui Wu, Zhifeng Chen"
    year = 2019
    arxiv = "1811.06965"
    data_note = "the gpt recipe's shipped Shakespeare, character tokens"
    config_class = GPipeConfig
    claims = CLAIMS
    arms = {"unpartitioned": {}}
    scale_notes = {
        "smoke": "a 4-block GPT for seconds: for tests, not for results",
        "quick": "an 8 x 96 GPT (context 64, batch 32, 200 steps), K = 2 stages on two CPU "
                 "cores with gloo, M = 1, 2, 4, 8; the paper pipelines AmoebaNet and "
                 "Transformers over 2-8 TPU cores or GPUs",
        "paper": "a 24 x 512 GPT (context 256, batch 64), K = 4 and M = 1, 4, 8, 32 as in "
                 "Table 2: four GPUs or 4+ CPU cores",
    }

    def scales(self) -> dict[str, Any]:
        return {"smoke": SMOKE, "quick": QUICK, "paper": PAPER}

    def presets(self) -> dict[str, Any]:
        return {**super().presets(), "quick-k1": QUICK_K1, "quick-k4": QUICK_K4}

    def claim_arms(self, scale: str, claims: Iterable[Claim]) -> list[str]:
        return ["unpartitioned"]

    def train_pipelined(self, cfg: GPipeConfig, run_dir: Path, spec: RunSpec) -> dict | None:
        """`sutskever run gpipe` through the pipeline when pipeline.stages > 1 (None: the
        trainer runs it)."""
        if cfg.pipeline.stages == 1:
            return None
        check_pipeline_config(cfg)
        return spawn(_train_worker, cfg.pipeline.stages, cfg, spec, str(run_dir),
                     timeout_s=cfg.pipeline.timeout_s, threads=cfg.study.threads)[0]

    def score_claims(self, scale: str, claims: list[Claim], summaries: dict[str, list[dict]],
                     out_dir: Any) -> list[Any]:
        out_dir = Path(out_dir)
        cfg = self.arm_config(scale, "unpartitioned")
        check_pipeline_config(cfg)
        ids = {c.id for c in claims}
        study_dir = out_dir / f"gpipe-{scale}"
        run_dir = out_dir / f"{scale}-pipelined-s0"
        want_run, want_study = "same-loss-curve" in ids, bool(ids - {"same-loss-curve"})
        if (want_run and want_study and cfg.pipeline.stages == cfg.study.stages
                and _finished_run(cfg, run_dir) is None and _cached_study(cfg, study_dir) is None):
            # both in one group of processes: half the start-up cost
            spec = RunSpec("gpipe", scale, {"pipelined": True}, 0)
            _save_study(cfg, study_dir, spawn(_train_and_study_worker, cfg.pipeline.stages, cfg,
                                              spec, str(run_dir), timeout_s=cfg.pipeline.timeout_s,
                                              threads=cfg.study.threads)[0][1])
        pipelined = ensure_pipelined_run(cfg, run_dir, scale) if want_run else None
        study = ensure_study(cfg, study_dir) if want_study else None
        results = []
        for claim in claims:
            scorer = _SCORERS[claim.id]
            ours, criterion, holds, bars, paper = scorer(
                cfg, study, pipelined, out_dir / f"{scale}-unpartitioned-s0", summaries)
            from sutskever.reproduce import ClaimResult

            results.append(ClaimResult(claim.id, claim.text, claim.kind, paper, ours, criterion,
                                       bool(holds), claim.setting, 1, bars))
        return results


if __name__ != "__main__":  # under `python -m` (torchrun) the package's own copy registers
    register(GPipe)


# ---- the pipelined training run ------------------------------------------------------------------
def ensure_pipelined_run(cfg: GPipeConfig, run_dir: Path, scale: str, seed: int = 0) -> dict:
    """Train the pipelined run into `run_dir` unless an identical finished one is there."""
    done = _finished_run(cfg, run_dir)
    if done is not None:
        return done
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    spec = RunSpec("gpipe", scale, {"pipelined": True}, seed)
    results = spawn(_train_worker, cfg.pipeline.stages, cfg, spec, str(run_dir),
                    timeout_s=cfg.pipeline.timeout_s, threads=cfg.study.threads)
    return results[0]


def _finished_run(cfg: GPipeConfig, run_dir: Path) -> dict | None:
    """The summary of a finished run of this config in `run_dir`, if there is one."""
    if not (run_dir / SUMMARY_FILE).exists():
        return None
    saved = json.loads((run_dir / CONFIG_FILE).read_text())
    if saved.get("config") != json.loads(json.dumps(to_dict(cfg))):
        return None
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def _train_and_study_worker(stage: int, device: torch.device, cfg: GPipeConfig, spec: RunSpec,
                            run_dir: str) -> tuple[dict | None, dict | None]:
    return (_train_worker(stage, device, cfg, spec, run_dir),
            _study_worker(stage, device, cfg, spec.seed))


def _train_worker(stage: int, device: torch.device, cfg: GPipeConfig, spec: RunSpec,
                  run_dir: str) -> dict | None:
    from sutskever import recipes

    recipe = recipes.get("gpipe")
    torch.manual_seed(spec.seed)  # every stage builds the same model, as the trainer does
    model = recipe.build_model(cfg).to(device)
    data = recipe.build_data(cfg, spec.seed)
    start = time.perf_counter()
    pipe, log = train_pipeline(gpt_layers(model), lm_loss, data.batch, cfg.train, cfg.pipeline,
                               steps_per_epoch=data.steps_per_epoch, device=device)
    elapsed = time.perf_counter() - start
    full = collect_weights(pipe, model)
    if full is None:
        return None
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CONFIG_FILE, run_config_record(spec, cfg, device))
    atomic_write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in log))
    steps = log[-1]["step"] if log else 0
    save_checkpoint(out / CHECKPOINT_DIR, full, {"step": steps, "elapsed": elapsed})
    summary = evaluate_run(recipe, full, cfg, data, out, "test")
    summary.update({"steps": steps, "train_time_s": log[-1]["elapsed_s"] if log else 0.0,
                    "final_train_loss": log[-1]["loss"] if log else math.nan,
                    "processes": cfg.pipeline.stages, "balance": list(pipe.balance)})
    atomic_write_json(out / SUMMARY_FILE, summary)
    return json.loads((out / SUMMARY_FILE).read_text())


# ---- the measurements ----------------------------------------------------------------------------
def ensure_study(cfg: GPipeConfig, out: Path, seed: int = 0) -> dict:
    """Timing, memory and transfer measurements (cached in `out/study.json` per config)."""
    cached = _cached_study(cfg, out)
    if cached is not None:
        return cached
    return _save_study(cfg, out, spawn(_study_worker, cfg.study.stages, cfg, seed,
                                       timeout_s=cfg.pipeline.timeout_s,
                                       threads=cfg.study.threads)[0])


def _cached_study(cfg: GPipeConfig, out: Path) -> dict | None:
    path = out / "study.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("config") == json.loads(json.dumps(to_dict(cfg))):
            return saved
    return None


def _save_study(cfg: GPipeConfig, out: Path, study: dict) -> dict:
    """Write the study (study.json, traces, schedule pictures); returns it as stored."""
    events = study.pop("events")
    for M, evs in events.items():
        write_chrome_trace(out / f"trace-K{cfg.study.stages}-M{M}.json", evs, cfg.study.stages)
        plot_schedule(out / f"schedule-K{cfg.study.stages}-M{M}.png", evs, cfg.study.stages,
                      title=f"GPipe, K={cfg.study.stages} stages, M={M} micro-batches "
                            f"(measured)")
    study["config"] = json.loads(json.dumps(to_dict(cfg)))
    atomic_write_json(out / "study.json", study)
    return json.loads((out / "study.json").read_text())


def _study_worker(stage: int, device: torch.device, cfg: GPipeConfig, seed: int) -> dict | None:
    from sutskever import recipes

    recipe = recipes.get("gpipe")
    torch.manual_seed(seed)
    model = recipe.build_model(cfg).to(device)
    x, y = recipe.build_data(cfg, seed).batch(0)
    s, K = cfg.study, cfg.study.stages
    layers = gpt_layers(model)
    pcfg = dataclasses.replace(cfg.pipeline, stages=K, chunks=max(s.chunks), checkpoint="never")
    pipe = Pipeline(layers, lm_loss, pcfg, device=device,
                    sample=torch.tensor_split(x, max(s.chunks))[0])
    result: dict[str, Any] = {"stages": K, "balance": list(pipe.balance), "batch": x.shape[0],
                              "chunks": {}, "events": {}}
    for M in s.chunks:
        pipe.cfg = dataclasses.replace(pcfg, chunks=M)
        times = []
        for i in range(s.warmup + s.steps):
            pipe.trace = i >= s.warmup
            _barrier(K)
            t0 = time.perf_counter()
            pipe.step(x, y)
            _barrier(K)
            if pipe.trace:
                times.append(time.perf_counter() - t0)
            for p in pipe.parameters():
                p.grad = None
        gathered = pipe.gather(pipe.events)
        pipe.events = []
        if gathered is not None:
            events = [e for part in gathered for e in part]
            result["events"][str(M)] = events
            result["chunks"][str(M)] = _timing(events, K, M, times)
    # peak activation memory, with and without re-materialisation
    memory: dict[str, int] = {}
    for mode in ("never", "always"):
        pipe.cfg = dataclasses.replace(pcfg, chunks=s.memory_chunks, checkpoint=mode)
        pipe.meter = ActivationMeter(pipe.parameters())
        pipe.step(x, y)
        memory[mode] = pipe.meter.peak
        pipe.meter = None
        for p in pipe.parameters():
            p.grad = None
    result["memory"] = pipe.gather({"never": memory["never"], "always": memory["always"],
                                    "inputs": pipe.input_bytes})
    result["transfer"] = _transfer(pipe, model, x, K)
    if stage == 0:  # per-layer times per sample, for the simulator
        micro = torch.tensor_split(x, 4)[0].to(device)
        forward, backward = layer_times(layers, micro)
        result["layer_forward"] = [t / micro.shape[0] for t in forward]
        result["layer_backward"] = [t / micro.shape[0] for t in backward]
        return result
    return None


def _barrier(stages: int) -> None:
    if stages > 1:
        dist.barrier()


def _timing(events: list, K: int, M: int, times: list[float]) -> dict:
    idle = idle_fractions(events, K)
    per_stage = []
    for k in range(K):
        f = [e.end - e.start for e in events if e.stage == k and e.kind == "forward"]
        b = [e.end - e.start for e in events if e.stage == k and e.kind == "backward"]
        per_stage.append({"forward": statistics.median(f), "backward": statistics.median(b)})
    return {"step_s": statistics.median(times), "idle": idle, "stage_times": per_stage}


def _transfer(pipe: Pipeline, model: GPT, x: Tensor, K: int, repeats: int = 10) -> dict | None:
    """One-way time of an activation between stages 0 and 1 for 1 and N samples (ping-pong)."""
    if K < 2:
        return None
    out = {}
    for b in (1, x.shape[0]):
        t = torch.zeros(b, x.shape[1], model.cfg.d_model, device=pipe.device)
        _barrier(K)
        start = time.perf_counter()
        for _ in range(repeats):
            if pipe.stage == 0:
                dist.send(t, 1)
                dist.recv(t, 1)
            elif pipe.stage == 1:
                dist.recv(t, 0)
                dist.send(t, 0)
        out[b] = (time.perf_counter() - start) / (2 * repeats)
    _barrier(K)
    n = x.shape[0]
    per_sample = max((out[n] - out[1]) / max(n - 1, 1), 0.0)
    return {"latency": max(out[1] - per_sample, 0.0), "per_sample": per_sample,
            "one_way_s": {str(k): v for k, v in out.items()}}


# ---- scoring -------------------------------------------------------------------------------------
def _same_loss(cfg: GPipeConfig, study: Any, pipelined: Any, base_dir: Path,
               summaries: dict) -> tuple:
    base = summaries["unpartitioned"][0]
    ours_log = _train_log(base_dir.parent / base_dir.name.replace("unpartitioned", "pipelined"))
    base_log = _train_log(base_dir)
    pairs = [(a["loss"], b["loss"]) for a, b in zip(base_log, ours_log, strict=False)
             if a["step"] == b["step"]]
    worst = max((abs(a - b) / abs(a) for a, b in pairs), default=math.nan)
    val_a, val_b = base["metrics"]["val_loss"], pipelined["metrics"]["val_loss"]
    val_rel = abs(val_a - val_b) / abs(val_a)
    holds = len(pairs) == len(base_log) > 0 and worst <= 1e-3 and val_rel <= 1e-3
    ours = (f"K={cfg.pipeline.stages}, M={cfg.pipeline.chunks} vs unpartitioned: val loss "
            f"{val_b:.5f} vs {val_a:.5f}; largest train-loss difference over {len(pairs)} "
            f"logged steps {100 * worst:.4f}%")
    bars = [{"label": "unpartitioned", "paper": None, "mean": val_a, "std": 0.0},
            {"label": f"K={cfg.pipeline.stages}", "paper": None, "mean": val_b, "std": 0.0}]
    return ours, "every logged loss and the val loss within 0.1%", holds, bars, "identical"


def _train_log(run_dir: Path) -> list[dict]:
    lines = (run_dir / METRICS_FILE).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == "train"]


def _bubble(cfg: GPipeConfig, study: dict, *_: Any) -> tuple:
    K = study["stages"]
    parts, bars, worst = [], [], 0.0
    for M, t in study["chunks"].items():
        measured = statistics.fmean(t["idle"])
        formula = bubble_fraction(K, int(M))
        worst = max(worst, abs(measured - formula))
        parts.append(f"M={M}: {100 * measured:.1f}% (formula {100 * formula:.1f}%, stages "
                     + "/".join(f"{100 * i:.0f}" for i in t["idle"]) + ")")
        bars.append({"label": f"M={M}", "paper": formula, "mean": measured, "std": 0.0})
    return (f"K={K}, balance {study['balance']}: " + "; ".join(parts),
            "mean idle fraction within 5 points of (K-1)/(M+K-1) at every M", worst <= 0.05,
            bars, "(K-1)/(M+K-1)")


def _memory(cfg: GPipeConfig, study: dict, *_: Any) -> tuple:
    M = cfg.study.memory_chunks
    parts, bars, ok = [], [], True
    for k, mem in enumerate(study["memory"]):
        ratio = mem["never"] / max(mem["always"], 1)
        # with re-materialisation: the mini-batch's input + one micro-batch's activations
        expected = mem["never"] / (mem["inputs"] + mem["never"] / M)
        ok &= abs(ratio / expected - 1) <= 0.15 and ratio > 1
        parts.append(f"stage {k}: {mem['never'] / 2**20:.2f} -> {mem['always'] / 2**20:.2f} "
                     f"MiB, x{ratio:.2f} (expected x{expected:.2f})")
        bars.append({"label": f"stage {k}", "paper": expected, "mean": ratio, "std": 0.0})
    return (f"M={M}: " + "; ".join(parts), "every stage's saving within 15% of "
            "L/K N / (N + (L/K) N/M), measured per micro-batch", ok, bars, "O(N L/K) -> "
            "O(N + (L/K)(N/M))")


def _throughput(cfg: GPipeConfig, study: dict, *_: Any) -> tuple:
    K = study["stages"]
    chunks = sorted(study["chunks"], key=int)
    base = study["chunks"][chunks[0]]["step_s"]
    speedups = {M: base / study["chunks"][M]["step_s"] for M in chunks}
    formula = {M: ideal_throughput(K, int(M)) / ideal_throughput(K, int(chunks[0]))
               for M in chunks}
    rising = all(speedups[a] < speedups[b] for a, b in zip(chunks, chunks[1:], strict=False))
    close = all(abs(speedups[M] / formula[M] - 1) <= 0.2 for M in chunks)
    batch = study["batch"] * cfg.model.context
    ours = "; ".join(f"M={M}: {batch / study['chunks'][M]['step_s']:,.0f} tokens/s "
                     f"(x{speedups[M]:.2f}, formula x{formula[M]:.2f})" for M in chunks)
    bars = [{"label": f"M={M}", "paper": formula[M], "mean": speedups[M], "std": 0.0}
            for M in chunks]
    return (f"K={K}: {ours}", "rises with M, and within 20% of K M/(M+K-1) relative to M="
            f"{chunks[0]}", rising and close, bars, "K M/(M+K-1)")


def _table2(cfg: GPipeConfig, study: dict, *_: Any) -> tuple:
    tr = study["transfer"] or {"latency": 0.0, "per_sample": 0.0}
    transfer = Transfer(tr["latency"], tr["per_sample"])
    n_layers = len(study["layer_forward"])
    Ks = [K for K in cfg.study.sim_stages if K <= n_layers]
    batch = max(study["batch"], max(cfg.study.sim_chunks))
    sim = simulated_table2(study["layer_forward"], study["layer_backward"], transfer, batch,
                           Ks, cfg.study.sim_chunks)
    table = render_table2(sim, Ks, cfg.study.sim_chunks)
    rising_m = all(sim[K, a] < sim[K, b] for K in Ks
                   for a, b in zip(cfg.study.sim_chunks, cfg.study.sim_chunks[1:], strict=False))
    top = max(cfg.study.sim_chunks)
    rising_k = all(sim[a, top] < sim[b, top] for a, b in zip(Ks, Ks[1:], strict=False))
    # the simulator against the measured K-stage steps
    checks = []
    for M, t in study["chunks"].items():
        f = [s["forward"] for s in t["stage_times"]]
        b = [s["backward"] for s in t["stage_times"]]
        predicted, _ = simulate(f, b, int(M), transfer.time(study["batch"] / int(M)))
        checks.append(f"M={M} {1e3 * t['step_s']:.0f}/{1e3 * predicted:.0f} ms")
    base = sim[Ks[0], cfg.study.sim_chunks[0]]
    bars = []
    for row in PAPER_TABLE2:
        for (K, M), value in row.values.items():
            if (K, M) in sim and row.baseline in sim:
                bars.append({"label": f"K{K} M{M}", "paper": value,
                             "mean": sim[K, M] / sim[row.baseline], "std": 0.0})
                break
    paper = "; ".join(f"{row.name}: " + ", ".join(f"K={K} M={M} {v:g}"
                                                  for (K, M), v in row.values.items())
                      for row in PAPER_TABLE2)
    return (f"{table} | measured/simulated step at K={study['stages']}: " + ", ".join(checks)
            + f" | transfer {1e6 * transfer.latency:.0f} us + {1e6 * transfer.per_sample:.1f} "
            f"us/sample; normalised to K={Ks[0]}, M={cfg.study.sim_chunks[0]} "
            f"({1 / base * 1e3:.0f} ms/step)",
            "simulated throughput rises with M at every K and with K at the largest M",
            rising_m and rising_k, bars, paper)


def render_table2(sim: dict[tuple[int, int], float], stages: Iterable[int],
                  chunks: Iterable[int]) -> str:
    """The simulated throughputs normalised to the first (K, M), as 'K=2: M=1 1.00, ...'."""
    stages, chunks = list(stages), list(chunks)
    base = sim[stages[0], chunks[0]]
    return "; ".join(f"K={K}: " + ", ".join(f"M={M} {sim[K, M] / base:.2f}" for M in chunks)
                     for K in stages)


_SCORERS = {"same-loss-curve": _same_loss, "bubble-fraction": _bubble,
            "rematerialisation-memory": _memory, "throughput-rises-with-m": _throughput,
            "table2-simulated": _table2}


def check_pipeline_config(cfg: GPipeConfig) -> None:
    """A UserError for a pipeline the model cannot be cut into."""
    n_layers = cfg.model.n_layer + 2
    cfg.pipeline.check(n_layers)
    if cfg.study.stages > n_layers:
        raise UserError(f"study.stages={cfg.study.stages} exceeds the model's {n_layers} layers; "
                        f"lower it or raise model.n_layer")


def main(argv: list[str] | None = None) -> None:
    """Pipelined training under torchrun, one process per stage (possibly on many machines):

        torchrun --nproc-per-node 2 -m sutskever.recipes.gpipe --preset quick --out runs/gp
        torchrun --nnodes 2 --nproc-per-node 4 ... -m sutskever.recipes.gpipe --preset paper \\
            --set pipeline.stages=8 --out runs/gp8
    """
    import argparse

    from sutskever import recipes
    from sutskever.parallel import init_stage_group

    parser = argparse.ArgumentParser(description="pipelined gpipe training under torchrun")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="the run directory (written by stage 0)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    cfg = recipes.get("gpipe").configure(args.preset, args.set)
    check_pipeline_config(cfg)
    device = init_stage_group("gloo" if args.device == "cpu" else "auto",
                              cfg.pipeline.timeout_s)
    if dist.get_world_size() != cfg.pipeline.stages:
        raise UserError(f"pipeline.stages={cfg.pipeline.stages} but torchrun started "
                        f"{dist.get_world_size()} processes; make them equal")
    spec = RunSpec("gpipe", args.preset, dict(s.split("=", 1) for s in args.set), args.seed)
    summary = _train_worker(dist.get_rank(), device, cfg, spec, args.out)
    if summary is not None:
        print(json.dumps(summary["metrics"]))
    dist.destroy_process_group()


if __name__ == "__main__":
    from sutskever.recipes.gpipe import main as package_main

    package_main()
