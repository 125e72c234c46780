"""Where a process stands in its job: torchrun's environment, read once; its rank and device.

A salibi command (``pretrain``, ``embed``) runs as

- one process (CPU or one GPU);
- one of N local ranks it starts itself (``--gpus N``, ``--cpu-procs N``) through torch's
  elastic launcher (:mod:`salibi.distributed.launcher`) -- the engine behind ``torchrun``;
- one rank of a larger job when started by torchrun (or SLURM + torchrun): ``RANK``,
  ``WORLD_SIZE`` and ``LOCAL_RANK`` are set, so it joins that job's process group.

The environment is read once per process, into a :class:`TorchrunEnv`, and passed on from there;
:func:`join` turns it into a :class:`Rank` (process group joined, device chosen), which also
carries the few collectives the commands need. torch is imported only where it is used, so the
environment can be read without it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from salibi.errors import DeviceError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Rank", "TorchrunEnv", "check_gpus", "join", "leave", "resolve_device", "shard"]

T = TypeVar("T")


@dataclass(frozen=True)
class TorchrunEnv:
    """The torchrun environment of a process that torchrun (or our own launcher) started as one
    rank of a job: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TorchrunEnv | None:
        """This process's torchrun environment (``os.environ`` by default); None when the
        process was not started as a rank (``RANK``, ``WORLD_SIZE`` or ``LOCAL_RANK`` unset)."""
        env = os.environ if environ is None else environ
        if not all(name in env for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
            return None
        world_size = int(env["WORLD_SIZE"])
        return cls(
            rank=int(env["RANK"]),
            world_size=world_size,
            local_rank=int(env["LOCAL_RANK"]),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
        )


@dataclass(frozen=True)
class Rank:
    """Where this process stands in the job (rank 0 of 1 without one), and its device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def max_over_ranks(self, value: int) -> int:
        """The largest of every rank's ``value`` (a small integer, e.g. a signal number), on every rank."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([float(value)], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (also a barrier)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out


def resolve_device(requested: str) -> torch.device:
    """``--device auto|cpu|cuda`` (or ``cuda:N``), spelled one way for every command: ``auto`` is
    CUDA when available, else the CPU; ``cuda`` without a GPU is a :class:`DeviceError`."""
    import torch

    if requested not in ("auto", "cpu", "cuda") and not requested.startswith("cuda:"):
        raise InputError(f"--device {requested}: expected auto, cpu or cuda")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is visible here; use --device cpu or auto")
    return torch.device(requested)


def check_gpus(requested: int) -> None:
    """``--gpus N`` against the GPUs this machine has: a DeviceError that says what to use instead."""
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested > available:
        raise DeviceError(
            f"--gpus {requested}: this machine has {available} usable CUDA GPU(s)"
            + (
                "; run on CPU processes with --cpu-procs N instead"
                if not available
                else f"; use --gpus {available} or fewer"
            )
        )


def join(
    env: TorchrunEnv | None, device: str = "cpu", backend: str | None = None, timeout: datetime.timedelta | None = None
) -> Rank:
    """This process's :class:`Rank`: the job's process group joined (when ``env`` is a rank of
    several) and its device picked from ``device`` (:func:`resolve_device`; a rank of several on
    CUDA computes on GPU ``LOCAL_RANK``). ``backend``: the process group's, by default NCCL on
    CUDA and gloo on the CPU (``salibi embed`` takes gloo for its few object collectives, also on
    GPUs); ``timeout``: how long a collective may wait for the slowest rank (torch's default when None).
    CPU ranks of one node share its cores instead of oversubscribing them."""
    import torch

    chosen = resolve_device(device)
    if env is None or env.world_size == 1:
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        return Rank(0, 0, 1, chosen)
    if chosen.type == "cuda":
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise DeviceError(f"LOCAL_RANK {env.local_rank} has no GPU: this node has {count}")
        chosen = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(chosen)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, env.local_world_size)))
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = backend or ("nccl" if chosen.type == "cuda" else "gloo")
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        if backend == "nccl":
            options["device_id"] = chosen
        dist.init_process_group(backend, **options)
    return Rank(env.rank, env.local_rank, env.world_size, chosen)


def leave() -> None:
    """Leave the job's process group, if this process joined one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items rank ``rank`` of ``world_size`` takes: every ``world_size``-th from ``rank``
    (deterministic, disjoint, covering every item)."""
    return list(items[rank::world_size])
