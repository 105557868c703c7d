"""Where training runs: the device (CPU or CUDA) and, under `torchrun`, the process group (gloo or nccl).

One process per device; `torchrun` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from digitrec.errors import DigitrecError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False  # created by us, so destroyed by us

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def mixed_precision(self) -> bool:
        """bf16 autocast on CUDA (safe for these small CNNs: no loss scaling needed); fp32 on CPU."""
        return self.device.type == "cuda"

    def sum_across_ranks(self, values: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.owns_process_group and dist.is_initialized():
            dist.destroy_process_group()


def choose_device(choice: str, local_rank: int = 0) -> torch.device:
    if choice not in DEVICES:
        raise DigitrecError(f"unknown device {choice!r}; choose one of {DEVICES}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DigitrecError("device 'cuda' asked for, but no CUDA GPU is available")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def setup_runtime(device: str = "auto") -> Runtime:
    """A single-process runtime, or join the process group that torchrun describes in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank)
    if world_size <= 1:
        return Runtime(chosen)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    return Runtime(chosen, dist.get_rank(), dist.get_world_size(), owns)
