"""One evaluation over several processes, GPUs or machines: ``torch.distributed`` as ``torchrun`` sets it up.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``),
each process joins the default process group (``nccl`` on CUDA, ``gloo`` on CPU), takes its shard of the
data set from ``torch.utils.data.DistributedSampler`` (``shuffle=False``) and sends its results to rank 0
(``gather_object``), which writes the one table. Run plainly, it is a world of one and nothing is
initialised.

``DistributedSampler`` pads the data set by repeating its first items so that every shard has the same
length: an image may be evaluated on two ranks. The results are keyed by image id, so rank 0 keeps one
copy (the computation is deterministic, so both copies are equal).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["World", "gather_to_root", "init_world", "shard_indices"]


@dataclass(frozen=True)
class World:
    """Where this process stands.

    Attributes:
        rank: This process's rank (0 for a plain run).
        size: Number of processes.
        local_rank: Rank on this machine (picks the GPU).
        device: ``'cuda:<local_rank>'`` or ``'cpu'``.
        initialised: True when this module started the process group (and must end it).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialised: bool = False

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a world of one)."""
        if self.initialised:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this module joined it."""
        if self.initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """Whether the environment carries ``torchrun``'s rank variables."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_world(device: str | None = None) -> World:
    """Join the process group when launched by ``torchrun``; a world of one otherwise.

    Args:
        device: ``'cpu'``, ``'cuda'`` or a full device name; by default CUDA when available (one GPU per local
            rank), else the CPU.

    Returns:
        The :class:`World`; call ``close()`` when done.
    """
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if not launched_by_torchrun():
        return World(device=device)
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, device=device,
                 initialised=True)


def shard_indices(length: int, world: World) -> list[int]:
    """The data-set indices this rank evaluates: ``DistributedSampler(shuffle=False)``'s shard (padded)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(length), num_replicas=world.size, rank=world.rank, shuffle=False)
    return list(sampler)


def gather_to_root(obj: Any, world: World) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (in rank order), None on the other ranks."""
    if not world.initialised:
        return [obj]
    import torch.distributed as dist

    gathered = [None] * world.size if world.is_root else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
