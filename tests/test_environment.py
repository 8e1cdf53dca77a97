from __future__ import annotations

import time

import torch

from sutskever.environment import median_seconds


def test_median_seconds_skips_the_warmup_and_takes_the_median() -> None:
    calls: list[int] = []
    pauses = {0: 0.2, 1: 0.0, 2: 0.05, 3: 0.0}  # the slow first call is the warm-up

    def fn(i: int) -> None:
        calls.append(i)
        time.sleep(pauses[i])

    seconds = median_seconds(fn, torch.device("cpu"), steps=3, warmup=1)
    assert calls == [0, 1, 2, 3]
    assert seconds < 0.04  # the median of ~0, ~0.05 and ~0, not the 0.2 s warm-up
