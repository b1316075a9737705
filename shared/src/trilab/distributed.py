"""Process-group set-up for ``torchrun``; a single-process context when not launched by it.

``torchrun`` exports RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.  Each process
drives one GPU (``cuda:LOCAL_RANK``, NCCL) or, without GPUs, runs on the CPU with gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trilab.device import select_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    is_distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes checkpoints."""
        return self.rank == 0

    def wrap_model(self, model: torch.nn.Module, **ddp_kwargs) -> torch.nn.Module:
        if not self.is_distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def close(self) -> None:
        if self.is_distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        self.is_distributed = False

    def __enter__(self) -> DistContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes, or return a single-process context."""
    if not launched_by_torchrun():
        return DistContext(device=select_device(device))
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = select_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        device=chosen,
        is_distributed=True,
    )
