"""The verifiable arithmetic task, test-time compute metrics, and cached GPT decoding."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sutskever import recipes
from sutskever.data import arithmetic as ar
from sutskever.errors import UserError
from sutskever.evaluate.sampling import best_of, majority_vote, pass_at_k
from sutskever.models.gpt import GPT, GPTConfig
from sutskever.recipes.inference_compute import (
    SolvedProblems,
    Verifier,
    collate,
    finite_problems,
    held_out_problems,
)
from sutskever.train import RunSpec, train


def test_written_steps_follow_precedence_and_end_with_the_value() -> None:
    assert ar.steps("3+5*2-4") == ["3+5*2-4", "3+10-4", "13-4", "9"]
    assert ar.steps("3-9*2*2+1") == ["3-9*2*2+1", "3-18*2+1", "3-36+1", "-33+1", "-32"]
    for p in ar.make_problems(300, (1, 2, 3, 4), seed=3):
        assert p.answer == eval(p.prompt[:-1])  # noqa: S307 - digits and + - * only
        assert p.solution().endswith(f"={p.answer}") or p.solution() == str(p.answer)
        assert p.prompt.count("+") + p.prompt.count("-") + p.prompt.count("*") == p.ops


def test_random_order_solutions_are_correct_and_differ() -> None:
    rng = np.random.default_rng(0)
    # every rewrite of "7-5+2": the left pair (2+2), or the signed pair -5+2 = -3 (7-3)
    assert {ar.solution_of("7-5+2", rng) for _ in range(50)} == {"2+2=4", "7-3=4"}
    assert {ar.solution_of("3-9*2*2+1", rng) for _ in range(200)} >= {
        "3-18*2+1=3-36+1=-33+1=-32", "3-9*4+1=3-36+1=3-35=-32"}
    for p in ar.make_problems(300, (1, 2, 3, 4), seed=3):
        lines = {p.solution(rng) for _ in range(30)}
        for line in lines:  # every step keeps the value, and the last is the answer
            assert all(ar.evaluate_expression(e) == p.answer for e in line.split("="))
            assert line.endswith(f"={p.answer}") or line == str(p.answer)
        if p.ops >= 3:
            assert len(lines) > 1


def test_closest_solution_keeps_a_right_path_and_puts_a_wrong_step_right() -> None:
    rng = np.random.default_rng(0)
    for p in ar.make_problems(200, (1, 2, 3, 4), seed=3):
        attempt = p.solution(rng)
        assert p.closest_solution(attempt) == attempt
    p = ar.Problem("6+7*5*4-7=", 139, 4)
    # the attempt took 7*5 first and then wrote 35*4 as 150: the same path, put right
    assert p.closest_solution("6+35*4-7=6+150-7=156-7=149") == "6+35*4-7=6+140-7=146-7=139"
    # the other product first, and a cut-off attempt: its path, then the fixed order
    assert p.closest_solution("6+7*20-7=6+150-7") == "6+7*20-7=6+140-7=146-7=139"
    assert p.closest_solution("") == p.solution()


def test_verifier_on_right_wrong_and_malformed_answers() -> None:
    p = ar.Problem("3+5*2-4=", 9, 3)
    assert ar.verify(p, "3+10-4=13-4=9")
    assert ar.verify(p, "9\nanything after the end")
    assert not ar.verify(p, "3+10-4=13-4=8")
    assert not ar.verify(p, "3+10-4=13-4=")  # no answer
    assert not ar.verify(p, "3+10-4=9-")     # malformed
    assert ar.verify(ar.Problem("1-9=", -8, 1), "-8")


def test_problems_are_a_function_of_the_seed_and_the_test_set_is_held_out() -> None:
    assert ar.make_problems(50, 2, seed=1) == ar.make_problems(50, 2, seed=1)
    assert ar.make_problems(50, 2, seed=1) != ar.make_problems(50, 2, seed=2)
    task = recipes.get("inference-compute").scale("quick").task
    held_out = {p.prompt for ps in held_out_problems(task).values() for p in ps}
    assert not held_out & {p.prompt for p in finite_problems(task)}


def test_pass_at_k_equals_brute_force_enumeration() -> None:
    for n, c, k in itertools.product(range(1, 7), range(7), range(1, 7)):
        if c > n or k > n:
            continue
        draws = list(itertools.combinations([True] * c + [False] * (n - c), k))
        assert math.isclose(pass_at_k(n, c, k), sum(any(d) for d in draws) / len(draws))
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_majority_vote_ties_and_malformed_answers() -> None:
    assert majority_vote([3, 5, 5, 3, 7]) == 3   # tie: the answer seen first
    assert majority_vote([None, None, 4]) == 4   # malformed answers never win
    assert majority_vote([None]) is None
    assert best_of([1, 2, 3], [0.1, 0.9, 0.9]) == 2


def test_collate_targets_only_the_solution() -> None:
    ids = ar.encode("2+3=5\n")
    x, y = collate([(ids, 4), (ar.encode("1*1=1\n"), 4)])
    assert x[0].tolist() == ids[:-1]
    assert y[0].tolist() == [-100, -100, -100, ar.encode("5")[0], ar.END]


def test_random_order_batches_draw_a_fresh_correct_path_each_time() -> None:
    problem = ar.make_problems(1, 4, seed=5, operators="+-")[0]
    data = SolvedProblems([(problem, None)], batch_size=16, seed=0, context=64, tests={})
    paths = set()
    for step in range(4):
        x, y = data.batch(step)
        for row, target in zip(x.tolist(), y.tolist(), strict=True):
            solution = ar.decode([t for t in target if t != -100])
            assert ar.decode(row).startswith(problem.prompt)
            assert solution.endswith("\n") and ar.verify(problem, solution)
            paths.add(solution)
    assert len(paths) > 1
    assert data.batch(2)[0].equal(data.batch(2)[0])  # a batch is a function of the step
    # a sampled empty solution stays what it is (wrong), never replaced by a correct one
    x, y = SolvedProblems([(problem, "")], 2, 0, 64, {}).batch(0)
    assert [ar.decode([t for t in row if t != -100]) for row in y.tolist()] == ["\n", "\n"]


def test_learned_verifier_separates_separable_features() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    labels = x[:, 0] > 0
    scores = Verifier(x, labels).score(x)
    assert ((scores > 0) == labels).float().mean() > 0.95


def test_value_verifier_learns_the_checkers_labels() -> None:
    from sutskever.recipes.inference_compute import ValueVerifier, fit_verifier

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=ar.N_VOCAB, context=16, n_layer=1, n_head=2, d_model=16))
    train_set, test_set = (ar.make_problems(40, (1, 2), seed=s) for s in (0, 1))

    def samples(problems: list[ar.Problem]) -> list[list[str]]:  # right, then a wrong one
        return [[p.solution(), "999"] for p in problems]

    labels = torch.tensor([ar.verify(p, s) for p, ss in zip(train_set, samples(train_set),
                                                            strict=True)
                           for s in ss])
    verifier = ValueVerifier(model, train_set, samples(train_set), labels, epochs=20, lr=3e-3)
    # the right solution ranked first: every training problem, and fresh ones (it may take a
    # right answer ending in 9s for "999")
    scores = verifier.score(train_set, samples(train_set)).view(-1, 2)
    assert (scores[:, 0] > scores[:, 1]).all()
    scores = verifier.score(test_set, samples(test_set)).view(-1, 2)
    assert (scores[:, 0] > scores[:, 1]).float().mean() >= 0.9
    # all samples right: nothing to learn from, every score zero
    flat = fit_verifier("value", model, train_set, samples(train_set), torch.ones(80) > 0)
    assert flat(test_set, samples(test_set)).abs().sum() == 0


def test_cached_decoding_equals_recomputing_every_step() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=17, context=12, n_layer=2, n_head=2, d_model=16)).eval()
    x = torch.randint(0, 17, (3, 4))
    ref = x
    for _ in range(14):  # past the context, where decoding slides the window
        ref = torch.cat([ref, model(ref[:, -12:])[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(x, 14, temperature=0), ref)


def test_smoke_run_reports_every_method(tmp_path: Path) -> None:
    recipe = recipes.get("inference-compute")
    cfg = recipe.configure("smoke")
    summary = train(recipe, cfg, tmp_path, RunSpec(recipe.name, "smoke", {}, 0),
                    device=torch.device("cpu"))
    m = summary["metrics"]
    for n in (1, 2, 4):
        assert 0 <= m[f"maj{n}"] <= 100 and 0 <= m[f"ver{n}"] <= 100
        assert 0 <= m[f"pass{n}_o1"] <= 100
    assert m["pass1"] <= m["pass2"] <= m["pass4"]  # the estimator is monotone in k
    assert (tmp_path / "predictions.jsonl").exists()


def test_synthetic_rounds_keep_only_verified_solutions(tmp_path: Path) -> None:
    recipe = recipes.get("synthetic-data")
    base = recipe.configure("smoke")
    train(recipe, base, tmp_path / "base", RunSpec(recipe.name, "smoke", {}, 0),
          device=torch.device("cpu"))
    finite = len(recipe.examples(base, 0))
    for mode in ("verified", "unverified"):
        cfg = recipe.configure("smoke", [f"train.init_from={tmp_path / 'base'}",
                                         f"synthetic.mode={mode}", "synthetic.problems=30",
                                         "synthetic.round=1"])
        extra = recipe.examples(cfg, 0)[finite:]
        if mode == "verified":
            assert all(ar.verify(p, s) for p, s in extra)
        else:
            assert len(extra) == 30
    with pytest.raises(UserError, match="needs train.init_from"):
        recipe.examples(recipe.configure("smoke", ["synthetic.mode=verified"]), 0)


def test_addition_and_subtraction_only_and_bad_task_settings() -> None:
    problems = ar.make_problems(100, (2, 3), seed=0, operators="+-")
    assert not any("*" in p.prompt for p in problems)
    recipe = recipes.get("inference-compute")
    for bad in ("task.operators=/", "task.samples=3", "task.ops=0", "task.order=any",
                "task.revision_temperature=-1", "task.revision_attempts=some",
                "task.revision_target=near", "task.verifier=mlp"):
        with pytest.raises(UserError):
            recipe.configure("smoke", [bad])


@pytest.mark.parametrize("name", ["inference-compute", "synthetic-data"])
@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_every_preset_problem_fits_the_models_context(name: str, scale: str) -> None:
    # a problem longer than the context is dropped from training and cannot be answered
    cfg = recipes.get(name).configure(scale)
    task, rng = cfg.task, np.random.default_rng(0)
    problems = ar.make_problems(2000, max(task.ops), seed=1, operators=task.operators)
    longest = max(len(p.prompt) + len(p.solution(rng if task.order == "random" else None))
                  for p in problems)
    assert longest + 1 <= cfg.model.context


def test_flops_matching_at_snell_ratios_by_hand() -> None:
    from sutskever.recipes.inference_compute import affordable, total_flops

    def run(fpt: float) -> dict:  # D = 10 tokens/s x 10 s = 100 tokens trained on
        return {"samples_per_s": 10.0, "train_time_s": 10.0,
                "metrics": {"flops_per_token": fpt}}

    small, large = [run(1.0)], [run(4.0)]
    assert total_flops(large[0], 1, 1.0) == pytest.approx(400 + 100 * 4 / 3)
    counts = [1, 2, 4, 8, 16, 32, 64]
    # 100 + n R 100 / 3 <= 400 + R 400 / 3: n <= 9 / R + 4
    assert affordable(small, large, counts, 1.0) == 8      # n <= 13
    assert affordable(small, large, counts, 0.16) == 32    # n <= 60.25
    assert affordable(small, large, counts, 22.0) == 4     # n <= 4.4
    assert affordable([run(8.0)], large, counts, 1.0) == 0  # a bigger "small" model


def test_revision_examples_pair_the_init_models_attempts_with_correct_solutions(
        tmp_path: Path) -> None:
    from sutskever.recipes.inference_compute import revision_examples

    recipe = recipes.get("inference-compute")
    base = recipe.configure("smoke")
    train(recipe, base, tmp_path / "base", RunSpec(recipe.name, "smoke", {}, 0),
          device=torch.device("cpu"))
    cfg = recipe.configure("smoke", [f"train.init_from={tmp_path / 'base'}",
                                     "task.revisions=4", "task.revision_problems=12"])
    examples = revision_examples(cfg, 0)
    finite = {p.prompt: p for p in finite_problems(cfg.task)}
    assert len(examples) == 12 * 4
    for problem, solution in examples:
        original, attempt = problem.prompt[:-2].split("=", 1)[0] + "=", problem.prompt
        assert attempt.endswith(ar.REVISE) and original in finite
        assert ar.verify(finite[original], solution) and ar.REVISE not in solution
    # the reviser trains on them beside the finite set
    assert len(recipe.examples(cfg, 0)) == len(finite_problems(cfg.task)) + 48
    # or on the wrong attempts alone, as Snell et al. do
    wrong = revision_examples(recipe.configure("smoke", [
        f"train.init_from={tmp_path / 'base'}", "task.revisions=4", "task.revision_problems=12",
        "task.revision_attempts=wrong"]), 0)

    def attempt_is_right(problem: ar.Problem) -> bool:  # problem.prompt: prompt attempt ==
        expression, attempt = problem.prompt[:-len(ar.REVISE)].split("=", 1)
        return ar.verify(finite[expression + "="], attempt)

    assert wrong == [(p, s) for p, s in examples if not attempt_is_right(p)]
    assert 0 < len(wrong) < len(examples)
    # or with the attempt's own path put right as the target
    closest = revision_examples(recipe.configure("smoke", [
        f"train.init_from={tmp_path / 'base'}", "task.revisions=4", "task.revision_problems=12",
        "task.revision_target=closest"]), 0)
    assert [p for p, _ in closest] == [p for p, _ in examples]
    for problem, solution in closest:
        expression, attempt = problem.prompt[:-len(ar.REVISE)].split("=", 1)
        assert ar.verify(finite[expression + "="], solution)
        assert solution != attempt or attempt_is_right(problem)  # only a right one is kept
    with pytest.raises(UserError, match="needs train.init_from"):
        revision_examples(recipe.configure("smoke", ["task.revisions=4"]), 0)


def test_revision_chains_start_with_a_sample_and_vote_over_their_answers() -> None:
    from sutskever.recipes.inference_compute import revision_metrics

    recipe = recipes.get("inference-compute")
    cfg = recipe.configure("smoke", ["task.revisions=4", "task.revision_chains=3"])
    torch.manual_seed(0)
    model = recipe.build_model(cfg)
    tests = held_out_problems(cfg.task)
    metrics: dict[str, float] = {}
    revision_metrics(model, cfg.task, tests, metrics)
    for k in tests:
        assert metrics[f"seq1_o{k}"] == metrics[f"last1_o{k}"]  # one answer: the vote is it
        assert all(0 <= metrics[f"{m}{n}_o{k}"] <= 100 for m in ("seq", "last")
                   for n in (1, 2, 4))
    with pytest.raises(UserError):
        recipe.configure("smoke", ["task.revisions=3"])
