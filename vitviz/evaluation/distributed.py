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

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Shard", "World", "gather_to_root", "init_world", "shard_indices"]


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
            # heavy: torch, loaded when a process group is set up
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this module joined it."""
        if self.initialised:
            # heavy: torch, loaded when a process group is set up
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
    # heavy: torch, loaded when a process group is set up
    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if not launched_by_torchrun():
        return World(device=device)
    # heavy: torch, loaded when a process group is set up
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, device=device,
                 initialised=True)


class Shard(Sequence):
    """The data-set indices one rank evaluates, as ``DistributedSampler(shuffle=False)`` orders them, computed
    on demand: a data set of a billion images costs no memory until its images are evaluated.

    ``DistributedSampler`` pads the index list ``0 … length-1`` to a multiple of the world size by repeating
    it from the start, so its position ``j`` holds ``j % length``, and rank ``r`` takes positions
    ``r, r + size, r + 2 size, …``.

    Args:
        length: Images in the data set.
        world: The process group.
    """

    def __init__(self, length: int, world: World) -> None:
        self.length, self.rank, self.size = int(length), world.rank, world.size
        self.total = math.ceil(self.length / self.size) * self.size if self.length else 0

    def __len__(self) -> int:
        return len(range(self.rank, self.total, self.size))

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        position = range(self.rank, self.total, self.size)[k]
        return position % self.length

    def __iter__(self) -> Iterator[int]:
        return (position % self.length for position in range(self.rank, self.total, self.size))

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < self.length:
            return False
        return any(j % self.size == self.rank for j in range(index, self.total, self.length))


def shard_indices(length: int, world: World) -> Shard:
    """The data-set indices this rank evaluates: ``DistributedSampler(shuffle=False)``'s shard (padded),
    computed on demand (:class:`Shard`)."""
    return Shard(length, world)


def gather_to_root(obj: Any, world: World) -> list[Any] | None:
    """Every rank's ``obj`` on rank 0 (in rank order), None on the other ranks."""
    if not world.initialised:
        return [obj]
    # heavy: torch, loaded when a process group is set up
    import torch.distributed as dist

    gathered = [None] * world.size if world.is_root else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
