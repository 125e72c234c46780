"""A ``salibi embed`` run: checks, the checkpoint, the loop that reads tiles, batches their windows
through the encoder and pools the tokens into rows (step 7 of :mod:`salibi.embed`), and its summary.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.devices import resolve_device
from salibi.embed.store import EmbeddingStore, Rows, output_attrs
from salibi.embed.tiles import (
    DEFAULT_WINDOW_PATCHES,
    TILE_SUFFIXES,
    ModalitySpec,
    ReadSettings,
    Tile,
    TileReader,
    find_tiles,
)
from salibi.errors import InputError, MissingInputError
from salibi.progress import RateProgress
from salibi.vocabulary import MODALITIES

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FLUSH_SECONDS", "EmbedSummary", "embed_folder", "embed_tiles"]

#: Finished rows are written to a part file at least this often.
FLUSH_SECONDS = 10.0


@dataclass
class EmbedSummary:
    """What :func:`embed_folder` did."""

    output: Path
    tiles_found: int
    embedded: int  # rows added by this run
    skipped: int  # tiles already in the output (or its parts) before this run
    failed: int  # tiles this run could not embed
    rows: int  # rows in the output now
    seconds: float
    device: str
    checkpoint: Path
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run
    notes: list[str] = field(default_factory=list)

    @property
    def tiles_per_second(self) -> float:
        done = self.embedded + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0

    def format(self, max_failures: int = 5) -> str:
        """The summary line (and the first failures, notes) that ``salibi embed`` prints."""
        lines = [
            f"embedded {self.embedded}, skipped {self.skipped} (already in the output), failed {self.failed} "
            f"of {self.tiles_found} tiles in {self.seconds:.1f} s ({self.tiles_per_second:.1f} tiles/s) on "
            f"{self.device} -> {self.output} ({self.rows} rows)"
        ]
        for path, reason in self.failures[:max_failures]:
            lines.append(f"  failed: {path}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (see /failed_path, /failed_reason)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def embed_folder(
    tiles_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    modality: str = "auto",
    gsd: float | None = None,
    batch_size: int = 32,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
    window_patches: int = DEFAULT_WINDOW_PATCHES,
) -> EmbedSummary:
    """Embed every tile under ``tiles_dir`` with the checkpoint's encoders into ``output``
    (HDF5 ``salibi-embeddings`` v1), skipping tiles already there. See :mod:`salibi.embed`."""
    started = time.perf_counter()
    tiles_dir, output = Path(tiles_dir), Path(output)
    if modality != "auto" and modality not in MODALITIES:
        raise InputError(f"--modality {modality}: expected auto, {', '.join(MODALITIES)}")
    if gsd is not None and not (math.isfinite(gsd) and gsd > 0):
        raise InputError(f"--gsd {gsd}: must be a positive number of metres per pixel")
    if batch_size < 1 or num_workers < 0 or window_patches < 1:
        raise InputError("--batch-size and the window must be at least 1, --num-workers at least 0")
    if not tiles_dir.exists():
        raise MissingInputError(f"{tiles_dir}: no such folder; give the folder that holds the tiles")
    if not tiles_dir.is_dir():
        raise InputError(f"{tiles_dir}: not a folder; give the folder that holds the tiles")
    found = find_tiles(tiles_dir)
    if not found:
        raise MissingInputError(
            f"{tiles_dir}: no tiles found (looked for {', '.join(TILE_SUFFIXES)} files in it and its subfolders)"
        )

    from salibi.models import load_checkpoint

    torch_device = resolve_device(device)
    model = load_checkpoint(checkpoint, map_location=torch_device)
    if modality != "auto" and modality not in model.modalities:
        raise InputError(
            f"--modality {modality}: the checkpoint {model.checkpoint_path} has no {modality} encoder "
            f"(it has {', '.join(model.modalities)})"
        )
    checkpoint_folder = Path(model.checkpoint_path or checkpoint)
    store = EmbeddingStore(output, output_attrs(model, checkpoint_folder), int(model.config.dim))
    try:
        done, damaged = store.prepare()
        todo = [(i, rel, path) for i, (rel, path) in enumerate(found) if rel not in done]
        summary = EmbedSummary(
            output=output,
            tiles_found=len(found),
            embedded=0,
            skipped=len(found) - len(todo),
            failed=0,
            rows=0,
            seconds=0.0,
            device=str(torch_device),
            checkpoint=checkpoint_folder,
            notes=damaged,
        )
        settings = ReadSettings(
            modality=modality,
            default_gsd=gsd,
            specs=checkpoint_specs(model),
            patch_size=int(model.config.patch_size),
            window_patches=window_patches,
        )
        per_tile_normalised = embed_tiles(
            model, todo, settings, store, summary, torch_device, batch_size, num_workers, progress
        )
        summary.rows = store.merge()
    finally:
        store.close()
    if per_tile_normalised:
        summary.notes.append(
            f"the checkpoint has no normalisation statistics for {', '.join(sorted(per_tile_normalised))}: "
            "those tiles were normalised per tile and band"
        )
    summary.seconds = time.perf_counter() - started
    return summary


def checkpoint_specs(model: Any) -> dict[str, ModalitySpec]:
    """Per modality of ``model``: its band count and the band names and statistics saved with it
    (a list of the wrong length counts as missing)."""
    specs = {}
    for m in model.modalities:
        info = model.modality_info.get(m) or {}
        channels = int(model.config.channels[m])
        bands, mean, std = (_per_band(info.get(key), channels) for key in ("bands", "mean", "std"))
        specs[m] = ModalitySpec(channels=channels, bands=bands, mean=mean, std=std)
    return specs


def _per_band(values: Any, channels: int) -> tuple | None:
    return tuple(values) if values is not None and len(values) == channels else None


# -- the loop ------------------------------------------------------------------------------------


def _keep_as_is(item: Any) -> Any:
    """The DataLoader's collate function: tiles arrive one by one (module level: workers pickle it)."""
    return item


def read_tiles(todo: list, settings: ReadSettings, num_workers: int, pin: bool) -> Iterator[Tile]:
    """The tiles of ``todo`` in order, read here or by ``num_workers`` processes."""
    reader = TileReader(todo, settings)
    if num_workers == 0:
        return (reader[i] for i in range(len(reader)))
    from torch.utils.data import DataLoader

    loader: Any = DataLoader(
        reader,  # type: ignore[arg-type]  # any map-style object will do
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_keep_as_is,
        pin_memory=pin,
        prefetch_factor=4,
    )
    return iter(loader)


class _PartWriter:
    """Finished rows and failures, written as a part file every ``batch_size`` rows and at least
    every :data:`FLUSH_SECONDS` (a killed run loses little)."""

    def __init__(self, store: EmbeddingStore, batch_size: int) -> None:
        self.store, self.batch_size = store, batch_size
        self.rows = Rows()
        self.last_flush = time.perf_counter()

    def add_row(self, tile: Tile, embedding: np.ndarray) -> None:
        self.rows.embedding.append(embedding)
        self.rows.path.append(tile.path)
        self.rows.modality.append(tile.modality)
        self.rows.gsd.append(tile.gsd)
        self.rows.bounds.append(tile.bounds)
        self.rows.crs.append(tile.crs)

    def add_failure(self, tile: Tile) -> None:
        self.rows.failed_path.append(tile.path)
        self.rows.failed_reason.append(tile.failure or "")

    def flush(self, force: bool = False) -> None:
        due = len(self.rows) >= self.batch_size or time.perf_counter() - self.last_flush >= FLUSH_SECONDS
        if len(self.rows) and (force or due):
            self.store.write_part(self.rows)
            self.rows = Rows()
            self.last_flush = time.perf_counter()


@dataclass
class _Pooling:
    """A tile whose windows are (partly) through the model: the sum and count of its tokens so far."""

    tile: Tile
    windows_left: int
    token_sum: Any = None  # (D,) float64 tensor on CPU
    token_count: int = 0


class _WindowBatches:
    """Windows queued by (modality, GSD, height, width), run through the encoder ``batch_size`` at a
    time; a tile's row is the mean of its tokens over all its windows, passed to ``on_row``;
    ``after_batch`` is called after each forward pass."""

    def __init__(
        self,
        model: Any,
        device: torch.device,
        batch_size: int,
        on_row: Callable[[Tile, np.ndarray], None],
        after_batch: Callable[[], None],
    ) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self.on_row, self.after_batch = on_row, after_batch
        self.pooling: dict[int, _Pooling] = {}
        # key -> queued windows [(tile index, window, token mask)], oldest group first
        self.queues: OrderedDict[tuple, list[tuple[int, Any, Any]]] = OrderedDict()
        self.queued = 0

    def add(self, tile: Tile) -> None:
        windows, masks = tile.windows, tile.token_masks
        self.pooling[tile.index] = _Pooling(tile, windows_left=windows.shape[0])
        key = (tile.modality, tile.gsd, windows.shape[-2], windows.shape[-1])
        for w, m in zip(windows, masks):
            self.queues.setdefault(key, []).append((tile.index, w, m))
            self.queued += 1
            if len(self.queues[key]) >= self.batch_size:
                self._run(key)
        tile.windows = tile.token_masks = None
        # Bound memory when tiles of many sizes arrive: run the oldest group early.
        while self.queued > 2 * self.batch_size:
            self._run(next(iter(self.queues)))

    def drain(self) -> None:
        while self.queues:
            self._run(next(iter(self.queues)))

    def _run(self, key: tuple) -> None:
        import torch

        group = self.queues.pop(key)
        self.queued -= len(group)
        modality, gsd = key[0], key[1]
        images = torch.stack([w for _, w, _ in group]).to(self.device, non_blocking=True)
        masks = torch.stack([m for _, _, m in group]).to(self.device, non_blocking=True)
        use_cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            tokens = self.model.encode(images, modality=modality, gsd=gsd)
        weights = masks.to(torch.float32).unsqueeze(-1)
        # float64 sums on the CPU: a tile's windows may come in several batches
        sums = (tokens.float() * weights).sum(dim=1).double().cpu()  # (B, D)
        counts = masks.sum(dim=1).cpu().tolist()
        for (index, _, _), row_sum, count in zip(group, sums, counts):
            entry = self.pooling[index]
            entry.token_sum = row_sum if entry.token_sum is None else entry.token_sum + row_sum
            entry.token_count += int(count)
            entry.windows_left -= 1
            if entry.windows_left == 0:
                del self.pooling[index]
                self.on_row(entry.tile, (entry.token_sum / entry.token_count).float().numpy())
        self.after_batch()


def embed_tiles(
    model: Any,
    todo: list,
    settings: ReadSettings,
    store: EmbeddingStore,
    summary: EmbedSummary,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    progress: bool,
) -> set[str]:
    """Embed ``todo`` (``(index, relative path, path)`` of each tile), writing parts as rows
    finish and counting them in ``summary``. Returns the modalities normalised per tile."""
    per_tile: set[str] = set()
    writer = _PartWriter(store, batch_size)
    bar = RateProgress("embedding", "tiles", len(todo), progress)

    def on_row(tile: Tile, embedding: np.ndarray) -> None:
        writer.add_row(tile, embedding)
        summary.embedded += 1
        bar.advance(1)

    batches = _WindowBatches(model, device, batch_size, on_row, after_batch=writer.flush)
    try:
        for tile in read_tiles(todo, settings, num_workers, pin=device.type == "cuda"):
            if tile.failure is not None:
                writer.add_failure(tile)
                summary.failed += 1
                summary.failures.append((tile.path, tile.failure))
                bar.advance(1)
                writer.flush()
                continue
            if tile.per_tile_normalised:
                per_tile.add(tile.modality)
            batches.add(tile)
        batches.drain()
    finally:
        bar.close()
        writer.flush(force=True)  # keep what finished, also on Ctrl-C
    return per_tile
