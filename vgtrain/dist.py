"""Distributed set-up in one place (torchrun DDP; gloo on CPU, nccl on CUDA).

Launch K processes with ``torchrun --nproc-per-node K --no-python vgtrain fit ...`` (or ``vgtrain
fit --nproc K``): torchrun sets RANK, LOCAL_RANK and WORLD_SIZE. Only rank 0 logs and writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vgtrain.errors import VgtrainError


@dataclass(frozen=True)
class DistInfo:
    ddp: bool
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on the process that logs and writes (rank 0)."""
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    """Initialise DDP when launched by torchrun (WORLD_SIZE > 1); pick the device.

    ``device``: "auto" (CUDA if available, else CPU), "cpu" or "cuda" (``cuda:N`` too); anything else, or
    "cuda" where torch sees no CUDA device, is a :class:`VgtrainError`.
    """
    if device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", device):
        raise VgtrainError(f"--device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise VgtrainError(
            f"--device {device}: this torch ({torch.__version__}) sees no CUDA device; "
            "use --device cpu (or auto), and see `vgtrain env`"
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        return DistInfo(True, rank, local_rank, world_size, dev)
    return DistInfo(False, 0, 0, 1, torch.device("cuda" if use_cuda else "cpu"))


def average_gradients(parameters, world_size: int) -> None:
    """All-reduce (mean) the gradients of parameters that DDP does not manage (the group classifier)."""
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size


def cleanup(info: DistInfo) -> None:
    if info.ddp and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers before each forward, so after the last step every rank holds the
    statistics of its own last batch; calling this at the end of an epoch makes all ranks hold
    the model rank 0 validates and saves.
    """
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
