"""Several ranks for one ``salibi embed``: ``--gpus N`` / ``--cpu-procs N`` start N local ranks with
torch's elastic launcher (the engine of ``torchrun``, :func:`salibi.train.distributed.launch_local`);
started by torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set, read once into a
:class:`salibi.train.distributed.TorchrunEnv`), the process is one rank of that job.

Rank 0 checks and locks the output, plans the work and broadcasts the list of work items; rank
``r`` of ``N`` takes items ``r, r + N, r + 2N, ...`` (:func:`shard`: deterministic, disjoint,
covering every item); each rank writes its own part files; once every rank has finished (a
gather of their counts), rank 0 merges. The work list is built from what the output and all its
parts hold, whoever wrote them, so a run resumes on any number of ranks. Ranks coordinate over
gloo (a few pickled objects: no tensor crosses ranks), also on GPUs.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from salibi.errors import DeviceError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from salibi.train.distributed import TorchrunEnv

__all__ = ["RankContext", "join", "leave", "rank_device", "shard"]

T = TypeVar("T")
# A rank may wait long for the slowest one at the final gather (items differ in cost).
_TIMEOUT = datetime.timedelta(hours=24)


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items rank ``rank`` of ``world_size`` embeds: every ``world_size``-th from ``rank``."""
    return list(items[rank::world_size])


@dataclass(frozen=True)
class RankContext:
    """Where this process stands in the job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
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


def join(env: TorchrunEnv | None) -> RankContext:
    """Join the job's process group (gloo) when ``env`` is a rank of several; else a single process."""
    if env is None or env.world_size == 1:
        return RankContext()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=_TIMEOUT)
    # CPU ranks share the cores instead of oversubscribing them.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, env.local_world_size)))
    return RankContext(env.rank, env.world_size, env.local_rank, env.local_world_size)


def leave(context: RankContext) -> None:
    if context.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def rank_device(requested: str, context: RankContext) -> torch.device:
    """This rank's device: ``requested`` (auto/cpu/cuda) with CUDA ranks on GPU ``LOCAL_RANK``."""
    import torch

    from salibi.devices import resolve_device

    device = resolve_device(requested)
    if device.type != "cuda" or not context.distributed:
        return device
    count = torch.cuda.device_count()
    if context.local_rank >= count:
        raise DeviceError(f"LOCAL_RANK {context.local_rank} has no GPU: this node has {count}")
    torch.cuda.set_device(context.local_rank)
    return torch.device("cuda", context.local_rank)
