"""Reading the work items of a ``salibi embed`` run ahead of the model, in their order: in
:data:`READER_THREADS` threads of this process (``num_workers`` 0: GDAL's decoding and numpy
release the GIL, so reading overlaps the forward passes) or in ``num_workers`` DataLoader
processes.

Each reader thread or process enters one GDAL environment (:data:`GDAL_OPTIONS`) for its
lifetime, and the readers share one :class:`~salibi.embed.inputs.routing.Router`, so a folder of tiles
of one band layout is routed once (once per DataLoader process). At most about two batches of rows are read
ahead of the model (:func:`items_ahead`), so memory does not grow with the input.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salibi.embed.inputs.aligned_chips import AlignedWork, read_aligned_work
from salibi.embed.inputs.routing import Router
from salibi.embed.inputs.scenes import SceneWork, read_scene_work
from salibi.embed.inputs.tiles import TileWork, read_tile, router_for
from salibi.embed.records import Chip, ReadSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "GDAL_OPTIONS",
    "READER_THREADS",
    "ItemReader",
    "cores_for_readers",
    "item_size",
    "items_ahead",
    "read_in_threads",
    "read_item",
    "read_items",
]


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Reader threads when ``num_workers`` is 0: one per two cores, at most two (reading a tile holds
#: the GIL most of the time: a second thread reads little more).
READER_THREADS = max(1, min(2, _cores() // 2))
#: GDAL configuration of every reader: GDAL lists a raster's folder at each open to find side
#: files (``.aux.xml``, ``.msk``, world files), which costs more the more tiles a folder holds;
#: with TRUE it looks for each side file by name instead (it still finds them).
GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE"}

Item = TileWork | SceneWork | AlignedWork


def item_size(item: Item) -> int:
    """Rows-to-be in an item."""
    if isinstance(item, SceneWork):
        return len(item.cols)
    if isinstance(item, AlignedWork):
        return sum(len(m) for m in item.missing)
    return 1


def read_item(item: Item, settings: ReadSettings, router: Router) -> list[Chip]:
    """The chips of a work item, read and ready (or with the reason they are not)."""
    if isinstance(item, SceneWork):
        return read_scene_work(item, settings)
    if isinstance(item, AlignedWork):
        return read_aligned_work(item, settings)
    return [read_tile(item.rel, Path(item.path), settings, router)]


class ItemReader:
    """Map-style dataset for torch's DataLoader (and the reader threads): item i -> its chips."""

    def __init__(self, items: list[Item], settings: ReadSettings) -> None:
        self.items, self.settings = items, settings
        self.router = router_for(settings)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> list[Chip]:
        return read_item(self.items[i], self.settings, self.router)


# The GDAL environment each reader thread or process enters once and keeps while it lives.
_READER = threading.local()


def enter_reader_environment(*_: Any) -> None:
    """Enter :data:`GDAL_OPTIONS` in this reader thread or process for the rest of its life (a
    ThreadPoolExecutor initializer and DataLoader ``worker_init_fn``). rasterio keeps the options
    of a thread other than the main one to that thread."""
    if getattr(_READER, "environment", None) is None:
        import rasterio

        _READER.environment = rasterio.Env(**GDAL_OPTIONS)
        _READER.environment.__enter__()


def _keep_as_is(item: Any) -> Any:
    """The DataLoader's collate function: items arrive one by one (module level: workers pickle it)."""
    return item


def items_ahead(items: list[Item], batch_size: int, readers: int) -> int:
    """Items read ahead of the model: about two batches of rows, at least two per reader."""
    per_item = max(1, item_size(items[0])) if items else 1
    return max(2 * readers, math.ceil(2 * batch_size / per_item))


@contextmanager
def cores_for_readers(device: torch.device) -> Iterator[None]:
    """On the CPU, torch's intra-op threads leave :data:`READER_THREADS` cores to the readers while
    the block runs, and get them back after: torch's threads wait for each other spinning, so a
    reader on one of their cores slows every forward pass (the tiny model on 2 cores, batch 64 of
    128 px: 1.55 ms a tile alone, 4.5-4.8 ms beside one reader thread; with one torch thread 2.14
    and 2.35 ms). The same whether threads or ``num_workers`` processes read, so the rows do not
    depend on how the input is read."""
    import torch

    threads = torch.get_num_threads()
    wanted = max(1, min(threads, _cores() - READER_THREADS))
    if device.type != "cpu" or wanted == threads:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def read_items(reader: ItemReader, batch_size: int, num_workers: int) -> Generator[list[Chip], None, None]:
    """The chips of ``reader``'s items in order, read ahead by :data:`READER_THREADS` threads or
    by ``num_workers`` processes (a generator: close it to stop the readers early)."""
    if num_workers == 0:
        yield from read_in_threads(reader, READER_THREADS, items_ahead(reader.items, batch_size, READER_THREADS))
        return
    from torch.utils.data import DataLoader

    loader: Any = DataLoader(
        reader,  # type: ignore[arg-type]  # any map-style object will do
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_keep_as_is,
        prefetch_factor=max(2, math.ceil(items_ahead(reader.items, batch_size, num_workers) / num_workers)),
        worker_init_fn=enter_reader_environment,
    )
    yield from loader


def read_in_threads(reader: ItemReader, threads: int, ahead: int) -> Iterator[list[Chip]]:
    """Items read by ``threads`` threads, at most ``ahead`` beyond the one consumed, in order. An
    error that escapes a reader (read_item returns failures as chips) is raised here; when the
    consumer stops early, what is queued is cancelled and the running reads are waited for."""
    count = len(reader)
    with ThreadPoolExecutor(threads, thread_name_prefix="salibi-reader", initializer=enter_reader_environment) as pool:
        pending: deque[Future[list[Chip]]] = deque()
        submitted = 0
        try:
            while submitted < min(count, ahead):
                pending.append(pool.submit(reader.__getitem__, submitted))
                submitted += 1
            while pending:
                chips = pending.popleft().result()
                if submitted < count:
                    pending.append(pool.submit(reader.__getitem__, submitted))
                    submitted += 1
                yield chips
        finally:
            for future in pending:
                future.cancel()
