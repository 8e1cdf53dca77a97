"""The one trainer: loop, optimizers and schedules, checkpoint/resume, metrics, progress."""

from sutskever.train.trainer import Interrupted, RunSpec, evaluate_run, train

__all__ = ["Interrupted", "RunSpec", "evaluate_run", "train"]
