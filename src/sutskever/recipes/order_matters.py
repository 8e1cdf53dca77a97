"""Order Matters: Sequence to Sequence for Sets (Vinyals, Bengio, Kudlur, ICLR 2016,
arXiv:1511.06391).

The recipe reproduces the sorting experiment (section 4.3, table 1): sets of N floats uniform in
[0, 1) are sorted by pointing at their elements in increasing order. It compares the
Read-Process-Write model (section 4.2; `sutskever.models.order_matters`) over the number of
Process steps P, with and without a glimpse in the Write block, against a Ptr-Net that reads the
set in its given (random) order, for N = 5, 10, 15. The metric is the paper's: the percentage of
test sets whose whole output permutation is right. Outputs are decoded under the permutation
constraint of `sutskever.models.search` (every element once, then END).

Training sets are drawn fresh at every step (a pure function of the run's seed and the step)
unless `data.train_examples` fixes a finite set; the valid and test sets are fixed per N.

With `task=ngram-lm` the recipe runs the paper's output-order experiment instead (section 4.3):
an LSTM models the joint distribution of the 5 words of a 5-gram, emitting them in an order
(`sutskever.models.order_matters.OrderedNgramLM`): the natural order (1,2,3,4,5), the bad order
(5,1,3,4,2), or an order it chooses itself. The paper's procedure for the last: pretrain with a
uniform prior over the 5! = 120 orders (each training 5-gram gets a uniformly drawn order; arm
`lm-uniform`), then train on orders drawn from the model's posterior over orders (arm
`lm-learned`, which starts from `lm-uniform`'s weights). Our posterior uses as its prior the
running frequency of the orders chosen so far (EM on a prior over orders), and at the CPU scale
scores a few candidate orders per 5-gram instead of all 120 (`OrderMatters._learned_orders`).
The 5-grams are every 5-word window within a sentence of the Brown corpus, PTB-style, shipped
(`sutskever.data.ngrams`). The metric is the perplexity exp(mean NLL per word) of one fixed
order; a model that chooses its own order is scored with the single order it chooses most often
on held-out 5-grams (see `evaluate_ngram_lm`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sutskever.data.ngrams import (
    all_orders,
    order_index,
    order_label,
    parse_order,
    sentence_ngrams,
)
from sutskever.data.sets import SortingSet, fixed_set, random_batch
from sutskever.data.text import load_word_corpus
from sutskever.errors import UserError
from sutskever.models.order_matters import (
    ARCHS,
    OrderedNgramLM,
    OrderedNgramLMConfig,
    ReadProcessWrite,
    ReadProcessWriteConfig,
    choose_orders,
    order_log_likelihoods,
)
from sutskever.models.search import beam_search, greedy_decode
from sutskever.recipes import register
from sutskever.recipes.base import Claim, Recipe, RecipeData, TrainConfig


@dataclass(frozen=True)
class SortingDataConfig:
    n: int = 10                  # numbers per set (the paper: N = 5, 10, 15)
    train_examples: int = 0      # 0: fresh random sets at every step; else a fixed set, cycled
    valid_examples: int = 1_000  # greedy-decoded every train.eval_every steps
    test_examples: int = 1_000


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = 1                # beam size at test time; 1 = greedy


@dataclass(frozen=True)
class NgramDataConfig:
    corpus: Literal["brown", "ptb", "wikitext-2"] = "brown"
    path: str | None = None      # directory with the corpus files (else $SUTSKEVER_DATA/<corpus>)
    n: int = 5                   # words per n-gram (the paper: 5)
    train_ngrams: int = 0        # 0: every training n-gram; else the first k of a fixed shuffle
    valid_ngrams: int = 0        # 0: all; else a fixed random subset of k
    test_ngrams: int = 0
    select_ngrams: int = 1_000   # valid n-grams scored under all n! orders to find a model's order
    first_batch: int = 0         # read the training stream from this batch on (a run that
                                 # continues another's: lm-learned after lm-uniform)


@dataclass(frozen=True)
class OutputOrderConfig:
    # fixed: every n-gram in `fixed`; uniform: each training n-gram in an order drawn uniformly
    # (the paper's pretraining prior); learned: each in an order drawn from the model's posterior
    mode: Literal["fixed", "uniform", "learned"] = "fixed"
    fixed: tuple[int, ...] = (1, 2, 3, 4, 5)  # 1-based, as the paper writes orders
    candidates: int = 120        # learned: orders scored per n-gram (120 = all 5!)
    incumbents: int = 0          # learned: of them, the orders of largest running count
    choice: Literal["sample", "argmax"] = "sample"  # learned: sample the posterior, or its mode
    decay: float = 0.95          # learned: per-step decay of the running counts (the prior)


@dataclass(frozen=True)
class OrderMattersConfig:
    data: SortingDataConfig = field(default_factory=SortingDataConfig)
    model: ReadProcessWriteConfig = field(default_factory=ReadProcessWriteConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: DecodeConfig = field(default_factory=DecodeConfig)
    # sorting (section 4.3, table 1) or the 5-gram language model of the output-order experiment;
    # the groups below are used only by the latter
    task: Literal["sorting", "ngram-lm"] = "sorting"
    ngram: NgramDataConfig = field(default_factory=NgramDataConfig)
    ngram_model: OrderedNgramLMConfig = field(default_factory=OrderedNgramLMConfig)
    order: OutputOrderConfig = field(default_factory=OutputOrderConfig)


# The paper's sorting setting (section 4.3): 256 units, accuracy after 10k training steps. The
# optimizer, learning rate and batch size are not in our notes on the paper; these are ours.
PAPER = OrderMattersConfig(
    data=SortingDataConfig(n=10, valid_examples=1_000, test_examples=10_000),
    model=ReadProcessWriteConfig(hidden=256, arch="rpw", process_steps=5, glimpse=True),
    train=TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, steps=10_000, clip_norm=2.0,
                      log_every=100, eval_every=1_000, checkpoint_every=2_000),
    eval=DecodeConfig(beam=1),
)

# A CPU in minutes (see scale_notes; measured on 2 cores).
QUICK = OrderMattersConfig(
    data=SortingDataConfig(n=10, valid_examples=500, test_examples=1_000),
    model=ReadProcessWriteConfig(hidden=64, arch="rpw", process_steps=5, glimpse=True),
    train=TrainConfig(optimizer="adam", lr=3e-3, batch_size=128, steps=1_500, clip_norm=2.0,
                      schedule="cosine", warmup_steps=50, min_lr_ratio=0.1, log_every=50,
                      eval_every=500, checkpoint_every=500),
    eval=DecodeConfig(beam=1),
)

# Seconds: for tests.
SMOKE = OrderMattersConfig(
    data=SortingDataConfig(n=6, valid_examples=32, test_examples=64),
    model=ReadProcessWriteConfig(hidden=16, arch="rpw", process_steps=2, glimpse=True),
    train=TrainConfig(optimizer="adam", lr=1e-2, batch_size=32, steps=20, clip_norm=2.0,
                      log_every=5, eval_every=10, checkpoint_every=10),
    eval=DecodeConfig(beam=2),
)

# The runs the claims compare; each overrides the scale preset (RPW, P=5, glimpse, N=10).
ARMS: dict[str, dict[str, Any]] = {
    "p5": {"model.process_steps": 5},
    "p0": {"model.process_steps": 0},
    "p1": {"model.process_steps": 1},
    "p10": {"model.process_steps": 10},
    "p5-no-glimpse": {"model.process_steps": 5, "model.glimpse": False},
    "ptrnet": {"model.arch": "ptrnet", "model.process_steps": 0},
    "n5": {"data.n": 5},
    "n15": {"data.n": 15},
    # the output-order experiment (5-gram LM); each scale adds its own size and training (LM)
    "lm-natural": {"order.mode": "fixed", "order.fixed": (1, 2, 3, 4, 5)},
    "lm-bad": {"order.mode": "fixed", "order.fixed": (5, 1, 3, 4, 2)},
    "lm-uniform": {"order.mode": "uniform"},
    "lm-learned": {"order.mode": "learned", "train.init_from": "arm:lm-uniform"},
}


def _lm_train(steps: int, batch: int, lr: float, warmup: int) -> dict[str, Any]:
    return {"train.optimizer": "adam", "train.lr": lr, "train.batch_size": batch,
            "train.steps": steps, "train.epochs": 0.0, "train.schedule": "cosine",
            "train.warmup_steps": warmup, "train.min_lr_ratio": 0.1, "train.clip_norm": 1.0,
            "train.log_every": max(steps // 20, 1), "train.eval_every": 0,
            "train.checkpoint_every": max(steps // 4, 1)}


# The LM arms' settings at each scale: model size, data and training; `steps` for the fixed-order
# arms, and split between pretraining (`lm-uniform`) and learning the order (`lm-learned`) so that
# the learned model sees as many training 5-grams as a fixed-order one. The paper's model size,
# optimizer and steps for this experiment are not in our notes: the `paper` scale is ours.
LM_SCALES: dict[str, dict[str, Any]] = {
    "paper": {"model": {"ngram_model.embed": 256, "ngram_model.hidden": 256},
              "data": {"ngram.select_ngrams": 2_000}, "steps": (40_000, 4_000, 36_000),
              "train": (128, 1e-3, 500), "order": {"order.candidates": 120}},
    "quick": {"model": {"ngram_model.embed": 64, "ngram_model.hidden": 64},
              "data": {"ngram.valid_ngrams": 10_000, "ngram.test_ngrams": 5_000,
                       "ngram.select_ngrams": 150},
              "steps": (600, 100, 500), "train": (128, 3e-3, 30),
              "order": {"order.candidates": 3, "order.incumbents": 2}},
    "smoke": {"model": {"ngram_model.embed": 16, "ngram_model.hidden": 16},
              "data": {"ngram.train_ngrams": 2_000, "ngram.valid_ngrams": 200,
                       "ngram.test_ngrams": 200, "ngram.select_ngrams": 8},
              "steps": (12, 4, 8), "train": (32, 1e-2, 0),
              "order": {"order.candidates": 4, "order.incumbents": 1}},
}


def lm_arm_overrides(scale: str, arm: str) -> dict[str, Any]:
    """The overrides of an LM arm at a scale: the task, the scale's size and training, the arm."""
    s = LM_SCALES[scale]
    fixed, pretrain, learned = s["steps"]
    steps = {"lm-uniform": pretrain, "lm-learned": learned}.get(arm, fixed)
    # lm-learned continues lm-uniform on the 5-grams after those it saw
    skip = {"ngram.first_batch": pretrain} if arm == "lm-learned" else {}
    return {"task": "ngram-lm", **s["model"], **s["data"], **s["order"], **skip,
            **_lm_train(steps, *s["train"]), **ARMS[arm]}

# Table 1 of the paper, accuracy (%) with a glimpse; N=10 unless the claim says otherwise.
CLAIMS = (
    Claim(
        id="process-beats-p0",
        text="Process steps help: RPW with P=5 beats P=0 on sorting N=10 (accuracy %)",
        kind="effect", metric="accuracy", arm="p5", baseline="p0", paper=57.0,
        paper_baseline=30.0, margin=0.0,
        setting="glimpse in both; smaller model and fewer steps at quick (see scale notes)",
    ),
    Claim(
        id="glimpse-helps",
        text="A glimpse in the Write block helps: RPW P=5 with vs without, N=10 (accuracy %)",
        kind="effect", metric="accuracy", arm="p5", baseline="p5-no-glimpse", paper=57.0,
        paper_baseline=17.0, margin=0.0,
        setting="smaller model and fewer steps at quick (see scale notes)",
    ),
    Claim(
        id="rpw-beats-ptrnet",
        text="RPW (P=5) beats a Ptr-Net reading the set in random order, N=10 (accuracy %)",
        kind="effect", metric="accuracy", arm="p5", baseline="ptrnet", paper=57.0,
        paper_baseline=28.0, margin=0.0,
        setting="glimpse in both; smaller model and fewer steps at quick (see scale notes)",
    ),
    Claim(
        id="accuracy-falls-with-n",
        text="Accuracy falls as the sets grow: RPW P=5 on N=5 vs N=10 (accuracy %)",
        kind="effect", metric="accuracy", arm="n5", baseline="p5", paper=94.0,
        paper_baseline=57.0, margin=0.0,
        setting="smaller model and fewer steps at quick (see scale notes)",
    ),
    Claim(
        id="n5-accuracy",
        text="RPW (P=5, glimpse) sorts N=5 within 90% of the paper's accuracy (%)",
        kind="value", metric="accuracy", arm="n5", paper=94.0, factor=0.9,
        setting="smaller model, fewer steps, Adam with cosine decay at quick (see scale notes)",
    ),
    Claim(
        id="accuracy-collapses-at-n15",
        text="Accuracy collapses at N=15: RPW P=5 on N=10 vs N=15 (accuracy %)",
        kind="effect", metric="accuracy", arm="p5", baseline="n15", paper=57.0,
        paper_baseline=4.0, margin=0.0, scales=("smoke", "paper"),
        setting="the paper's scale only (N=15 runs too slow for quick with the other arms)",
    ),
    Claim(
        id="p1-beats-p0",
        text="One Process step already helps: P=1 beats P=0, N=10 (accuracy %)",
        kind="effect", metric="accuracy", arm="p1", baseline="p0", paper=44.0,
        paper_baseline=30.0, margin=0.0, scales=("smoke", "paper"),
        setting="the paper's scale only (too slow for quick with the other arms)",
    ),
    Claim(
        id="p10-accuracy",
        text="RPW with P=10 and a glimpse sorts N=10 (accuracy %)",
        kind="value", metric="accuracy", arm="p10", paper=50.0, factor=0.9,
        scales=("smoke", "paper"),
        setting="the paper's scale only; optimizer, lr and batch are ours",
    ),
    # Output order (section 4.3): 5-gram LM validation perplexity. Criteria fixed before any run:
    # natural beats bad by any margin; the learned order's log-perplexity is at most 0.05 nats
    # (~5% in perplexity) above the natural order's; the learned order beats the bad order.
    Claim(
        id="natural-order-beats-bad-order",
        text="5-gram LM: the natural order (1,2,3,4,5) beats the order (5,1,3,4,2) "
             "(validation perplexity)",
        kind="effect", metric="valid_ppl", arm="lm-natural", baseline="lm-bad", paper=225.0,
        paper_baseline=280.0, margin=0.0, higher_is_better=False,
        setting="Brown corpus PTB-style (10k words), 5-grams within sentences; at quick a "
                "64-unit LSTM trained on 77k 5-grams (600 steps of 128; ~11% of an epoch); "
                "the paper's corpus, model and steps are not in our notes",
    ),
    Claim(
        id="learned-order-near-natural",
        text="5-gram LM: learning the order (uniform pretraining, then orders from the model's "
             "posterior) comes within 0.05 nats per word (~5% perplexity) of the natural order "
             "(validation log-perplexity; paper: ln 225 both)",
        kind="effect", metric="valid_nll", arm="lm-learned", baseline="lm-natural",
        paper=math.log(225.0), paper_baseline=math.log(225.0), margin=-0.05,
        higher_is_better=False,
        setting="learned model scored with the one order it chooses most often on 150 valid "
                "5-grams; at quick 100 steps uniform + 500 steps learned (the fixed arms' "
                "5-grams), each 5-gram's order drawn from the posterior over 3 candidates (the "
                "2 orders of largest running count + 1 uniform; paper: all 120) with the "
                "running counts as prior (EM); Brown, not the paper's corpus",
    ),
    Claim(
        id="learned-order-beats-bad-order",
        text="5-gram LM: the learned order beats the order (5,1,3,4,2) (validation perplexity)",
        kind="effect", metric="valid_ppl", arm="lm-learned", baseline="lm-bad", paper=225.0,
        paper_baseline=280.0, margin=0.0, higher_is_better=False,
        setting="as learned-order-near-natural",
    ),
)


class SortingData(RecipeData):
    """Training batches: fresh random sets per step, or a fixed set in a seeded order per epoch;
    either way a pure function of (seed, step)."""

    def __init__(self, cfg: OrderMattersConfig, seed: int):
        d = cfg.data
        self.n, self.batch_size, self.seed = d.n, cfg.train.batch_size, seed
        self.train = fixed_set(d.n, d.train_examples, "train") if d.train_examples else None
        # a stream has no epochs: call the whole run one
        steps_per_epoch = (max(d.train_examples // self.batch_size, 1) if self.train is not None
                           else max(cfg.train.steps, 1))
        splits = {"valid": fixed_set(d.n, d.valid_examples, "valid"),
                  "test": fixed_set(d.n, d.test_examples, "test")}
        super().__init__(steps_per_epoch=steps_per_epoch, splits=splits)
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.train is None:
            s = random_batch(self.n, self.batch_size, self.seed, step)
            return s.values, s.targets
        epoch, index = divmod(step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.train), generator=g), epoch
        rows = self._perm[index * self.batch_size:(index + 1) * self.batch_size]
        return self.train.values[rows], self.train.targets[rows]


@functools.lru_cache(maxsize=2)
def _ngram_splits(corpus: str, path: str | None, n: int) -> tuple[dict[str, torch.Tensor], int]:
    """Every within-sentence n-gram of each split (read once per process) and the vocab size."""
    c = load_word_corpus(corpus, path)
    eos = c.vocab.eos_id
    if eos is None:
        raise UserError(f"the {corpus} corpus has no <eos>: cannot cut n-grams within sentences")
    grams = {s: sentence_ngrams(c.split(s), eos, n) for s in ("train", "valid", "test")}
    return grams, len(c.vocab)


def _subset(grams: torch.Tensor, k: int, salt: int) -> torch.Tensor:
    """A fixed random subset of k n-grams (all when k is 0), the same in every run."""
    if not k or k >= len(grams):
        return grams
    g = torch.Generator().manual_seed(salt)
    return grams[torch.randperm(len(grams), generator=g)[:k]]


class NgramData(RecipeData):
    """Training 5-grams in a seeded order per epoch, with their output orders. A batch is
    (words (B, n), order rows (B, k) into `all_orders(n)`, uniforms (B,)): k = 1 for the fixed
    and uniform modes; for `learned`, k candidate orders drawn uniformly (the recipe adds the
    incumbents) and a uniform per n-gram to sample its posterior. All a pure function of
    (seed, step)."""

    def __init__(self, cfg: OrderMattersConfig, seed: int):
        d, o = cfg.ngram, cfg.order
        grams, _ = _ngram_splits(d.corpus, d.path, d.n)
        self.train = _subset(grams["train"], d.train_ngrams, 1)
        self.first_batch = d.first_batch
        self.batch_size, self.seed, self.mode = cfg.train.batch_size, seed, o.mode
        self.n_orders = math.factorial(d.n)
        self.fixed_row = (order_index(parse_order(o.fixed, d.n))
                          if o.mode == "fixed" else 0)
        self.k = o.candidates - o.incumbents if o.mode == "learned" else 1
        valid = _subset(grams["valid"], d.valid_ngrams, 2)
        splits = {"valid": valid, "test": _subset(grams["test"], d.test_ngrams, 3),
                  "select": _subset(grams["valid"], d.select_ngrams, 4)}
        super().__init__(steps_per_epoch=max(len(self.train) // self.batch_size, 1),
                         splits=splits)
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        step += self.first_batch
        epoch, index = divmod(step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.train), generator=g), epoch
        words = self.train[self._perm[index * self.batch_size:(index + 1) * self.batch_size]]
        B = len(words)
        rng = np.random.default_rng([self.seed, step, 1_511_06391])
        if self.mode == "fixed":
            rows = np.full((B, 1), self.fixed_row)
        else:
            rows = rng.integers(0, self.n_orders, size=(B, self.k))
        uniform = rng.random(B, dtype=np.float32)
        return words, torch.from_numpy(rows).long(), torch.from_numpy(uniform)


@register
class OrderMatters(Recipe):
    name = "order-matters"
    title = "Order Matters: Sequence to Sequence for Sets"
    authors = "Oriol Vinyals, Samy Bengio, Manjunath Kudlur"
    year = 2016
    arxiv = "1511.06391"
    data_note = ("generated: sets of floats uniform in [0,1), targets = the sorting permutation; "
                 "5-grams within sentences of the Brown corpus, PTB-style (shipped)")
    config_class = OrderMattersConfig
    claims = CLAIMS
    arms = ARMS
    scale_notes = {
        "paper": "the paper's 256 units and 10k steps (section 4.3); Adam lr 1e-3, batch 128, "
                 "gradient clip 2 and fresh random sets every step are ours (not in our notes "
                 "on the paper); greedy decoding under the permutation constraint",
        "quick": "64 units (paper 256); 1500 steps of batch 128 (paper 10k steps); Adam lr 3e-3 "
                 "with warmup and cosine decay; fresh random sets every step; greedy decoding "
                 "under the permutation constraint; 1000 test sets. This training reaches higher "
                 "accuracies than the paper's table (e.g. 94% vs 57% at N=10, P=5), so the "
                 "claims compare directions, not the paper's values. Measured: 38-70 s per run, "
                 "12.5 min for `reproduce --seeds 3` on 2 cores. 5-gram LM arms: Brown corpus "
                 "(PTB-style, 10k words, 680k training 5-grams within sentences); embeddings "
                 "and LSTM of 64 units; Adam lr 3e-3, cosine, batch 128, 600 steps (77k "
                 "5-grams, ~11% of an epoch) for the fixed orders, 100 uniform + 500 learned "
                 "for the learned order, which samples each 5-gram's order from the model's "
                 "posterior over 3 candidate orders (the 2 of largest running count + 1 "
                 "uniform; the paper: all 120); perplexity on 10k validation 5-grams. "
                 "Perplexities are far above the paper's (less data and training): compare "
                 "the arms, not the values",
        "smoke": "a tiny model trained for seconds: for tests, not for results",
    }

    def scales(self) -> dict[str, Any]:
        return {"smoke": SMOKE, "quick": QUICK, "paper": PAPER}

    def presets(self) -> dict[str, Any]:
        """The scales, then the paper's scale with each arm (LM arms with the paper-scale LM)."""
        return {**self.scales(), **{name: self.arm_config("paper", name) for name in self.arms}}

    def arm_overrides(self, scale: str, arm: str) -> Mapping[str, Any]:
        if arm.startswith("lm-"):
            return lm_arm_overrides(scale, arm)
        return self.arms[arm]

    def build_model(self, cfg: OrderMattersConfig) -> nn.Module:
        self._validate(cfg)
        if cfg.task == "ngram-lm":
            _, vocab = _ngram_splits(cfg.ngram.corpus, cfg.ngram.path, cfg.ngram.n)
            if cfg.ngram_model.vocab_size != vocab:
                raise UserError(f"ngram_model.vocab_size={cfg.ngram_model.vocab_size} but the "
                                f"{cfg.ngram.corpus} corpus has {vocab} words; add --set "
                                f"ngram_model.vocab_size={vocab}")
            return OrderedNgramLM(cfg.ngram_model)
        return ReadProcessWrite(cfg.model)

    def build_data(self, cfg: OrderMattersConfig, seed: int) -> RecipeData:
        self._validate(cfg)
        if cfg.task == "ngram-lm":
            return NgramData(cfg, seed)
        return SortingData(cfg, seed)

    def loss(self, model: nn.Module, batch: Any, cfg: Any) -> tuple[torch.Tensor, int]:
        values, targets = batch
        logits = model(values, targets)  # (B, n+1, n+1)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten()), values.shape[0]

    def step_loss(self, model: nn.Module, batch: Any, cfg: Any,
                  carry: Any) -> tuple[torch.Tensor, int, Any]:
        if cfg.task != "ngram-lm":
            return (*self.loss(model, batch, cfg), None)
        words, rows, uniform = batch
        table = all_orders(cfg.ngram.n).to(words.device)  # (n!, n)
        o = cfg.order
        if o.mode != "learned":
            orders = table[rows[:, 0]]  # (B, n)
        else:
            orders, carry = self._learned_orders(model, words, rows, uniform, table, o, carry)
        logits = model(words, orders)  # (B, n, V), emission order
        targets = words.gather(1, orders)  # (B, n)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return loss, words.shape[0], carry

    @staticmethod
    def _learned_orders(model: nn.Module, words: torch.Tensor, rows: torch.Tensor,
                        uniform: torch.Tensor, table: torch.Tensor, o: OutputOrderConfig,
                        counts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The paper's search over orders, as EM on a prior over orders: each 5-gram's order is
        drawn from the model's posterior p(pi | w) ~ p(w | pi) q(pi) over its candidates, where
        q is the decayed running count of the posterior mass given to each order (plus one per
        order). The candidates are the `incumbents` orders with the largest counts and the
        uniform draws `rows`; the first step, with no counts yet, scores all n! orders. Returns
        the orders (B, n) and the new counts (n!,)."""
        B, N = words.shape[0], len(table)
        if counts is None:
            rows = torch.arange(N, device=words.device).expand(B, N)
            log_prior = torch.zeros(N, device=words.device)
        else:
            counts = counts.to(words.device)
            log_prior = torch.log((counts + 1.0) / (counts + 1.0).sum())
            if o.incumbents:
                top = counts.topk(o.incumbents).indices  # (M,)
                rows = torch.cat([top.expand(B, -1), rows], dim=1)  # (B, K)
        scorer = getattr(model, "module", model)  # under DDP, score with the plain module
        ll = order_log_likelihoods(scorer, words, table[rows]).float()  # (B, K)
        log_post = ll + log_prior[rows]  # unnormalised log posterior over the candidates
        pick = choose_orders(log_post, o.choice, uniform)  # (B,)
        mass = torch.zeros(N, device=words.device).index_add_(
            0, rows.flatten(), log_post.softmax(dim=1).flatten())  # E-step: expected counts
        counts = mass if counts is None else o.decay * counts + mass
        return table[rows[torch.arange(B, device=words.device), pick]], counts.cpu()

    def flops_per_sample(self, cfg: OrderMattersConfig) -> float | None:
        """Training FLOPs per 5-gram of the LM: 6 per weight per word for the LSTM and the
        softmax layer (embedding lookups are free), plus the forward passes (2 per weight per
        word) that score the candidate orders when the order is learned. None for sorting."""
        if cfg.task != "ngram-lm":
            return None
        m, n = cfg.ngram_model, cfg.ngram.n
        weights = 4 * m.hidden * (2 * m.embed + m.hidden) + m.hidden * m.vocab_size
        scored = cfg.order.candidates if cfg.order.mode == "learned" else 0
        return float((6 + 2 * scored) * weights * n)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, cfg: OrderMattersConfig, data: RecipeData,
                 split: str, full: bool = True) -> tuple[dict[str, float], list[dict]]:
        if cfg.task == "ngram-lm":
            return evaluate_ngram_lm(model, cfg, data, split, full)
        s: SortingSet = data.splits[split]
        was_training = model.training
        model.eval()
        outputs = decode(model, s, 1)
        metrics = {"loss": teacher_forced_loss(model, s), **score(s, outputs, "greedy")}
        # `accuracy` is the paper's metric at the configured beam (greedy when eval.beam = 1)
        metrics["accuracy"] = metrics["accuracy_greedy"]
        if full and cfg.eval.beam > 1:
            outputs = decode(model, s, cfg.eval.beam)
            metrics.update(score(s, outputs, "beam"))
            metrics["accuracy"] = metrics["accuracy_beam"]
        model.train(was_training)
        predictions = prediction_records(s, outputs) if full else []
        return metrics, predictions

    def _validate(self, cfg: OrderMattersConfig) -> None:
        if cfg.task == "ngram-lm":
            _validate_ngram(cfg)
            return
        if cfg.model.arch not in ARCHS:
            raise UserError(f"model.arch={cfg.model.arch!r} is not one of: {', '.join(ARCHS)}")
        if cfg.model.input_dim != 1:
            raise UserError("sorting sets of floats needs model.input_dim=1")
        if cfg.data.n < 2:
            raise UserError(f"data.n must be at least 2, got {cfg.data.n}")
        if cfg.data.valid_examples < 1 or cfg.data.test_examples < 1:
            raise UserError("data.valid_examples and data.test_examples must be at least 1")
        if cfg.data.train_examples and cfg.data.train_examples < cfg.train.batch_size:
            raise UserError("data.train_examples must be 0 (a fresh stream) or at least "
                            "train.batch_size")
        if cfg.eval.beam < 1:
            raise UserError(f"eval.beam must be at least 1, got {cfg.eval.beam}")
        if not cfg.data.train_examples and cfg.train.epochs > 0:
            raise UserError("train.epochs needs a finite training set (data.train_examples > 0); "
                            "with the fresh stream give train.steps")


def decode(model: nn.Module, s: SortingSet, beam: int, chunk: int = 1024) -> list[list[int]]:
    """Every set of `s` decoded as a permutation of its elements (greedy when beam == 1)."""
    device = next(model.parameters()).device
    out: list[list[int]] = []
    for i in range(0, len(s), chunk):
        values = s.values[i:i + chunk].to(device)
        if beam == 1:
            out += greedy_decode(model, values, s.n + 1, constraint="permutation")
        else:
            out += beam_search(model, values, beam, s.n + 1, constraint="permutation")
    return out


def teacher_forced_loss(model: nn.Module, s: SortingSet, chunk: int = 1024) -> float:
    """Mean cross-entropy per output step (n pointers and END) under teacher forcing."""
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(s), chunk):
        values, targets = s.values[i:i + chunk].to(device), s.targets[i:i + chunk].to(device)
        logits = model(values, targets)
        total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
    return total / s.targets.numel()


def score(s: SortingSet, outputs: list[list[int]], how: str) -> dict[str, float]:
    """Percent of sets sorted exactly (the paper's metric) and of positions right."""
    targets = s.solutions()
    exact = sum(o == t for o, t in zip(outputs, targets, strict=True))
    right = sum(a == b for o, t in zip(outputs, targets, strict=True)
                for a, b in zip(o, t, strict=True))
    return {f"accuracy_{how}": 100.0 * exact / len(targets),
            f"position_accuracy_{how}": 100.0 * right / (len(targets) * s.n)}


def prediction_records(s: SortingSet, outputs: list[list[int]]) -> list[dict]:
    """predictions.jsonl lines: the set, the target and the output as indices into `values`."""
    values = s.values[..., 0].tolist()
    return [{"values": [round(x, 6) for x in v], "target": t, "output": o}
            for v, t, o in zip(values, s.solutions(), outputs, strict=True)]


def _validate_ngram(cfg: OrderMattersConfig) -> None:
    d, o = cfg.ngram, cfg.order
    if not 2 <= d.n <= 7:
        raise UserError(f"ngram.n must be 2..7 (its n! orders are enumerated), got {d.n}")
    if cfg.ngram_model.n != d.n:
        raise UserError(f"ngram_model.n={cfg.ngram_model.n} must equal ngram.n={d.n}")
    parse_order(o.fixed, d.n)
    if not 1 <= o.candidates <= math.factorial(d.n):
        raise UserError(f"order.candidates must be 1..{math.factorial(d.n)}, got {o.candidates}")
    if not 0 <= o.incumbents < o.candidates:
        raise UserError(f"order.incumbents must be 0..order.candidates-1, got {o.incumbents}")
    if d.select_ngrams < 1:
        raise UserError("ngram.select_ngrams must be at least 1")


def ngram_nll(model: nn.Module, words: torch.Tensor, order0: torch.Tensor,
              chunk: int = 512) -> float:
    """Mean NLL per word (nats) of the n-grams `words` (N, n) under one 0-based order (n,)."""
    device = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(words), chunk):
        w = words[i:i + chunk].to(device)
        total -= model.log_likelihood(w, order0.to(device).expand(len(w), -1)).sum().item()
    return total / words.numel()


@torch.no_grad()
def evaluate_ngram_lm(model: nn.Module, cfg: OrderMattersConfig, data: RecipeData, split: str,
                      full: bool = True) -> tuple[dict[str, float], list[dict]]:
    """Perplexity exp(mean NLL per word) of one fixed order on the valid (and test) 5-grams.

    A fixed-order model is scored with its order. A model that chooses its order (uniform,
    learned) is scored with the single order it chooses most often: every 5-gram of the
    `select` set (held-out valid 5-grams) is scored under all n! orders and votes for its best;
    that the winner gets, `order_share` the percent of votes it got, and
    `select_ppl_best_per_example` is the perplexity when each 5-gram uses its own best order
    (optimistic: that choice is made after seeing the words, and not paid for).
    """
    was_training = model.training
    model.eval()
    n = cfg.ngram.n
    table = all_orders(n)
    metrics: dict[str, float] = {}
    if cfg.order.mode == "fixed":
        order0 = torch.tensor(parse_order(cfg.order.fixed, n))
    else:
        device = next(model.parameters()).device
        select = data.splits["select"] if full else data.splits["select"][:64]
        ll = order_log_likelihoods(model, select.to(device), table.to(device)).cpu()  # (S, n!)
        votes = torch.bincount(ll.argmax(dim=1), minlength=len(table))
        top = int(votes.argmax())
        order0 = table[top]
        metrics.update({"order": float(order_label(order0.tolist())),
                        "order_share": 100.0 * float(votes[top]) / len(select),
                        "select_ppl_best_per_example":
                            math.exp(-float(ll.max(dim=1).values.mean()) / n)})
    for s in (("valid", "test") if full else ("valid",)):
        nll = ngram_nll(model, data.splits[s], order0)
        metrics.update({f"{s}_nll": nll, f"{s}_ppl": math.exp(nll)})
    metrics["loss"] = metrics["valid_nll"]
    model.train(was_training)
    return metrics, []
