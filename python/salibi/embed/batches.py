"""Batching chips through the model (step 7 of :mod:`salibi.embed`) and writing finished rows as parts.

- :class:`WindowBatches`: windows of unimodal chips queued by (modality, GSD, size) and run
  through their encoder ``batch_size`` at a time; a chip's row is the mean of the tokens of its
  patches that hold pixels, over all its windows (a token-count-weighted mean of the windows);
  in the shared space (``shared``) that mean projected by the modality's contrastive head
  (:meth:`~salibi.models.ScaleAlibiModel.project`), the rows finished by one pass projected together.
- :class:`JointBatches`: aligned chips queued by (modalities, sizes, GSDs) and run through the
  cross-modal encoder (:meth:`~salibi.models.ScaleAlibiModel.encode_joint`); the row is the mean
  over modalities of each modality's mean joint token.
- :class:`PartWriter`: finished rows, failures and no-data skips written as part files, so a
  killed run loses little: the first once ``batch_size`` rows are finished, then once
  ``batch_size`` rows are and :data:`PART_SECONDS` have passed, and at least every
  :data:`FLUSH_SECONDS`. Each part costs a file, two syncs and a step of the merge, so parts
  are not written more often than that however small the chips.

On CUDA the forward passes run under bf16 autocast; pooling sums are float64 on the CPU.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.embed.records import Chip, Rows

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from salibi.embed.output.store import EmbeddingStore

__all__ = ["FLUSH_SECONDS", "PART_SECONDS", "JointBatches", "PartWriter", "WindowBatches"]

#: Finished rows are written to a part file at least this often.
FLUSH_SECONDS = 10.0
#: ... and, after the first part, at most this often.
PART_SECONDS = 1.0

OnRow = Callable[[Chip, np.ndarray], None]


class PartWriter:
    """Rows, failures and skips of one rank, written as ``part-RUN-RANK-SEQ.h5`` files;
    ``seconds``: the time spent writing them."""

    def __init__(self, store: EmbeddingStore, batch_size: int, run: int, rank: int) -> None:
        self.store, self.batch_size, self.run, self.rank = store, batch_size, run, rank
        self.rows = Rows()
        self.sequence = 0
        self.last_flush = time.perf_counter()
        self.seconds = 0.0

    def add_row(self, chip: Chip, embedding: np.ndarray) -> None:
        self.rows.add(chip, embedding)

    def add_failure(self, chip: Chip) -> None:
        self.rows.failed[chip.path] = chip.failure or ""

    def add_skip(self, chip: Chip) -> None:
        self.rows.skipped[chip.path] = chip.skipped or ""

    def flush(self, force: bool = False) -> None:
        """Write the rows held as a part when one is due (see the module docstring) or ``force``."""
        if not len(self.rows):
            return
        started = time.perf_counter()
        since = started - self.last_flush
        batch = len(self.rows) >= self.batch_size and (self.sequence == 0 or since >= PART_SECONDS)
        if force or batch or since >= FLUSH_SECONDS:
            self.store.write_part(self.rows, self.run, self.rank, self.sequence)
            self.sequence += 1
            self.rows = Rows()
            self.last_flush = time.perf_counter()
            self.seconds += self.last_flush - started


def _stack(arrays: list[Any]) -> Any:
    """One tensor of CPU arrays or tensors, stacked by numpy: ``torch.stack`` copies with its
    intra-op threads, which wait on each other when reader threads hold a core (0.1-0.6 s instead
    of 2 ms for a batch of 64 tiles of 128 px on 2 busy cores)."""
    import torch

    return torch.from_numpy(np.stack([np.asarray(a) for a in arrays]))


def _autocast(device: torch.device) -> Any:
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@dataclass
class _Pooling:
    """A chip whose windows are (partly) through the model: the sum and count of its tokens so far."""

    chip: Chip
    windows_left: int
    token_sum: Any = None  # (D,) float64
    token_count: int = 0


class WindowBatches:
    """Windows queued by (modality, GSD, height, width), run through the encoder ``batch_size`` at a
    time; ``on_row`` gets each chip's row, ``after_batch`` is called after each forward pass.
    ``seconds``: the time spent in batches (stacking, the forward pass, pooling)."""

    def __init__(
        self,
        model: Any,
        device: torch.device,
        batch_size: int,
        on_row: OnRow,
        after_batch: Callable[[], None],
        shared: bool = False,
    ) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self.on_row, self.after_batch = on_row, after_batch
        self.shared = shared
        self.seconds = 0.0
        self.pooling: dict[int, _Pooling] = {}
        # key -> queued windows [(chip id, window, token mask)], oldest group first
        self.queues: OrderedDict[tuple, list[tuple[int, Any, Any]]] = OrderedDict()
        self.queued = 0
        self._next_id = 0

    def add(self, chip: Chip) -> None:
        windows, masks = chip.windows, chip.token_masks
        ident, self._next_id = self._next_id, self._next_id + 1
        self.pooling[ident] = _Pooling(chip, windows_left=windows.shape[0])
        key = (chip.modality, chip.gsd, windows.shape[-2], windows.shape[-1])
        for w, m in zip(np.asarray(windows), np.asarray(masks)):  # numpy views: no tensor per window
            self.queues.setdefault(key, []).append((ident, w, m))
            self.queued += 1
            if len(self.queues[key]) >= self.batch_size:
                self._run(key)
        chip.windows = chip.token_masks = None
        # Bound memory when chips of many sizes arrive: run the oldest group early.
        while self.queued > 2 * self.batch_size:
            self._run(next(iter(self.queues)))

    def drain(self) -> None:
        while self.queues:
            self._run(next(iter(self.queues)))

    def _run(self, key: tuple) -> None:
        started = time.perf_counter()
        self._forward(key)
        self.seconds += time.perf_counter() - started
        self.after_batch()

    def _forward(self, key: tuple) -> None:
        import torch

        group = self.queues.pop(key)
        self.queued -= len(group)
        modality, gsd = key[0], key[1]
        images = _stack([w for _, w, _ in group]).to(self.device)
        masks = _stack([m for _, _, m in group]).to(self.device)
        with torch.inference_mode(), _autocast(self.device):
            tokens = self.model.encode(images, modality=modality, gsd=gsd)
        weights = masks.to(torch.float32).unsqueeze(-1)
        # float64 sums on the CPU: a chip's windows may come in several batches
        sums = (tokens.float() * weights).sum(dim=1).double().cpu().numpy()  # (B, D)
        counts = masks.sum(dim=1).cpu().tolist()
        finished: list[tuple[Chip, np.ndarray]] = []
        for (ident, _, _), row_sum, count in zip(group, sums, counts):
            entry = self.pooling[ident]
            entry.token_sum = row_sum if entry.token_sum is None else entry.token_sum + row_sum
            entry.token_count += int(count)
            entry.windows_left -= 1
            if entry.windows_left == 0:
                del self.pooling[ident]
                finished.append((entry.chip, (entry.token_sum / entry.token_count).astype(np.float32)))
        if self.shared and finished:
            pooled = torch.from_numpy(np.stack([row for _, row in finished])).to(self.device)
            with torch.inference_mode():
                projected = self.model.project(pooled, modality).cpu().numpy()
            finished = [(chip, row) for (chip, _), row in zip(finished, projected)]
        for chip, row in finished:
            self.on_row(chip, row)


class JointBatches:
    """Aligned chips queued by (modalities, sizes, GSDs), run through the cross-modal encoder
    ``batch_size`` at a time; ``seconds`` as for :class:`WindowBatches`."""

    def __init__(
        self, model: Any, device: torch.device, batch_size: int, on_row: OnRow, after_batch: Callable[[], None]
    ) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self.on_row, self.after_batch = on_row, after_batch
        self.seconds = 0.0
        self.queues: OrderedDict[tuple, list[Chip]] = OrderedDict()

    def add(self, chip: Chip) -> None:
        assert chip.images is not None and chip.gsds is not None
        key = tuple((m, tuple(x.shape), chip.gsds[m]) for m, x in chip.images.items())
        self.queues.setdefault(key, []).append(chip)
        if len(self.queues[key]) >= self.batch_size:
            self._run(key)
        while sum(len(q) for q in self.queues.values()) > 2 * self.batch_size:
            self._run(next(iter(self.queues)))

    def drain(self) -> None:
        while self.queues:
            self._run(next(iter(self.queues)))

    def _run(self, key: tuple) -> None:
        started = time.perf_counter()
        self._forward(key)
        self.seconds += time.perf_counter() - started
        self.after_batch()

    def _forward(self, key: tuple) -> None:
        import torch

        chips = self.queues.pop(key)
        modalities = [m for m, _, _ in key]
        images = {m: _stack([c.images[m] for c in chips]).to(self.device) for m in modalities}  # type: ignore[index]
        masks = {m: _stack([c.image_masks[m] for c in chips]).to(self.device) for m in modalities}  # type: ignore[index]
        gsd = {m: g for m, _, g in key}
        with torch.inference_mode(), _autocast(self.device):
            joint = self.model.encode_joint(images, gsd)
        means = []
        for m in modalities:
            weights = masks[m].to(torch.float32).unsqueeze(-1)
            means.append((joint[m].float() * weights).sum(dim=1) / weights.sum(dim=1))  # (B, D)
        rows = torch.stack(means).mean(dim=0).cpu().numpy()
        for chip, row in zip(chips, rows):
            chip.images = chip.image_masks = None
            self.on_row(chip, row)
