"""The compute-optimal planner (Hoffmann et al. 2022, Appendix D.2) and repeated data
(Muennighoff et al. 2023): closed forms against brute force, limits of D', the fit of R*."""

from __future__ import annotations

import numpy as np
import pytest

from sutskever.errors import UserError
from sutskever.scaling import (
    R_STAR_D,
    ChinchillaLaw,
    Runs,
    best_under_repetition,
    effective_data,
    fit_r_star,
    plan_compute,
)
from sutskever.scaling.chinchilla import Frontier
from sutskever.scaling.plan import plan_from_frontier

LAW = ChinchillaLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)  # Epoch AI's refit


def brute_force_n(loss_of_n, lo: float, hi: float) -> float:
    """argmin over a dense log grid, then a finer grid around it."""
    grid = np.linspace(np.log(lo), np.log(hi), 200001)
    j = int(np.argmin(loss_of_n(np.exp(grid))))
    fine = np.linspace(grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)], 20001)
    return float(np.exp(fine[np.argmin(loss_of_n(np.exp(fine)))]))


@pytest.mark.parametrize("flops", [1e18, 5.76e23, 1e26])
def test_n_opt_is_the_closed_form_and_the_brute_force_minimum(flops: float) -> None:
    plan = plan_compute(LAW, flops)
    G = (LAW.alpha * LAW.A / (LAW.beta * LAW.B)) ** (1 / (LAW.alpha + LAW.beta))
    a = LAW.beta / (LAW.alpha + LAW.beta)
    assert plan.n_opt.value == pytest.approx(G * (flops / 6) ** a, rel=1e-12)
    assert 6 * plan.n_opt.value * plan.d_opt.value == pytest.approx(flops, rel=1e-12)
    assert plan.tokens_per_parameter.value == pytest.approx(plan.d_opt.value / plan.n_opt.value)
    n = brute_force_n(lambda n: LAW.loss_at_flops(n, flops), plan.n_opt.value / 100,
                      plan.n_opt.value * 100)
    assert n == pytest.approx(plan.n_opt.value, rel=1e-3)
    assert plan.loss.value == pytest.approx(float(LAW.loss(plan.n_opt.value, plan.d_opt.value)))


def test_plan_intervals_from_bootstrap_laws() -> None:
    rng = np.random.default_rng(0)
    B = 300
    samples = ChinchillaLaw(LAW.E + rng.normal(0, 0.02, B), LAW.A * np.exp(rng.normal(0, .1, B)),
                            LAW.B * np.exp(rng.normal(0, .1, B)), LAW.alpha + rng.normal(0, .01, B),
                            LAW.beta + rng.normal(0, .01, B))
    plan = plan_compute(LAW, 1e22, samples=samples)
    for e in (plan.n_opt, plan.d_opt, plan.tokens_per_parameter, plan.loss):
        assert e.low < e.value < e.high
    # the loss interval is the loss of this plan under each sampled law
    losses = samples.loss(plan.n_opt.value, plan.d_opt.value)
    assert plan.loss.low == pytest.approx(np.quantile(losses, 0.025))
    assert plan.loss.high == pytest.approx(np.quantile(losses, 0.975))


def test_effective_data_limits() -> None:
    U = 1e9
    assert float(effective_data(U, U)) == pytest.approx(U, rel=1e-15)  # R = 0: D' = U
    assert float(effective_data(0.3 * U, U)) == pytest.approx(0.3 * U)  # under one epoch: D' = D
    many = float(effective_data(1e6 * U, U))  # R -> infinity: D' -> U (1 + R*)
    assert many == pytest.approx(U * (1 + R_STAR_D), rel=1e-9)
    # slightly repeated data is worth almost its full count: dD'/dD -> 1 at R = 0
    assert (float(effective_data(1.001 * U, U)) - U) / (0.001 * U) == pytest.approx(1, abs=1e-4)
    d = np.linspace(1, 200, 400) * U
    assert np.all(np.diff(effective_data(d, U)) > 0)
    # Muennighoff et al.: four epochs are almost as good as fresh data, forty nearly worthless
    assert float(effective_data(4 * U, U)) / (4 * U) > 0.9
    marginal = float(effective_data(41 * U, U) - effective_data(40 * U, U)) / U
    assert marginal < 0.1


def test_best_under_repetition_against_brute_force() -> None:
    flops = 1e23
    unlimited = plan_compute(LAW, flops)
    U = unlimited.d_opt.value / 10  # 10x fewer unique tokens than the optimum wants
    plan = plan_compute(LAW, flops, unique_tokens=U)
    r = plan.repeated
    assert r is not None
    n = brute_force_n(lambda n: LAW.loss(n, effective_data(flops / 6 / n, U)),
                      unlimited.n_opt.value / 100, flops / 6 / U)
    assert r.n == pytest.approx(n, rel=1e-3)
    assert 6 * r.n * r.d == pytest.approx(flops)
    assert r.epochs == pytest.approx(r.d / U) and r.epochs > 1
    assert r.n > unlimited.n_opt.value  # less effective data: spend more on parameters
    assert r.cost.value > 0
    assert r.loss.value == pytest.approx(unlimited.loss.value + r.cost.value)
    # better than ignoring the limit, and than one epoch over U
    assert r.loss.value < r.loss_if_ignored
    assert r.loss.value < float(LAW.loss(flops / 6 / U, U))


def test_enough_unique_data_costs_nothing() -> None:
    flops = 1e21
    unlimited = plan_compute(LAW, flops)
    plan = plan_compute(LAW, flops, unique_tokens=2 * unlimited.d_opt.value)
    assert plan.repeated.n == pytest.approx(unlimited.n_opt.value)
    assert plan.repeated.cost.value == pytest.approx(0.0, abs=1e-12)
    assert best_under_repetition(LAW, flops, 2 * unlimited.d_opt.value) == pytest.approx(
        unlimited.n_opt.value)


def test_fit_r_star_recovers_the_decay() -> None:
    rng = np.random.default_rng(1)
    r_true = 8.0
    n = np.repeat([1e8, 3e8, 1e9], 6)
    d = np.repeat(20 * n[::6], 6)
    epochs = np.tile([1, 2, 4, 8, 16, 32], 3)
    u = d / epochs
    loss = LAW.loss(n, effective_data(d, u, r_true)) * np.exp(rng.normal(0, 0.001, n.size))
    fit = fit_r_star(Runs.from_arrays(n, loss, d=d, unique_tokens=u), LAW, bootstrap=100)
    assert fit.r_star.value == pytest.approx(r_true, rel=0.15)
    assert fit.r_star.covers(r_true)
    assert fit.repeated == 15 and not fit.at_bound


def test_fit_r_star_needs_repeated_runs() -> None:
    runs = Runs.from_arrays([1e8] * 3, [3.0, 2.9, 2.8], d=[1e9] * 3, unique_tokens=[2e9] * 3)
    with pytest.raises(UserError, match="no run repeats data"):
        fit_r_star(runs, LAW)
    with pytest.raises(UserError, match="no U"):
        fit_r_star(Runs.from_arrays([1e8] * 3, [3.0, 2.9, 2.8], d=[1e9] * 3), LAW)


def test_plan_from_frontier_and_bad_budget() -> None:
    fr = Frontier(a=0.5, log_k=-2.6)
    plan = plan_from_frontier(fr, 1e22, samples=np.array([[0.49, -2.5], [0.51, -2.7],
                                                          [0.5, -2.6]]))
    assert plan.n_opt.value == pytest.approx(np.exp(-2.6) * 1e22 ** 0.5)
    assert 6 * plan.n_opt.value * plan.d_opt.value == pytest.approx(1e22)
    assert plan.loss is None
    with pytest.raises(UserError, match="positive"):
        plan_compute(LAW, -1.0)
