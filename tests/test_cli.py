"""The `sutskever` command end to end (in-process, and once as a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sutskever.cli import main

SMOKE = ["--preset", "smoke", "--set", "train.steps=6", "--device", "cpu"]


def test_run_eval_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "pointer-networks", *SMOKE, "--out", str(out)]) == 0
    for name in ("config.json", "metrics.jsonl", "summary.json", "predictions.jsonl",
                 "checkpoint/model.safetensors", "checkpoint/trainer.pt"):
        assert (out / name).exists(), name
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 32
    assert set(preds[0]) == {"task", "points", "target", "output"}
    assert preds[0]["task"] == "convex-hull" and len(preds[0]["points"]) == 5
    assert all(0 <= i < 5 for p in preds for i in p["output"])

    assert main(["eval", str(out), "--set", "eval.beam=1", "--device", "cpu"]) == 0
    evaluated = json.loads((out / "eval-test.json").read_text())
    assert "accuracy_n5" in evaluated["metrics"]
    assert main(["report", str(out), str(out)]) == 0
    assert main(["list"]) == 0
    assert "pointer-networks" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    assert "brown" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-recipe"], "unknown recipe 'no-such-recipe'; choose one of: "),
    (["run", "pointer-networks", "--preset", "huge"], "has no preset 'huge'; choose one of"),
    (["run", "pointer-networks", "--set", "model.hiden=3"], "unknown config key 'model.hiden'"),
    (["run", "pointer-networks", "--set", "train.steps=many"], "is not an integer"),
    (["run", "pointer-networks", "--set", "data.task=sorting"], "is not one of: convex-hull"),
    (["run", "pointer-networks", "--preset", "smoke", "--set", "model.head=lstm"],
     "model.head='lstm' is not one of"),
    (["eval", "/no/such/dir"], "does not exist"),
    (["report", "/no/such/dir"], "no summary.json"),
    (["reproduce"], "name the recipes to reproduce or pass --all"),
    (["reproduce", "pointer-networks", "--preset", "giant"], "no scale preset 'giant'"),
    (["run"], "the following arguments are required: recipe"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert not (tmp_path / "runs").exists()  # nothing written for a run that cannot start
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_eval_of_a_corrupt_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "pointer-networks", *SMOKE, "--out", str(out)]) == 0
    (out / "checkpoint" / "model.safetensors").write_bytes(b"\x01\x02")
    assert main(["eval", str(out)]) == 2
    assert "corrupt" in capsys.readouterr().err
    (out / "config.json").write_text("{not json")
    assert main(["eval", str(out)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert main(["run", "pointer-networks", *SMOKE, "--out", str(out)]) == 2


def test_console_script_exit_status(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sutskever", "run", "pointer-networks",
                           "--set", "nope=1"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_language_model_sample_and_ensemble(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    for seed in (0, 1):
        assert main(["run", "rnn-regularization", "--preset", "smoke", "--seed", str(seed),
                     "--device", "cpu", "--out", str(tmp_path / f"s{seed}")]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "s0"), "--prompt", "the man", "--words", "12",
                 "--seed", "3", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the man") and len(text.split()) >= 8
    assert main(["sample", str(tmp_path / "s0"), "--temperature", "0"]) == 2
    members = []
    for seed in (0, 1):
        members.append(json.loads((tmp_path / f"s{seed}" / "summary.json").read_text()))
    assert main(["eval", str(tmp_path / "s0"), str(tmp_path / "s1"), "--split", "valid",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    ensemble = float(out.split("valid_ppl")[1].split()[1])
    # averaging probabilities never does worse than the members' geometric-mean perplexity
    # (Jensen); usually it beats the best member
    geo = (members[0]["metrics"]["valid_ppl"] * members[1]["metrics"]["valid_ppl"]) ** 0.5
    assert ensemble <= geo * (1 + 1e-6)
    assert main(["eval", str(tmp_path / "s0"), "--split", "nope"]) == 2


def test_reproduce_a_chosen_claim(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "RESULTS.md"
    assert main(["reproduce", "pointer-networks", "--preset", "smoke", "--seeds", "1",
                 "--claims", "tsp-5-near-optimal", "--out", str(tmp_path / "runs"),
                 "--results", str(results), "--device", "cpu"]) == 0
    assert [p.name for p in (tmp_path / "runs" / "pointer-networks").glob("smoke-*")] == [
        "smoke-tsp-5-s0"]  # only the run the chosen claim needs
    text = results.read_text()
    assert "--claims tsp-5-near-optimal" in text and "not selected (--claims)" in text
    assert main(["reproduce", "pointer-networks", "--preset", "smoke", "--claims", "nope",
                 "--out", str(tmp_path / "runs")]) == 2
    assert "has no claim 'nope'" in capsys.readouterr().err
