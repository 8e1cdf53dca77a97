"""Scaling laws measured on our own GPT: an isoFLOP sweep and a repeated-data experiment.

The sweep trains the `gpt` recipe's model at a few FLOP budgets C, each with a ladder of model
sizes N (non-embedding parameters, Kaplan et al.'s 12 L d^2) and D = C / 6N training tokens, and
fits the results with `sutskever.scaling`: Chinchilla's Approach 2 (a parabola in log N per
budget, then N_opt ~ C^a) and Approach 3 (L = E + A/N^alpha + B/D^beta). A second set of runs keeps
one model and its token budget fixed and draws the tokens from 1, 2, 4, 8 and 16 times fewer
unique ones (epochs), the experiment of Muennighoff et al. (2023), beside their formula for the
effective data D'. Every run is an ordinary `gpt` run, so the trainer, its run directory and its
resume work as for any recipe; `sutskever scaling sweep` trains the same runs and writes the CSV
that `sutskever scaling fit` reads.

Steps are rounded, so a run's C differs from its budget by at most half a step (under 2% at the
smallest step counts here); the fits use each run's own N, D and C. Training windows start at
random offsets (as in every `gpt` run), so "epochs" means tokens drawn over unique tokens
available, not ordered passes.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sutskever.errors import UserError
from sutskever.models.gpt import GPTConfig, non_embedding_params
from sutskever.recipes import register
from sutskever.recipes.base import Claim
from sutskever.recipes.gpt import GPTDataConfig, GPTPretraining, GPTRecipeConfig, _adamw, _tokens
from sutskever.scaling import (
    Approach2Fit,
    Approach3Fit,
    Runs,
    effective_data,
    fit_approach2,
    fit_approach3,
    isoflop_groups,
)
from sutskever.scaling.plots import plot_approach2

PAPER_A = 0.49  # Hoffmann et al. Table 2, Approach 2: N_opt ~ C^0.49


@dataclass(frozen=True)
class Sweep:
    """The runs of one scale: isoFLOP budgets over a ladder of shapes, and the repeated-data
    runs."""

    budgets: tuple[float, ...]                 # C = 6 N D per isoFLOP curve
    ladder: tuple[tuple[int, int, int], ...]   # (layers, width, heads), smallest first
    first: tuple[int, ...]                     # per budget: the ladder index of its smallest model
    sizes: int                                 # model sizes per budget
    repeat_shape: int                          # ladder index of the repeated-data model
    repeat_budget: float                       # its C; D = C / 6N tokens in every repeated run
    epochs: tuple[int, ...] = (1, 2, 4, 8, 16)
    repeat_chunks: int = 32                    # the unique tokens: chunks spread over the text

    def shapes(self, budget_index: int) -> tuple[tuple[int, int, int], ...]:
        start = self.first[budget_index]
        return self.ladder[start: start + self.sizes]


def _shape_overrides(shape: tuple[int, int, int]) -> dict[str, Any]:
    layers, width, heads = shape
    return {"model.n_layer": layers, "model.d_model": width, "model.n_head": heads}


def _budget_name(c: float) -> str:
    mantissa, exponent = f"{c:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _tokens_per_step(cfg: GPTRecipeConfig) -> int:
    return cfg.train.batch_size * cfg.train.grad_accum * cfg.model.context


def _steps(base: GPTRecipeConfig, shape: tuple[int, int, int], flops: float) -> int:
    model = dataclasses.replace(base.model, n_layer=shape[0], d_model=shape[1], n_head=shape[2])
    return max(1, round(flops / (6 * non_embedding_params(model) * _tokens_per_step(base))))


def _schedule(steps: int) -> dict[str, Any]:
    return {"train.steps": steps, "train.warmup_steps": max(1, min(100, steps // 10)),
            "train.log_every": max(1, steps // 10)}


def sweep_arms(base: GPTRecipeConfig, sweep: Sweep) -> dict[str, dict[str, Any]]:
    """The runs of a sweep as arms (overrides of the scale preset `base`): `iso-C-LxD` per
    budget and shape, `rep-Ex` per epoch count."""
    arms: dict[str, dict[str, Any]] = {}
    for i, budget in enumerate(sweep.budgets):
        for shape in sweep.shapes(i):
            arms[f"iso-{_budget_name(budget)}-{shape[0]}x{shape[1]}"] = {
                **_shape_overrides(shape), **_schedule(_steps(base, shape, budget))}
    shape = sweep.ladder[sweep.repeat_shape]
    steps = _steps(base, shape, sweep.repeat_budget)
    tokens = steps * _tokens_per_step(base)
    for epochs in sweep.epochs:
        # the windows are cut from D / epochs tokens: chunks spread evenly over the training text,
        # so that fewer unique tokens means repetition, not a narrower part of the corpus
        arms[f"rep-{epochs}x"] = {
            **_shape_overrides(shape), **_schedule(steps), "data.train_chunks": sweep.repeat_chunks,
            "data.train_tokens": tokens // epochs}
    return arms


def _base(data: GPTDataConfig, vocab: int, batch: int, context: int,
          lr: float) -> GPTRecipeConfig:
    """A scale's settings shared by all its runs (the shape and the steps are the arms')."""
    return GPTRecipeConfig(
        data=data,
        model=GPTConfig(vocab_size=vocab, context=context, n_layer=2, n_head=2, d_model=32,
                        dropout=0.0, bias=False),
        train=dataclasses.replace(_adamw(lr=lr, steps=1, warmup=1, min_lr=lr / 10, beta2=0.99,
                                         batch=batch), checkpoint_every=1000),
    )


def _chars(eval_tokens: int, train_eval_tokens: int) -> GPTDataConfig:
    return GPTDataConfig(corpus="shakespeare", tokenizer="char", eval_tokens=eval_tokens,
                         train_eval_tokens=train_eval_tokens)


# Shapes from 1.5k to 4.7M non-embedding parameters, about 0.2-0.3 decades apart.
LADDER = ((2, 8, 2), (2, 12, 2), (2, 16, 2), (2, 24, 2), (2, 32, 2), (2, 40, 2), (2, 48, 2),
          (2, 64, 4), (3, 64, 4), (3, 80, 4), (4, 96, 4), (4, 128, 4), (5, 160, 5), (6, 192, 6),
          (6, 256, 8))
SCALES: dict[str, tuple[GPTRecipeConfig, Sweep]] = {
    "smoke": (_base(_chars(2_000, 2_000), 80, 4, 16, 1e-2),
              Sweep(budgets=(1e7, 2e7, 4e7, 8e7), first=(0, 1, 2, 3), sizes=4,
                    ladder=((1, 8, 1), (1, 12, 1), (1, 16, 2), (2, 16, 2), (2, 24, 2),
                            (2, 32, 2), (3, 32, 2)),
                    repeat_shape=1, repeat_budget=2e7, epochs=(1, 4), repeat_chunks=4)),
    # lr 6e-3: in a pilot at 1e12 FLOPs it beat 2e-3 at 25k (1.885 vs 1.906 val loss) and 147k
    # parameters (2.007 vs 2.141); a batch of 4 instead of 16 helped the larger model as much
    "quick": (_base(_chars(200_000, 50_000), 80, 16, 64, 6e-3),
              Sweep(budgets=(1e11, 3e11, 1e12, 3e12), ladder=LADDER, first=(0, 1, 3, 4),
                    sizes=6, repeat_shape=6, repeat_budget=1e12)),
    # OpenWebText in GPT-2 tokens (nanoGPT's .bin files, from data.path): the largest budget's
    # runs need up to 0.2B tokens, 47 epochs of the shipped Shakespeare
    "paper": (_base(GPTDataConfig(corpus="openwebtext", tokenizer="gpt2",
                                  eval_tokens=1_000_000, train_eval_tokens=100_000),
                    50304, 32, 256, 1e-3),
              Sweep(budgets=(1e13, 1e14, 1e15), ladder=LADDER + ((8, 320, 8), (8, 384, 8)),
                    first=(7, 9, 11), sizes=6, repeat_shape=10, repeat_budget=1e14)),
}
SCALE_ARMS = {scale: sweep_arms(base, sweep) for scale, (base, sweep) in SCALES.items()}


def _claim(id: str, text: str, paper: float | None, setting: str) -> Claim:
    return Claim(id=id, text=text, kind="fit", metric="val_loss", arm="", paper=paper,
                 higher_is_better=False, setting=setting)


SMALL = ("our budgets are 1e11-3e12 FLOPs (character-level Shakespeare, 1.5k-230k parameters; "
         "runs of the smallest models at the largest budgets see the 4.5M training characters "
         "up to 4.4 times); Chinchilla's are 6e18-3e21 FLOPs (MassiveText, 70M-16B parameters)")
CLAIMS = (
    _claim("isoflop-parabolas", "Each isoFLOP curve is a parabola in log N with a minimum inside "
           "the sizes run", None, SMALL),
    _claim("n-opt-exponent", "The compute-optimal model size grows as N_opt ~ C^a with a in "
           "[0.4, 0.6] (Approach 2)", PAPER_A, SMALL),
    _claim("held-out-budget", "A fit to the smaller budgets predicts the largest budget's best "
           "loss within 3% (Approach 3)", None,
           "Chinchilla predicted its 70B model from runs up to 16B parameters; ours "
           "extrapolates one budget (3x) from three"),
    _claim("repeated-data", "Repeating data costs almost nothing up to 4 epochs (within 1% of "
           "the 1-epoch loss) and a growing cost after", None,
           "Muennighoff et al. train up to 9B parameters for up to 44 epochs; ours is one 55k "
           "model on 3.0M characters drawn from 3.0M down to 0.19M unique ones"),
)


def run_record(cfg: GPTRecipeConfig, summary: dict) -> dict[str, float]:
    """N, D, C, U and loss of one finished run (D counts the tokens of every step; U is the size
    of the training text the windows were cut from, at most D)."""
    n = float(non_embedding_params(cfg.model))
    d = float(summary["steps"] * _tokens_per_step(cfg))
    train = _tokens(cfg.data.corpus, cfg.data.tokenizer, cfg.data.path).splits["train"]
    available = float(cfg.data.train_tokens or sum(len(s) for s in train))
    return {"N": n, "D": d, "C": 6.0 * n * d, "U": min(available, d),
            "loss": float(summary["metrics"]["val_loss"])}


def write_runs_csv(out: Path, records: dict[str, dict[str, float]]) -> list[Path]:
    """`runs.csv` (the isoFLOP runs) and `repeated-runs.csv` (the repeated-data runs) in the
    columns `sutskever scaling fit` reads: run, N, D, C, U, loss."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, prefix in (("runs.csv", "iso-"), ("repeated-runs.csv", "rep-")):
        rows = {k: r for k, r in records.items() if k.startswith(prefix)}
        if not rows:
            continue
        tmp = out / f".{name}.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["run", "N", "D", "C", "U", "loss"])
            for run, r in rows.items():
                writer.writerow([run, *(f"{r[k]:.6g}" for k in ("N", "D", "C", "U", "loss"))])
        paths.append(tmp.replace(out / name))
    return paths


@register
class ScalingLaws(GPTPretraining):
    name = "scaling-laws"
    title = "Training Compute-Optimal Large Language Models (Chinchilla), on our GPT"
    authors = "Jordan Hoffmann, Sebastian Borgeaud, Arthur Mensch, et al.; Niklas Muennighoff " \
              "et al. (repeated data)"
    year = 2022
    arxiv = "2203.15556"
    data_note = "the gpt recipe's shipped Shakespeare, character tokens"
    claims = CLAIMS
    arms: dict[str, Any] = {}  # per scale: see `arm_overrides`
    scale_notes = {
        "quick": "4 isoFLOP budgets 1e11-3e12 FLOPs x 6 GPT sizes (1.5k-230k non-embedding "
                 "parameters, character tokens, context 64, batch 16, AdamW lr 6e-3 cosine), "
                 "plus 5 repeated-data runs; the issue asked for 1e13-1e15, which is days on 2 "
                 "CPU cores (see the paper preset); Chinchilla's budgets reach 3e21",
        "paper": "3 isoFLOP budgets 1e13-1e15 FLOPs x 6 sizes (98k-14M parameters) on "
                 "OpenWebText in GPT-2 tokens (data.path), context 256, batch 32: for a GPU",
        "smoke": "tiny models and budgets: for tests, not for results",
    }

    def scales(self) -> dict[str, Any]:
        return {name: base for name, (base, _) in SCALES.items()}

    def presets(self) -> dict[str, Any]:
        return self.scales()

    def arm_overrides(self, scale: str, arm: str) -> dict[str, Any]:
        self.scale(scale)  # a one-line error for an unknown scale
        if arm not in SCALE_ARMS[scale]:
            raise UserError(f"the {scale} sweep has no run {arm!r}; its runs: "
                            f"{', '.join(SCALE_ARMS[scale])}")
        return SCALE_ARMS[scale][arm]

    def claim_arms(self, scale: str, claims: Iterable[Claim]) -> list[str]:
        self.scale(scale)
        names = list(SCALE_ARMS[scale])
        if not any(c.id == "repeated-data" for c in claims):
            names = [n for n in names if not n.startswith("rep-")]
        return names

    def records(self, scale: str, summaries: dict[str, list[dict]]) -> dict[str, dict]:
        return {arm: run_record(self.arm_config(scale, arm), runs[0])
                for arm, runs in summaries.items()}

    def score_claims(self, scale: str, claims: list[Claim], summaries: dict[str, list[dict]],
                     out_dir: Any) -> list[Any]:
        records = self.records(scale, summaries)
        out = Path(out_dir) / f"sweep-{scale}"
        write_runs_csv(out, records)
        return score(claims, records, out)


# ---- scoring the claims from the runs' N, D, C, U and loss --------------------------------------
def _runs(records: dict[str, dict[str, float]], source: str) -> Runs:
    names = list(records)
    col = {k: [records[n][k] for n in names] for k in ("N", "D", "C", "loss")}
    return Runs.from_arrays(col["N"], col["loss"], d=col["D"], c=col["C"], run=names,
                            source=source)


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    return 1.0 - float(((y - fitted) ** 2).sum()) / float(((y - y.mean()) ** 2).sum())


def score(claims: Sequence[Claim], records: dict[str, dict[str, float]],
          out: Path) -> list[Any]:
    """ClaimResults of the sweep claims; writes the isoFLOP figures and the repeated-data table
    under `out`."""
    from sutskever.reproduce import ClaimResult

    iso = _runs({k: r for k, r in records.items() if k.startswith("iso-")}, "the isoFLOP runs")
    fit2 = fit_approach2(iso, bootstrap=200, seed=0)
    plot_approach2(fit2, out)
    fit3 = fit_approach3(iso)
    results = []
    for claim in claims:
        ours, criterion, holds, bars = _SCORERS[claim.id](iso, fit2, fit3, records, out)
        results.append(ClaimResult(claim.id, claim.text, claim.kind,
                                   "-" if claim.paper is None else f"{claim.paper:g}", ours,
                                   criterion, bool(holds), claim.setting, 1, bars))
    return results


def _isoflop(iso: Runs, fit2: Approach2Fit, *_: Any) -> tuple[str, str, bool, list[dict]]:
    budgets = isoflop_groups(iso.c)
    parts, interior = [], 0
    for p in fit2.parabolas:
        inside = p.n.min() <= p.n_opt <= p.n.max()
        interior += inside
        tokens_per_param = p.flops / (6 * p.n_opt ** 2)
        parts.append(f"C={p.flops:.2g}: N_opt {p.n_opt:.3g}{'' if inside else ' (outside)'}, "
                     f"{tokens_per_param:.0f} tokens/param, R² {_r2(p.loss, p.predict(p.n)):.3f}")
    parts += list(fit2.skipped)
    bars = [{"label": f"{p.flops:.2g}", "paper": None, "mean": p.n_opt, "std": 0.0}
            for p in fit2.parabolas]
    return (f"{interior}/{len(budgets)} budgets: " + "; ".join(parts),
            "every budget's parabola opens upwards with its minimum inside the sizes run",
            interior == len(budgets), bars)


def _exponent(iso: Runs, fit2: Approach2Fit, fit3: Approach3Fit,
              *_: Any) -> tuple[str, str, bool, list[dict]]:
    a = fit2.estimates()["a"]
    interval = "" if a.low is None else f" [{a.low:.2f}, {a.high:.2f}] (95% bootstrap)"
    return (f"a = {a.value:.3f}{interval}; Approach 3: a = {fit3.law.a:.3f}",
            "0.4 ≤ a ≤ 0.6", 0.4 <= a.value <= 0.6,
            [{"label": "a", "paper": PAPER_A, "mean": a.value, "std": 0.0}])


def _held_out(iso: Runs, fit2: Approach2Fit, fit3: Approach3Fit,
              *_: Any) -> tuple[str, str, bool, list[dict]]:
    groups = isoflop_groups(iso.c)
    largest = max(groups, key=lambda g: iso.c[g].mean())
    train = iso.subset(np.setdiff1d(np.arange(len(iso)), largest))
    law = fit_approach3(train).law
    budget = float(np.exp(np.log(iso.c[largest]).mean()))
    predicted = float(law.loss(law.n_opt(budget), law.d_opt(budget)))
    observed = float(iso.loss[largest].min())
    error = predicted / observed - 1.0
    return (f"C={budget:.2g}: predicted {predicted:.4f} at N_opt {float(law.n_opt(budget)):.3g}, "
            f"best run {observed:.4f} at N {iso.n[largest][iso.loss[largest].argmin()]:.3g} "
            f"({100 * error:+.1f}%); fit on {len(train)} runs of {len(groups) - 1} budgets",
            "|predicted / observed - 1| ≤ 3%", abs(error) <= 0.03,
            [{"label": "predicted", "paper": None, "mean": predicted, "std": 0.0},
             {"label": "observed", "paper": None, "mean": observed, "std": 0.0}])


def _repeated(iso: Runs, fit2: Approach2Fit, fit3: Approach3Fit, records: dict[str, dict],
              out: Path) -> tuple[str, str, bool, list[dict]]:
    rep = {int(k[4:-1]): r for k, r in records.items() if k.startswith("rep-")}
    epochs = sorted(rep)
    base = rep[epochs[0]]
    law = fit3.law
    cost = {e: rep[e]["loss"] / base["loss"] - 1.0 for e in epochs}
    # Muennighoff et al.'s prediction: the same law at the effective data D' of U unique tokens
    predicted = {e: float(law.loss(r["N"], effective_data(r["D"], r["U"]))
                          / law.loss(base["N"], effective_data(base["D"], base["U"])) - 1.0)
                 for e, r in rep.items()}
    _write_repeated(out, epochs, rep, cost, predicted)
    early = [e for e in epochs if 1 < e <= 4]
    late = [e for e in epochs if e >= 4]
    holds = (all(cost[e] <= 0.01 for e in early)
             and all(cost[a] < cost[b] for a, b in zip(late, late[1:], strict=False)))
    return ("; ".join(f"{e} epochs {100 * cost[e]:+.2f}% (D' formula {100 * predicted[e]:+.2f}%)"
                      for e in epochs[1:]),
            "loss within 1% of 1 epoch up to 4 epochs, then rising with each doubling",
            holds, [{"label": f"{e} ep", "paper": None, "mean": 100 * cost[e], "std": 0.0}
                    for e in epochs])


def _write_repeated(out: Path, epochs: list[int], rep: dict[int, dict], cost: dict[int, float],
                    predicted: dict[int, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    with (out / "repeated.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epochs", "unique_tokens", "tokens", "loss", "cost", "predicted_cost"])
        for e in epochs:
            writer.writerow([e, int(rep[e]["U"]), int(rep[e]["D"]), f"{rep[e]['loss']:.5f}",
                             f"{cost[e]:.5f}", f"{predicted[e]:.5f}"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(epochs, [100 * cost[e] for e in epochs], "o-", label="measured")
    ax.plot(epochs, [100 * predicted[e] for e in epochs], "s--",
            label="L(N, D') with Muennighoff's R* = 15.4")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="epochs over the unique tokens (same D)",
           ylabel="validation loss vs 1 epoch (%)", title="Repeated data at a fixed token budget")
    ax.set_xticks(epochs, [str(e) for e in epochs])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "repeated.png", dpi=110)
    plt.close(fig)


_SCORERS = {"isoflop-parabolas": _isoflop, "n-opt-exponent": _exponent,
            "held-out-budget": _held_out, "repeated-data": _repeated}
