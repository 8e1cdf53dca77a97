"""Starting the stages: one process per stage, spawned here or launched by torchrun.

    results = spawn(worker, stages, *args)     # worker(stage, *args) in `stages` new processes
    torchrun --nproc-per-node K script.py      # the script calls init_stage_group() first

Each process joins one process group (gloo on CPU, NCCL on CUDA; rank k is stage k) whose
collectives time out after `timeout_s`. A stage that raises reports its error to the launcher,
which stops the other stages at once and raises that error here: a UserError as a UserError (its
one-line message, prefixed by the stage), anything else as a `PipelineError` carrying the stage's
traceback. A stage that dies without a word (killed, out of memory) is reported by exit code.
Under torchrun, torchrun itself stops the other ranks when one fails; the timeouts on every
transfer make sure none waits for ever.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import pickle
import queue
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from sutskever.errors import UserError

__all__ = ["PipelineError", "init_stage_group", "spawn", "stage_device"]


class PipelineError(RuntimeError):
    """A stage of a pipeline failed; the message names the stage and its error."""


def stage_device(rank: int, backend: str) -> torch.device:
    """CUDA device `LOCAL_RANK` (or the rank) under NCCL, else the CPU."""
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", rank))
        if local >= torch.cuda.device_count():
            raise UserError(f"stage {rank} needs CUDA device {local} but there are "
                            f"{torch.cuda.device_count()}; use fewer stages per machine")
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def default_backend(device: str = "auto") -> str:
    if device == "cpu" or not torch.cuda.is_available():
        return "gloo"
    return "nccl"


def init_stage_group(backend: str = "auto", timeout_s: float = 300.0) -> torch.device:
    """Join the process group torchrun describes in the environment; returns this stage's
    device."""
    backend = default_backend() if backend == "auto" else backend
    rank = int(os.environ.get("RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return stage_device(rank, backend)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, backend: str, timeout_s: float, threads: int | None,
           worker: Callable[..., Any], args: tuple, results: Any) -> None:
    try:
        if threads:
            torch.set_num_threads(threads)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
        device = stage_device(rank, backend)
        # plain pickle: by value (torch's queue pickler would pass tensors as shared memory that
        # dies with this process)
        results.put((rank, "ok", pickle.dumps(worker(rank, device, *args))))
    except BaseException as e:  # noqa: BLE001 - every failure goes to the launcher
        results.put((rank, "error", (isinstance(e, UserError), type(e).__name__,
                                     str(e).strip().splitlines()[0] if str(e).strip() else "",
                                     traceback.format_exc())))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(worker: Callable[..., Any], stages: int, *args: Any, backend: str = "auto",
          timeout_s: float = 300.0, threads: int | None = None) -> list[Any]:
    """Run `worker(stage, device, *args)` in `stages` new processes on this machine, joined in
    one process group; returns the workers' results in stage order.

    `worker` and `args` must be picklable (a module-level function). `threads` sets each
    process's torch threads (e.g. 1 when the stages share few CPU cores).
    """
    backend = default_backend() if backend == "auto" else backend
    if backend == "nccl" and torch.cuda.device_count() < stages:
        raise UserError(f"{stages} stages need {stages} CUDA devices, this machine has "
                        f"{torch.cuda.device_count()}; use fewer stages or --device cpu")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_entry, args=(rank, stages, port, backend, timeout_s, threads,
                                               worker, args, results), daemon=True)
             for rank in range(stages)]
    for p in procs:
        p.start()
    done: dict[int, Any] = {}
    errors: list[tuple[int, tuple]] = []
    try:
        while len(done) < stages:
            try:
                rank, status, payload = results.get(timeout=0.5)
            except queue.Empty:
                dead = [k for k, p in enumerate(procs)
                        if p.exitcode not in (None, 0) and k not in done]
                if dead and not errors:
                    time.sleep(0.5)  # its own report may still be in flight
                    if results.empty():
                        raise PipelineError(f"stage {dead[0]} died with exit code "
                                            f"{procs[dead[0]].exitcode} and no error message "
                                            f"(killed, or out of memory?)") from None
                continue
            if status == "ok":
                done[rank] = pickle.loads(payload)
                continue
            errors.append((rank, payload))
            # the first failure makes its neighbours fail too; wait a moment for every report
            # and blame the stage whose error is not a consequence of another's
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and len(done) + len(errors) < stages:
                try:
                    rank, status, payload = results.get(timeout=0.1)
                except queue.Empty:
                    continue
                if status == "error":
                    errors.append((rank, payload))
            reported = {k for k, _ in errors} | set(done)
            silent = {k: p.exitcode for k, p in enumerate(procs)
                      if k not in reported and p.exitcode not in (None, 0)}
            raise _stage_error(errors, silent)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
        results.close()
    return [done[k] for k in range(stages)]


def _stage_error(errors: list[tuple[int, tuple]], silent: dict[int, int]) -> Exception:
    def consequence(payload: tuple) -> bool:
        return payload[1] == "PipelineTimeout" or "Connection closed by peer" in payload[2]

    cause = next((e for e in errors if not consequence(e[1])), None)
    if cause is None and silent:  # a stage died without a word; the others only noticed
        rank, code = next(iter(silent.items()))
        return PipelineError(f"stage {rank} died with exit code {code} and no error message "
                             f"(killed, or out of memory?); the other stages then lost it")
    rank, (user, name, message, tb) = cause or errors[0]
    if user:
        return UserError(f"stage {rank}: {message}")
    error = PipelineError(f"stage {rank} of the pipeline failed: {name}: {message}")
    error.add_note(f"the stage's traceback:\n{tb}")
    return error
