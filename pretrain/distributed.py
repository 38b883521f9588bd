"""Where a run executes: the device, and under `torchrun` the process group (nccl on CUDA, gloo on CPU).

Only rank 0 writes files or prints; every rank evaluates the same validation windows, and the logged
train loss is the mean over ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from pretrain.train_config import TrainConfigError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group torchrun set up (WORLD_SIZE > 1); a plain process is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                world_size=dist.get_world_size())


def finish_distributed(dist: Dist) -> None:
    """Wait for every rank (rank 0 may still be saving), then leave the process group."""
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()


def global_mean(value: torch.Tensor, dist: Dist) -> float:
    """The mean of a scalar over all ranks, so the logged train loss is the global batch's, not rank 0's."""
    if dist.world_size > 1:
        import torch.distributed as tdist

        value = value.clone()
        tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
        value /= dist.world_size
    return float(value.item())


def resolve_device(kind: str, dist: Dist | None = None) -> torch.device:
    """`auto`/`cpu`/`cuda` as a torch.device; a rank takes the GPU of its local rank."""
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise TrainConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto",
                              field="device")
        return torch.device("cuda", dist.local_rank if dist else 0)
    return torch.device("cpu")
