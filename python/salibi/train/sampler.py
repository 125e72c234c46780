"""Which samples form each optimizer step, independent of how many ranks share the work.

An epoch is a list of *global* batches, each drawn from one file (chips of one file share their
shapes and GSDs; files may differ). The plan depends only on the seed, the epoch, the file
sizes and the global batch size, so 1 process and N ranks see the same data in the same
order, and a resumed run continues exactly where the checkpoint left off. Each rank takes its
contiguous slice of every global batch, and each slice is cut into micro-batches for gradient
accumulation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class GlobalBatchPlan:
    """Deterministic global batches over several files.

    ``file_indices``: for each file, the dataset indices of its training samples.
    """

    def __init__(self, file_indices: Sequence[Sequence[int]], global_batch: int, seed: int) -> None:
        if global_batch < 1:
            raise ValueError("global_batch must be >= 1")
        self.file_indices = [np.asarray(list(indices), dtype=np.int64) for indices in file_indices]
        self.global_batch = global_batch
        self.seed = seed

    @property
    def steps_per_epoch(self) -> int:
        return sum(len(indices) // self.global_batch for indices in self.file_indices)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The global batches of ``epoch``, in order: (global_batch,) index arrays."""
        rng = np.random.default_rng([self.seed, epoch])
        batches: list[np.ndarray] = []
        for indices in self.file_indices:
            shuffled = rng.permutation(indices)
            whole = len(shuffled) // self.global_batch  # the remainder waits for the next epoch
            batches.extend(shuffled[i * self.global_batch : (i + 1) * self.global_batch] for i in range(whole))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]


def local_micro_batches(global_batch: np.ndarray, rank: int, world_size: int, accumulate: int) -> list[np.ndarray]:
    """This rank's share of one global batch, cut into ``accumulate`` equal micro-batches."""
    local = np.array_split(global_batch, world_size)[rank]
    return np.array_split(local, accumulate)


class MicroBatchSampler:
    """A DataLoader ``batch_sampler`` yielding this rank's micro-batches from ``start_step`` of
    ``epoch`` to the end of the epoch (or ``stop_step``); :meth:`go_to` moves it to another epoch,
    so one loader (and its workers) serves a whole run."""

    def __init__(
        self,
        plan: GlobalBatchPlan,
        epoch: int,
        start_step: int,
        rank: int,
        world_size: int,
        accumulate: int,
        stop_step: int | None = None,
    ) -> None:
        self.plan = plan
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate
        self.go_to(epoch, start_step, stop_step)

    def go_to(self, epoch: int, start_step: int, stop_step: int | None = None) -> None:
        """Yield the batches of ``epoch`` from ``start_step`` to ``stop_step`` from now on."""
        self.batches = self.plan.epoch(epoch)[start_step:stop_step]

    def __iter__(self) -> Iterator[list[int]]:
        for global_batch in self.batches:
            for micro in local_micro_batches(global_batch, self.rank, self.world_size, self.accumulate):
                yield micro.tolist()

    def __len__(self) -> int:
        return len(self.batches) * self.accumulate
