"""A pipeline's timeline: idle fractions, a Chrome trace (Perfetto) and a picture of the schedule.

A stage is busy while it computes (forward, recompute, backward) and idle otherwise. Over one
step's pipeline window, from the first forward on any stage to the last backward on any stage,
stage k's idle fraction is 1 - busy_k / window. GPipe's analysis (section 2.3) says that with K
equal stages and M micro-batches the window holds M + K - 1 slots per phase of which each stage
is busy in M, so the idle fraction ("bubble") is (K-1)/(M+K-1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sutskever.parallel.pipeline import Event

__all__ = ["chrome_trace", "idle_fractions", "plot_schedule", "write_chrome_trace"]

_COLOURS = {"forward": "#4C72B0", "recompute": "#8FB0DE", "backward": "#DD8452"}


def _by_step(events: Sequence[Event]) -> dict[int, list[Event]]:
    steps: dict[int, list[Event]] = {}
    for e in events:
        steps.setdefault(e.step, []).append(e)
    return steps


def idle_fractions(events: Sequence[Event], stages: int) -> list[float]:
    """Each stage's idle fraction of the pipeline window, averaged over the steps traced."""
    totals = [0.0] * stages
    steps = _by_step(events)
    for step_events in steps.values():
        start = min(e.start for e in step_events)
        window = max(e.end for e in step_events) - start
        for k in range(stages):
            busy = sum(e.end - e.start for e in step_events if e.stage == k)
            totals[k] += 1.0 - busy / window if window > 0 else 0.0
    return [t / max(len(steps), 1) for t in totals]


def chrome_trace(events: Sequence[Event], stages: int) -> dict:
    """The events, and the idle gaps between them, in the Chrome trace event format: one
    process per stage, times in microseconds (steps laid end to end)."""
    trace: list[dict] = []
    offset = 0.0
    for step, step_events in sorted(_by_step(events).items()):
        start = min(e.start for e in step_events)
        end = max(e.end for e in step_events)
        for k in range(stages):
            mine = sorted((e for e in step_events if e.stage == k), key=lambda e: e.start)
            cursor = start
            for e in mine:
                if e.start > cursor:
                    trace.append(_x("idle", "idle", cursor, e.start, offset, k, step))
                trace.append(_x(f"{e.kind[0].upper()}{e.micro}", e.kind, e.start, e.end, offset,
                                k, step))
                cursor = max(cursor, e.end)
            if end > cursor:
                trace.append(_x("idle", "idle", cursor, end, offset, k, step))
        offset += end - start
    meta = [{"name": "process_name", "ph": "M", "pid": k, "args": {"name": f"stage {k}"}}
            for k in range(stages)]
    return {"traceEvents": meta + trace, "displayTimeUnit": "ms"}


def _x(name: str, cat: str, start: float, end: float, offset: float, stage: int,
       step: int) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "pid": stage, "tid": 0,
            "ts": round((offset + start) * 1e6, 3), "dur": round((end - start) * 1e6, 3),
            "args": {"step": step}}


def write_chrome_trace(path: str | Path, events: Sequence[Event], stages: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(chrome_trace(events, stages)))
    return path


def plot_schedule(path: str | Path, events: Sequence[Event], stages: int, title: str = "",
                  step: int | None = None) -> Path:
    """One step's schedule as in the paper's Figure 2(c): a row per stage, F/B boxes labelled
    with the micro-batch, idle time blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = _by_step(events)
    chosen = steps[step if step is not None else max(steps)]
    start = min(e.start for e in chosen)
    fig, ax = plt.subplots(figsize=(9, 0.6 * stages + 1.4))
    for e in chosen:
        x0, width = (e.start - start) * 1e3, (e.end - e.start) * 1e3
        ax.broken_barh([(x0, width)], (e.stage - 0.4, 0.8), facecolors=_COLOURS[e.kind],
                       edgecolors="white", linewidth=0.5)
        ax.text(x0 + width / 2, e.stage, f"{e.kind[0].upper()}{e.micro}", ha="center",
                va="center", fontsize=7, color="white", clip_on=True)
    idle = idle_fractions(chosen, stages)
    ax.set_yticks(range(stages), [f"stage {k}\nidle {100 * idle[k]:.0f}%" for k in range(stages)])
    ax.invert_yaxis()
    ax.set_xlabel("time in the step (ms)")
    handles = [matplotlib.patches.Patch(color=c, label=k) for k, c in _COLOURS.items()
               if any(e.kind == k for e in chosen)]
    ax.legend(handles=handles, fontsize=7, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
