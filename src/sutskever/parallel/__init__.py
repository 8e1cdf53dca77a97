"""GPipe pipeline parallelism on torch.distributed (Huang et al. 2019, arXiv:1811.06965).

    layers = [embedding, *blocks, head]                       # a model as a sequence of layers
    pipe = Pipeline(layers, loss_fn, PipelineConfig(stages=4, chunks=8, checkpoint="always"))
    loss = pipe.step(x, y)                                    # in each of 4 processes, rank = stage

One module per concept: `partition` (balance and split), `comm` (point-to-point transfers with
timeouts), `pipeline` (the GPipe schedule on one stage, re-materialisation), `memory` (activation
bytes held for backward), `launch` (spawned or torchrun processes, errors), `trace` (timeline,
Chrome trace, schedule picture, idle fractions), `simulate` (the schedule replayed from measured
times; the paper's Table 2), `train` (the pipelined step loop).
"""

from sutskever.parallel.launch import PipelineError, init_stage_group, spawn
from sutskever.parallel.partition import balance_by_cost, check_balance, split
from sutskever.parallel.pipeline import Event, Pipeline, PipelineConfig, scatter
from sutskever.parallel.simulate import PAPER_TABLE2, bubble_fraction, simulate

__all__ = ["PAPER_TABLE2", "Event", "Pipeline", "PipelineConfig", "PipelineError",
           "balance_by_cost", "bubble_fraction", "check_balance", "init_stage_group", "scatter",
           "simulate", "spawn", "split"]
