"""The GPipe engine: transparency (a pipelined model gives the unpartitioned model's loss and
gradients), the partitioner, re-materialisation, failures that stop the pipeline, bad input.

Transparency is checked as torchgpipe's tests/test_transparency.py does, on CPU with gloo: one
spawned process group per K loops over every M and checkpoint mode, so the whole file starts only
a few groups of processes.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sutskever.errors import UserError
from sutskever.models.gpt import GPT, GPTConfig
from sutskever.parallel import Pipeline, PipelineConfig, PipelineError, spawn
from sutskever.parallel.partition import balance_by_cost, check_balance, shared_parameters, split
from sutskever.parallel.simulate import bubble_fraction, simulate
from sutskever.parallel.trace import chrome_trace, idle_fractions
from sutskever.recipes.gpipe import gpt_layers, lm_loss

CFG = GPTConfig(vocab_size=32, context=8, n_layer=4, n_head=2, d_model=16, dropout=0.0,
                bias=True)
CHUNKS = (1, 2, 4, 8)
MODES = ("never", "always", "except_last")


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(CFG)


def _batch(n: int = 10) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    xy = torch.randint(0, CFG.vocab_size, (n, CFG.context + 1), generator=g)
    return xy[:, :-1], xy[:, 1:]


def _reference() -> tuple[float, dict[str, Tensor]]:
    """Loss and gradients of the unpartitioned model on the whole mini-batch."""
    model = _model()
    x, y = _batch()
    loss = lm_loss(model(x), y)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def _grads_worker(stage: int, device: torch.device, stages: int) -> list:
    """For every (M, mode): the loss (last stage) and this stage's gradients by full name."""
    model = _model()
    x, y = _batch()
    names = {id(p): n for n, p in model.named_parameters()}
    pipe = Pipeline(gpt_layers(model), lm_loss, PipelineConfig(stages=stages, timeout_s=30),
                    device=device)
    out = []
    for chunks in CHUNKS:
        for mode in MODES:
            pipe.cfg = PipelineConfig(stages=stages, chunks=chunks, checkpoint=mode,
                                      timeout_s=30, balance=pipe.balance)
            for p in pipe.parameters():
                p.grad = None
            loss = pipe.step(x, y)
            out.append((chunks, mode, loss,
                        {names[id(p)]: p.grad.clone() for p in pipe.parameters()}))
    return out


@pytest.mark.parametrize("stages", [1, 2, 4])
def test_pipelined_loss_and_gradients_equal_the_unpartitioned_model(stages: int) -> None:
    ref_loss, ref_grads = _reference()
    results = ([_grads_worker(0, torch.device("cpu"), 1)] if stages == 1
               else spawn(_grads_worker, stages, stages, timeout_s=60, threads=1))
    for i, (chunks, mode, loss, _) in enumerate(results[-1]):
        assert loss == pytest.approx(ref_loss, rel=1e-5), (chunks, mode)
        seen: set[str] = set()
        for stage_results in results:
            grads = stage_results[i][3]
            for name, grad in grads.items():
                # tied weights: every stage holding one has the whole (summed) gradient
                torch.testing.assert_close(grad, ref_grads[name], rtol=1e-4, atol=1e-6,
                                           msg=f"{name}, K={stages}, M={chunks}, {mode}")
                seen.add(name)
        assert seen == set(ref_grads)  # every parameter lives on some stage


def test_partitioner_minimises_the_largest_stage() -> None:
    assert balance_by_cost([1, 1, 1, 1], 2) == (2, 2)
    assert balance_by_cost([4, 1, 1, 1, 1], 2) == (1, 4)
    assert balance_by_cost([1, 2, 3, 4, 5, 6, 7, 8, 9], 3) == (5, 2, 2)  # 15, 13, 17
    assert balance_by_cost([5, 5, 5], 3) == (1, 1, 1)
    # brute force over all cuts of 7 layers into 3 stages
    costs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    best = min(max(sum(costs[:i]), sum(costs[i:j]), sum(costs[j:]))
               for i in range(1, 6) for j in range(i + 1, 7))
    b = balance_by_cost(costs, 3)
    cuts = [0, b[0], b[0] + b[1], 7]
    assert max(sum(costs[cuts[k]:cuts[k + 1]]) for k in range(3)) == best
    stages = split(gpt_layers(_model()), (1, 2, 3))
    assert [len(s) for s in stages] == [1, 2, 3]
    tied = shared_parameters(stages)
    assert len(tied) == 1 and tied[0][1] == (0, 2)  # the token embedding = the output layer


def test_rematerialisation_gives_identical_gradients_and_saves_memory() -> None:
    model = _model()
    x, y = _batch()
    grads, peaks = {}, {}
    for mode in MODES:
        pipe = Pipeline(gpt_layers(model), lm_loss,
                        PipelineConfig(stages=1, chunks=4, checkpoint=mode),
                        measure_memory=True)
        model.zero_grad(set_to_none=True)
        pipe.step(x, y)
        grads[mode] = [p.grad.clone() for p in model.parameters()]
        assert pipe.meter is not None
        peaks[mode] = pipe.meter.peak
    for mode in ("always", "except_last"):
        for a, b in zip(grads["never"], grads[mode], strict=True):
            assert torch.equal(a, b), mode
    # except_last keeps the last micro-batch's activations, the same bytes that recomputing
    # it holds: the same peak
    assert peaks["always"] <= peaks["except_last"] < peaks["never"]
    assert peaks["never"] / peaks["always"] > 2.5  # 4 micro-batches' activations vs ~1


def test_dropout_masks_are_replayed_when_recomputing() -> None:
    layers = [nn.Linear(6, 6), nn.Dropout(0.5), nn.Linear(6, 3)]
    x, y = torch.randn(8, 6), torch.randn(8, 3)
    grads = {}
    for mode in ("never", "always"):
        torch.manual_seed(3)
        pipe = Pipeline(layers, F.mse_loss, PipelineConfig(chunks=2, checkpoint=mode))
        for layer in layers:
            layer.zero_grad(set_to_none=True)
        pipe.step(x, y)
        grads[mode] = layers[0].weight.grad.clone()
    assert torch.equal(grads["never"], grads["always"])


def _failing_worker(stage: int, device: torch.device) -> None:
    layers = [nn.Linear(4, 4), nn.Linear(4, 4)]
    pipe = Pipeline(layers, F.mse_loss, PipelineConfig(stages=2, chunks=2, timeout_s=5))
    if stage == 1:
        raise ValueError("stage one broke on purpose")
    pipe.step(torch.randn(4, 4), torch.randn(4, 4))  # waits for stage 1, which is gone


def test_a_failing_stage_stops_the_pipeline_with_its_error() -> None:
    start = time.perf_counter()
    with pytest.raises(PipelineError, match="stage 1 .*ValueError: stage one broke on purpose"):
        spawn(_failing_worker, 2, timeout_s=5, threads=1)
    assert time.perf_counter() - start < 30


def _bad_balance_worker(stage: int, device: torch.device) -> None:
    Pipeline([nn.Linear(2, 2)] * 3, F.mse_loss, PipelineConfig(stages=2, balance=(2, 2)))


def test_a_user_error_in_a_stage_is_a_user_error_in_the_launcher() -> None:
    with pytest.raises(UserError, match=r"stage \d: the balance"):
        spawn(_bad_balance_worker, 2, timeout_s=5, threads=1)


@pytest.mark.parametrize("cfg, message", [
    (PipelineConfig(stages=7), "7 stages for a model of 6 layers"),
    (PipelineConfig(chunks=0), "pipeline.chunks"),
    (PipelineConfig(stages=2, balance=(3, 2)), "covers 5 layers but the model has 6"),
    (PipelineConfig(stages=2, balance=(6, 0)), "a stage with no layers"),
    (PipelineConfig(stages=3, balance=(3, 3)), "2 entries for 3 stages"),
])
def test_bad_input_is_a_one_line_user_error(cfg: PipelineConfig, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        Pipeline(gpt_layers(_model()), lm_loss, cfg)
    assert "\n" not in str(err.value)


def test_more_micro_batches_than_samples_is_a_user_error() -> None:
    pipe = Pipeline(gpt_layers(_model()), lm_loss, PipelineConfig(chunks=16))
    with pytest.raises(UserError, match="lower pipeline.chunks to at most 10"):
        pipe.step(*_batch())


def test_uneven_micro_batches_cover_the_batch() -> None:
    from sutskever.parallel import scatter

    parts = scatter(torch.arange(10), 4)
    assert [len(p) for p in parts] == [3, 3, 2, 2]
    assert torch.equal(torch.cat(parts), torch.arange(10))


def test_simulator_reproduces_the_bubble_formula() -> None:
    for K in (1, 2, 4, 8):
        for M in (1, 4, 32):
            duration, events = simulate([1.0] * K, [2.0] * K, M)
            assert duration == pytest.approx(3.0 * (M + K - 1))
            idle = idle_fractions(events, K)
            assert idle == pytest.approx([bubble_fraction(K, M)] * K)
    trace = chrome_trace(simulate([1.0, 1.0], [2.0, 2.0], 2)[1], 2)
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"F0", "F1", "B0", "B1", "idle"} <= names


def test_check_balance_accepts_a_good_balance() -> None:
    assert check_balance([2, 4], 6, 2) == (2, 4)


def test_balance_by_parameter_count_follows_layer_sizes() -> None:
    from sutskever.parallel.partition import layer_costs_by_params

    layers = [nn.Linear(64, 64), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(64, 64)]
    costs = layer_costs_by_params(layers)
    assert costs == [64 * 64 + 64, 72, 72, 64 * 64 + 64]
    assert balance_by_cost(costs, 2) == (2, 2)  # 4232 each, not 4160 + 4304
    assert balance_by_cost(costs, 3) == (1, 2, 1)
