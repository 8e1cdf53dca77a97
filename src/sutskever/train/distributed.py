"""Data parallelism under torchrun: one process per device, gradients averaged by DDP.

    torchrun --nproc-per-node 4 -m sutskever run gpt --preset gpt2-124m

`init_from_env` joins the process group torchrun describes in the environment (NCCL on CUDA,
gloo on CPU) and picks this process's device. The trainer then splits each global batch across
the ranks (`RecipeData.shard`), wraps the model in DistributedDataParallel, and lets only rank 0
write the run directory and evaluate. Because every rank reads the same global batch and DDP
averages the gradients of equal shards, a step equals the single-process step on the whole
batch (up to floating-point summation order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sutskever.environment import pick_device
from sutskever.errors import UserError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_name: str) -> torch.device:
    """Join torchrun's process group; returns this rank's device."""
    device = pick_device(device_name)
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA "
                            f"devices; lower --nproc-per-node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise UserError(f"data-parallel training runs on cuda or cpu, not {device.type}")
    return device


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over the ranks (identity in a single process)."""
    if ranks().world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    if ranks().world > 1:
        dist.barrier()


def broadcast(obj: object) -> object:
    """Rank 0's `obj` on every rank."""
    if ranks().world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
