"""weak-to-strong-text: the Brown genre sentences, bag-of-words features, and the recipe's runs
end to end at the smoke scale."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from sutskever import recipes
from sutskever.data.genres import Sentence, balanced_split, load_sentences
from sutskever.errors import UserError
from sutskever.evaluate.weak_to_strong import pgr
from sutskever.recipes.weak_to_strong_text import bag_of_words, vocabulary
from sutskever.reproduce import reproduce, run_dir_for
from sutskever.train import RunSpec, train

CPU = torch.device("cpu")


def test_the_shipped_sentences_and_their_labels() -> None:
    sentences = load_sentences()
    assert len(sentences) == 45_434
    assert sentences[0].file == "ca01" and sentences[0].genre == "news"
    assert sentences[0].imaginative == 0 and sentences[-1].imaginative == 1  # cr09: humor
    assert sum(s.imaginative for s in sentences) == 12_693


def test_balanced_split_is_disjoint_by_file_balanced_and_fixed() -> None:
    sentences = load_sentences()
    sets = balanced_split(sentences, (400, 800, 300), 0)
    assert [len(s) for s in sets] == [400, 800, 300]
    assert [sum(x.imaginative for x in s) for s in sets] == [200, 400, 150]
    files = [{x.file for x in s} for s in sets]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    assert balanced_split(sentences, (400, 800, 300), 0) == sets
    assert balanced_split(sentences, (400, 800, 300), 1) != sets
    with pytest.raises(UserError, match="fewer examples"):
        balanced_split(sentences, (40_000, 10, 10), 0)


def test_a_bad_sentences_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(gzip.compress(b"ca01\tnot-a-genre\tSome words.\n"))
    for path, match in ((bad, "line 1"), (tmp_path / "missing.tsv.gz", "does not exist")):
        with pytest.raises(UserError, match=match) as err:
            load_sentences(path)
        assert "\n" not in str(err.value)


def test_bag_of_words_by_hand() -> None:
    s = [Sentence("ca01", "news", "The cat saw the dog."), Sentence("ck01", "fiction", "A dog!")]
    vocab = vocabulary(s, 2)
    assert vocab == ["dog", "the"]  # dog and the twice each; ties alphabetical
    assert bag_of_words(vocab, s).tolist() == [[1.0, 1.0], [1.0, 0.0]]


def test_a_bad_labels_from_is_a_one_line_error(tmp_path: Path) -> None:
    recipe = recipes.get("weak-to-strong-text")
    cfg = recipe.configure("smoke", {"data.role": "student", "data.labels_from":
                                     str(tmp_path / "missing")})
    with pytest.raises(UserError, match="data.labels_from") as err:
        train(recipe, cfg, tmp_path / "run", RunSpec("weak-to-strong-text", "smoke", {}, 0),
              device=CPU)
    assert "\n" not in str(err.value)


def test_smoke_reproduce_trains_every_arm_and_scores_pgr(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUTSKEVER_CACHE", str(tmp_path / "cache"))
    recipe = recipes.get("weak-to-strong-text")
    results = reproduce(recipe, "smoke", seeds=1, out=tmp_path, device=CPU,
                        console=Console(quiet=True))  # 2 seeds: tests/test_recipes.py
    assert [r.id for r in results] == ["pgr-between-0-and-1", "confidence-raises-pgr"]
    assert all(isinstance(r.holds, bool) and r.seeds == 1 for r in results)
    out = tmp_path / "weak-to-strong-text" / "pgr-smoke"
    assert (out / "pgr.png").stat().st_size > 0
    rows = list(csv.DictReader((out / "pgr.csv").open()))
    assert [(r["weak"], r["strong"]) for r in rows] == [
        ("bow20", "L1"), ("bow50", "L1"), ("bow20", "L2"), ("bow50", "L2")]
    # every block's embeddings were cached at once
    assert len(list((tmp_path / "cache" / "embeddings").glob("minilm-*-L*.pt"))) == 6

    def metrics(arm: str, seed: int) -> dict:
        run = run_dir_for(tmp_path, recipe, "smoke", arm, seed)
        return json.loads((run / "summary.json").read_text())["metrics"]

    expected = pgr(metrics("weak-bow50", 0)["accuracy"], metrics("w2s-bow50-L2", 0)["accuracy"],
                   metrics("ceiling-L2", 0)["accuracy"])
    assert float(rows[3]["naive_pgr_mean"]) == pytest.approx(expected, abs=1e-4)
    student = metrics("w2s-conf-bow20-L1", 0)
    assert 0.0 <= student["weak_agreement"] <= 1.0
    assert 0.0 <= student["label_accuracy"] <= 1.0  # how right the weak labels of B were
    assert "label_accuracy" not in metrics("ceiling-L1", 0)


def test_data_list_shows_the_sentences_and_the_encoder() -> None:
    from sutskever.data.genres import datasets

    rows = {d["name"]: d for d in datasets()}
    assert rows["brown-genres"]["present"] and rows["all-minilm-l6-v2"]["present"]
