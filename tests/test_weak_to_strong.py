"""Weak-to-strong generalisation: PGR, the confidence loss's target, and the recipe end to end."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from sutskever import recipes
from sutskever.errors import UserError
from sutskever.evaluate.weak_to_strong import (
    confidence_target,
    confidence_weight,
    copied_errors,
    harden,
    nt_xent,
    pgr,
    soft_cross_entropy,
)
from sutskever.recipes.weak_to_strong import augment
from sutskever.reproduce import reproduce, run_dir_for
from sutskever.train import RunSpec, train

CPU = torch.device("cpu")


def test_pgr_arithmetic() -> None:
    assert pgr(weak=0.70, weak_to_strong=0.80, ceiling=0.90) == pytest.approx(0.5)
    assert pgr(0.70, 0.90, 0.90) == pytest.approx(1.0)
    assert pgr(0.80, 0.75, 0.90) == pytest.approx(-0.5)   # worse than the supervisor
    assert pgr(0.60, 0.95, 0.90) == pytest.approx(7 / 6)  # beyond the ceiling
    assert math.isnan(pgr(0.8, 0.9, 0.8))                 # no gap: undefined


def test_confidence_weight_ramps_linearly_then_stays() -> None:
    # c_max 0.75 over the first 20% of 100 steps
    assert [confidence_weight(s, 100, 0.75, 0.2) for s in (0, 5, 10, 20, 50, 99)] == \
        pytest.approx([0.0, 0.1875, 0.375, 0.75, 0.75, 0.75])
    assert confidence_weight(0, 100, 0.5, 0.0) == 0.5  # no warm-up


def test_confidence_target_by_hand() -> None:
    weak = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    strong_logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0]], requires_grad=True)
    # hardened strong predictions: class 1 and class 2; c = 0.5
    expected = torch.tensor([[0.3, 0.65, 0.05], [0.1, 0.1, 0.8]])
    target = confidence_target(weak, strong_logits, 0.5)
    assert torch.allclose(target, expected)
    assert not target.requires_grad  # the target is not differentiated
    assert torch.allclose(target.sum(1), torch.ones(2))
    # c = 0 is the naive loss's target
    assert torch.allclose(confidence_target(weak, strong_logits, 0.0), weak)


def test_copied_errors_counts_the_same_wrong_class() -> None:
    truth = torch.tensor([0, 1, 2, 3, 4])
    weak = torch.tensor([0, 2, 1, 0, 4])     # wrong on examples 1, 2, 3
    student = torch.tensor([0, 2, 2, 1, 4])  # repeats 1's mistake, right on 2, wrong anew on 3
    assert copied_errors(student, weak, truth) == pytest.approx(1 / 3)
    assert copied_errors(weak, weak, truth) == 1.0  # an imitator copies every mistake
    assert math.isnan(copied_errors(student, truth, truth))  # no mistakes to copy


def test_nt_xent_by_hand() -> None:
    # two images, orthogonal projections, both views alike: each view's partner has cosine 1,
    # the other image's two views cosine 0, so l = -log(e^(1/t) / (e^(1/t) + 2)) for every view
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for t in (1.0, 0.5):
        expected = math.log1p(2 * math.exp(-1 / t))
        assert nt_xent(z, z, t).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(3 * z, z, 0.5).item() == pytest.approx(math.log1p(2 * math.exp(-2)))
    # swapping the partners (each view's partner is the other image's) costs more
    assert nt_xent(z, z.flip(0), 0.5) > nt_xent(z, z, 0.5)


def test_augment_keeps_shapes_and_is_a_function_of_the_generator() -> None:
    x = torch.randn(6, 1, 28, 28)
    a = augment(x, torch.Generator().manual_seed(1), 0.25)
    b = augment(x, torch.Generator().manual_seed(1), 0.25)
    c = augment(x, torch.Generator().manual_seed(2), 0.25)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    # with crops of the whole image the view is the image or its mirror, jittered: it
    # correlates with one of them almost perfectly (noise std 0.1 against pixels of std 1)
    whole = augment(x, torch.Generator().manual_seed(3), 1.0)
    for v, img in zip(whole, x, strict=True):
        corr = max(float(torch.corrcoef(torch.stack([v.flatten(), o.flatten()]))[0, 1])
                   for o in (img, img.flip(-1)))
        assert corr > 0.95


def test_contrastive_pretraining_runs_and_reports_view_matching(tmp_path: Path) -> None:
    recipe = recipes.get("weak-to-strong")
    cfg = recipe.configure("smoke", {"data.role": "pretrain", "w2s.pretext": "contrastive",
                                     "train.steps": 3})
    data = recipe.build_data(cfg, 0)
    views = data.batch(0)["views"]
    assert len(views) == 2 and views[0].shape == (8, 3, 16, 16)
    assert torch.equal(views[0], data.batch(0)["views"][0])  # a pure function of the step
    summary = train(recipe, cfg, tmp_path / "run", RunSpec("weak-to-strong", "smoke", {}, 0),
                    device=CPU)
    assert 0.0 <= summary["metrics"]["view_match_accuracy"] <= 1.0
    assert math.isfinite(summary["final_train_loss"])


def test_binary_hardening_matches_the_weak_class_balance() -> None:
    # the weak labels say half the batch is positive; the strong model's p(1) is below 0.5 for
    # all four, so argmax would call every one negative. The threshold keeps the balance: the
    # two highest p(1) (examples 1 and 2) become positive.
    weak = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.8, 0.2]])
    strong = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.65, 0.35], [0.9, 0.1]])
    assert torch.equal(harden(strong, weak),
                       torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))


def test_the_conf_arms_loss_is_cross_entropy_with_the_ramped_target() -> None:
    recipe = recipes.get("weak-to-strong")
    cfg = recipe.configure("smoke", {"data.role": "student", "w2s.confidence": 0.75,
                                     "w2s.warmup_frac": 0.2})
    torch.manual_seed(0)
    model = recipe.build_model(cfg)
    features = torch.randn(5, model.feature_dim)
    weak = torch.softmax(torch.randn(5, 10), -1)
    batch = {"x": features, "target": weak, "step": 3, "total_steps": 20, "features": True}
    loss, n = recipe.loss(model, batch, cfg)
    logits = model.head(features)
    c = 0.75 * 3 / 4  # 3 of the 4 warm-up steps
    expected = -(((1 - c) * weak + c * torch.nn.functional.one_hot(logits.argmax(1), 10))
                 * logits.log_softmax(-1)).sum(1).mean()
    assert n == 5 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    naive = recipe.configure("smoke", {"data.role": "student"})
    assert recipe.loss(model, batch, naive)[0].item() == pytest.approx(
        soft_cross_entropy(logits, weak).item(), rel=1e-6)


def test_a_bad_labels_from_is_a_one_line_error(tmp_path: Path) -> None:
    recipe = recipes.get("weak-to-strong")
    cfg = recipe.configure("smoke", {"data.role": "student", "w2s.probe": False,
                                     "model.kind": "linear", "model.pool": 4,
                                     "data.labels_from": str(tmp_path / "missing")})
    with pytest.raises(UserError, match="data.labels_from") as err:
        train(recipe, cfg, tmp_path / "run", RunSpec("weak-to-strong", "smoke", {}, 0),
              device=CPU)
    assert "\n" not in str(err.value)


def test_smoke_reproduce_trains_every_arm_and_scores_pgr(tmp_path: Path) -> None:
    recipe = recipes.get("weak-to-strong")
    results = reproduce(recipe, "smoke", seeds=2, out=tmp_path, device=CPU,
                        console=Console(quiet=True))
    assert [r.id for r in results] == ["pgr-between-0-and-1", "confidence-raises-pgr"]
    assert all(isinstance(r.holds, bool) and r.seeds == 2 for r in results)
    out = tmp_path / "weak-to-strong" / "pgr-smoke"
    assert (out / "pgr.png").stat().st_size > 0
    rows = list(csv.DictReader((out / "pgr.csv").open()))
    assert [(r["weak"], r["strong"]) for r in rows] == [("linear7", "s"), ("mlp14", "s")]

    def acc(arm: str, seed: int) -> float:
        import json

        run = run_dir_for(tmp_path, recipe, "smoke", arm, seed)
        return json.loads((run / "summary.json").read_text())["metrics"]["accuracy"]

    # the table's PGR is the mean over seeds of PGR computed per seed
    per_seed = [pgr(acc("weak-mlp14", s), acc("w2s-mlp14-s", s), acc("ceiling-s", s))
                for s in (0, 1)]
    assert float(rows[1]["naive_pgr_mean"]) == pytest.approx(sum(per_seed) / 2, rel=1e-4)
    # a student reports how much it imitates its supervisor
    import json

    metrics = json.loads((run_dir_for(tmp_path, recipe, "smoke", "w2s-mlp14-s", 0)
                          / "summary.json").read_text())["metrics"]
    assert 0.0 <= metrics["weak_agreement"] <= 1.0
    assert metrics["weak_errors_copied"] is None or 0.0 <= metrics["weak_errors_copied"] <= 1.0
    # a probe leaves the pretrained backbone as it was; the head is trained
    pre = load_file(str(run_dir_for(tmp_path, recipe, "smoke", "pretrain-s", 0)
                        / "checkpoint" / "model.safetensors"))
    probe = load_file(str(run_dir_for(tmp_path, recipe, "smoke", "w2s-conf-mlp14-s", 0)
                          / "checkpoint" / "model.safetensors"))
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert backbone and all(torch.equal(pre[k], probe[k]) for k in backbone)
    assert not torch.equal(pre["head.weight"], probe["head.weight"])


def test_naive_pgr_claim_needs_a_material_share_of_the_gap() -> None:
    from sutskever.recipes.weak_to_strong import MIN_PGR, _score

    claim = next(c for c in recipes.get("weak-to-strong").claims
                 if c.id == "pgr-between-0-and-1")

    def rows(pgrs: list[float]) -> list[dict]:
        return [{"weak": f"w{i}", "strong": "s", "seeds": 2, "naive_pgr": [p, p],
                 "gap": [0.1, 0.1]} for i, p in enumerate(pgrs)]

    # students that beat their supervisors by a hair only imitate them: not reproduced
    assert not _score(claim, rows([0.01, 0.02, 0.04])).holds
    assert _score(claim, rows([0.3, 0.5, -0.1])).holds  # all pairs but one
    assert not _score(claim, rows([0.3, 1.2, -0.1])).holds  # past the ceiling is not in [., 1)
    assert _score(claim, rows([MIN_PGR, MIN_PGR])).holds  # the bound itself counts
