"""Runs CSV validation and the `scaling fit | plan` command line (in-process)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sutskever.errors import UserError
from sutskever.scaling import ChinchillaLaw, chinchilla_runs, effective_data, read_runs
from sutskever.scaling.cli import add_scaling_parser
from sutskever.scaling.runs import CHINCHILLA_CSV

TRUE = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
SHIPPED = Path(__file__).resolve().parents[1] / "src/sutskever/scaling/data" / CHINCHILLA_CSV


def run_cli(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    add_scaling_parser(sub)
    args = p.parse_args(argv)
    args.func(args)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def isoflop_csv(path: Path, seed: int = 0) -> Path:
    """An isoFLOP sweep of TRUE: 5 budgets x 8 sizes, 0.5% noise; columns N, C, loss."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.logspace(18, 21, 5):
        centre = np.log10(TRUE.n_opt(c))
        for n in 10 ** np.linspace(centre - 0.7, centre + 0.7, 8):
            rows.append([n, c, float(TRUE.loss_at_flops(n, c)) * np.exp(rng.normal(0, 0.005))])
    return write_csv(path, ["N", "C", "loss"], rows)


# ---- reading runs ------------------------------------------------------------------------------
def test_reads_documented_and_chinchilla_columns(tmp_path: Path) -> None:
    runs = read_runs(write_csv(tmp_path / "a.csv", ["params", "Tokens", "loss", "run_id", "step"],
                               [[1e8, 2e9, 3.1, "a", 10], [2e8, 4e9, 2.9, "b", 20]]))
    np.testing.assert_allclose(runs.c, 6 * runs.n * runs.d)
    assert runs.run == ("a", "b") and list(runs.step) == [10, 20]
    runs = read_runs(write_csv(tmp_path / "b.csv", ["N", "C", "L"], [[1e8, 6e17, 3.0]]))
    assert runs.d[0] == pytest.approx(1e9)
    shipped = read_runs(SHIPPED)
    assert len(shipped) == 245
    np.testing.assert_allclose(shipped.d, shipped.c / (6 * shipped.n))
    kept = chinchilla_runs()
    assert len(kept) == 240 and kept.loss.max() < np.sort(shipped.loss)[-5]


@pytest.mark.parametrize("header, rows, message", [
    (["N", "D"], [[1e8, 1e9]], "has no loss column"),
    (["D", "loss"], [[1e9, 3.0]], "has no N column"),
    (["N", "loss"], [[1e8, 3.0]], "neither a D (tokens) nor a C (FLOPs) column"),
    (["N", "D", "loss"], [[1e8, 1e9, "abc"]], "line 2: loss='abc' is not a number"),
    (["N", "D", "loss"], [[1e8, 1e9, 3.0], [0, 1e9, 3.0]], "line 3: N=0 must be a finite positive"),
    (["N", "D", "loss"], [[1e8, -1e9, 3.0]], "D=-1000000000.0 must be a finite positive"),
    (["N", "D", "loss"], [[1e8, 1e9, "nan"]], "loss=nan must be a finite positive"),
    (["N", "D", "loss"], [], "has a header but no runs"),
    (["N", "params", "D", "loss"], [[1, 1, 1, 1]], "both mean N"),
])
def test_bad_runs_files_raise_one_line_user_errors(tmp_path: Path, header, rows,
                                                   message: str) -> None:
    path = write_csv(tmp_path / "runs.csv", header, rows)
    with pytest.raises(UserError) as err:
        read_runs(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_runs(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        read_runs(tmp_path / "empty.csv")
    with pytest.raises(UserError, match="does not exist"):
        run_cli(["scaling", "fit", str(tmp_path / "nope.csv")])


def test_cli_rejects_too_few_points_and_bad_options(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "few.csv", ["N", "D", "loss"],
                     [[1e8, 1e9, 3.0], [2e8, 1e9, 2.9], [4e8, 1e9, 2.8]])
    with pytest.raises(UserError, match="needs at least 10 runs"):
        run_cli(["scaling", "fit", str(path), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError, match="--bootstrap -1"):
        run_cli(["scaling", "fit", str(path), "--bootstrap", "-1"])
    with pytest.raises(UserError, match="--flops"):
        run_cli(["scaling", "plan", "--flops", "0"])
    with pytest.raises(UserError, match="does not exist"):
        run_cli(["scaling", "plan", "--flops", "1e21", "--fit", str(tmp_path / "none.json")])


# ---- fit and plan end to end -------------------------------------------------------------------
def test_fit_approach3_then_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv_path = isoflop_csv(tmp_path / "runs.csv")
    out = tmp_path / "fit3"
    run_cli(["scaling", "fit", str(csv_path), "--bootstrap", "30", "--out", str(out)])
    text = capsys.readouterr().out
    assert "alpha" in text and "4500 L-BFGS starts" in text
    rec = json.loads((out / "fit.json").read_text())
    assert rec["law"] == "chinchilla" and rec["approach"] == 3 and rec["points"] == 40
    assert rec["chinchilla"]["alpha"] == pytest.approx(TRUE.alpha, abs=0.03)
    assert len(rec["bootstrap"]["samples"]["alpha"]) == 30
    est = rec["estimates"]["a"]
    assert est["low"] < est["value"] < est["high"]
    for name in ("isoflop.png", "frontier.png", "residuals.png"):
        assert (out / name).stat().st_size > 10_000, name

    run_cli(["scaling", "plan", "--flops", "1e22", "--fit", str(out / "fit.json"),
             "--unique-tokens", "1e10"])
    text = capsys.readouterr().out
    law = ChinchillaLaw(**rec["chinchilla"])
    assert f"{law.n_opt(1e22):#.5g}" in text  # N_opt printed = the closed form of the saved law
    assert "epochs over U" in text and "loss cost vs unlimited data" in text


def test_fit_approach2_kaplan_approach1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv_path = isoflop_csv(tmp_path / "runs.csv", seed=1)
    run_cli(["scaling", "fit", str(csv_path), "--approach", "2", "--bootstrap", "50",
             "--out", str(tmp_path / "a2")])
    rec = json.loads((tmp_path / "a2" / "fit.json").read_text())
    assert rec["approach"] == 2 and rec["frontier"]["a"] == pytest.approx(TRUE.a, abs=0.03)
    assert (tmp_path / "a2" / "isoflop.png").exists()
    # a plan from an Approach 2 fit: N_opt and D_opt, but no loss law and no data limit
    run_cli(["scaling", "plan", "--flops", "1e22", "--fit", str(tmp_path / "a2" / "fit.json")])
    assert "no loss law in this fit" in capsys.readouterr().out
    with pytest.raises(UserError, match="needs a loss law"):
        run_cli(["scaling", "plan", "--flops", "1e22", "--fit",
                 str(tmp_path / "a2" / "fit.json"), "--unique-tokens", "1e9"])

    run_cli(["scaling", "fit", str(csv_path), "--law", "kaplan", "--bootstrap", "20",
             "--out", str(tmp_path / "k")])
    assert "alpha_N (L(N,D))" in capsys.readouterr().out
    assert (tmp_path / "k" / "power_laws.png").exists()
    with pytest.raises(UserError, match="planning needs a Chinchilla fit"):
        run_cli(["scaling", "plan", "--flops", "1e22", "--fit", str(tmp_path / "k" / "fit.json")])

    run_cli(["scaling", "fit", str(csv_path), "--approach", "1", "--no-plots",
             "--out", str(tmp_path / "a1")])
    rec = json.loads((tmp_path / "a1" / "fit.json").read_text())
    assert rec["approach"] == 1 and not (tmp_path / "a1" / "frontier.png").exists()


def test_fit_r_star_from_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"format": "sutskever.scaling.fit/1", "law": "chinchilla",
                                "approach": 3, "source": "test",
                                "chinchilla": {"E": TRUE.E, "A": TRUE.A, "B": TRUE.B,
                                               "alpha": TRUE.alpha, "beta": TRUE.beta}}))
    rows = []
    for n in (1e8, 4e8):
        for epochs in (1, 2, 4, 8, 16, 32):
            d = 20 * n
            rows.append([n, d, d / epochs, float(TRUE.loss(n, effective_data(d, d / epochs, 5.0)))])
    path = write_csv(tmp_path / "rep.csv", ["N", "D", "unique_tokens", "loss"], rows)
    run_cli(["scaling", "fit", str(path), "--law", "data-constrained", "--base-fit", str(base),
             "--bootstrap", "20", "--out", str(tmp_path / "r")])
    rec = json.loads((tmp_path / "r" / "fit.json").read_text())
    assert rec["estimates"]["R_star_D"]["value"] == pytest.approx(5.0, rel=1e-3)


def test_plan_default_fits_the_shipped_chinchilla_data(capsys: pytest.CaptureFixture) -> None:
    run_cli(["scaling", "plan", "--flops", "5.76e23", "--bootstrap", "0"])
    text = capsys.readouterr().out
    assert "Approach 3 on the shipped Chinchilla data" in text
    # N_opt at Chinchilla's budget agrees with the closed form of Epoch AI's published refit
    epoch = ChinchillaLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
    line = next(x for x in text.splitlines() if "N_opt (parameters)" in x)
    n_opt = float(line.split("│")[2])
    assert n_opt == pytest.approx(float(epoch.n_opt(5.76e23)), rel=0.15)
