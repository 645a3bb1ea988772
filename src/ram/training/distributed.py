"""Data-parallel training across processes, launched by torchrun.

``torchrun --nproc_per_node N scripts/train_mnist.py ...`` starts N copies of the same
program; torchrun tells each its place through the environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Each process holds a full copy of the model,
takes its own shard of every global batch and computes gradients on it;
DistributedDataParallel (DDP) averages the gradients across processes during backward,
so every copy takes the same optimizer step and the weights stay identical.

Since every loss term of the hybrid loss is a mean over the batch, averaging the
shards' gradients gives the gradient of the whole global batch: N processes with
``--batch_size B`` train like one process with batch N*B (the global batch).

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) nothing here does anything: one
process trains exactly as it always did.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from ..errors import RamError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands among the training processes."""
    rank: int = 0         # 0..world_size-1 over all machines
    world_size: int = 1
    local_rank: int = 0   # 0..(processes on this machine)-1; picks the GPU

    @property
    def is_main(self) -> bool:
        """The one process that writes logs, metrics, plots and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistInfo()


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise RamError(f"environment variable {name}={value!r} is not an integer; "
                       "launch with torchrun, which sets it") from None


def init_from_env(device_type: str, timeout: datetime.timedelta | None = None) -> DistInfo:
    """Join the process group torchrun set up, or return a single-process DistInfo.

    NCCL connects GPUs, gloo CPUs. On a GPU each process takes the GPU numbered by its
    local rank, so one machine runs one process per GPU. Nothing is initialised when
    WORLD_SIZE is absent or 1.
    """
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") <= 1:
        return SINGLE
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RamError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} "
                       "is not; launch with torchrun (or unset WORLD_SIZE to train in one process)")
    info = DistInfo(rank=_env_int("RANK"), world_size=_env_int("WORLD_SIZE"),
                    local_rank=_env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0)
    if device_type == "cuda":
        available = torch.cuda.device_count()
        if info.local_rank >= available:
            raise RamError(f"process with local rank {info.local_rank} has no GPU: only {available} "
                           f"visible on this machine; use --nproc_per_node {max(available, 1)} or fewer")
        torch.cuda.set_device(info.local_rank)  # before NCCL starts, so it binds the right GPU
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size,
                                **({"timeout": timeout} if timeout is not None else {}))
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """The device this process trains on: its own GPU under torchrun (``cuda:<local rank>``)."""
    if device.type == "cuda" and info.distributed:
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: nn.Module, info: DistInfo) -> nn.Module:
    """The module to call in the training step: DDP across processes, else the model itself.

    Keep the unwrapped model for everything else (evaluation, ``predict_proba``,
    ``state_dict`` without a ``module.`` prefix): DDP shares its parameters.

    Parameters without a gradient: DDP waits for a gradient of every parameter before
    it finishes the step, so a parameter that never gets one (the location network
    of ``--model random``, which never chooses where to look; the location and
    baseline networks when there is one glimpse) would stall it. The usual cure,
    ``find_unused_parameters=True``, walks the autograd graph after every forward.
    The unrolled glimpse loop builds the same graph at every step (fixed number of
    glimpses, same loss terms), so ``static_graph=True`` is used instead: DDP finds
    the unused parameters once, in the first step, and skips them from then on at no
    further cost. For the default RAM every parameter gets a gradient every step and
    the setting changes nothing.

    Wrapping broadcasts rank 0's parameters to every process, so all copies start
    from the same weights whatever their seeds.
    """
    if not info.distributed:
        return model
    device = next(model.parameters()).device
    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, static_graph=True)


def seed_epoch(seed: int, epoch: int, info: DistInfo) -> None:
    """Seed the global RNG (location sampling) for this epoch, differently on every rank.

    The policy's exploration noise comes from the global torch RNG. Every rank must
    draw its own noise, or the ranks' shards would share the same glimpse paths; and a
    run resumed from a checkpoint (which holds rank 0's RNG state only) must give each
    rank back its own stream. Seeding from (seed, epoch, rank) at the start of each
    epoch does both. One process keeps its saved-RNG behaviour: nothing is done.
    """
    if not info.distributed:
        return
    digest = hashlib.blake2b(f"{seed}/{epoch}/{info.rank}".encode(), digest_size=8).digest()
    torch.manual_seed(int.from_bytes(digest, "little") >> 1)  # 63 bits: a valid seed


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks (a new tensor), so logged metrics are global.

    Every rank runs the same number of steps, so the mean of the ranks' per-epoch
    metric sums divided by the steps is the mean over the whole epoch.
    """
    if not info.distributed:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here."""
    if not info.distributed:
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[info.local_rank])
    else:
        dist.barrier()


@contextlib.contextmanager
def local_main_first(info: DistInfo) -> Iterator[None]:
    """Run the block on each machine's local rank 0 first, then on the other ranks.

    For work that fills a cache on disk, such as downloading MNIST: one download per
    machine, then the others read the files it wrote.
    """
    first = info.local_rank == 0
    if not first:
        barrier(info)
    yield
    if first:
        barrier(info)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (at the end of training)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
