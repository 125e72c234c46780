"""The final merge of a ``salibi embed`` output (:meth:`~salibi.embed.output.store.EmbeddingStore.merge`):
the rows of the output and of its part files, each ``(path, modality)`` once -- the first
written -- into a new output, every row copied once.

1. :func:`take_stock`: each source (the output's files, then the parts in the order they were
   written) is looked at once for its row keys and notes: which of its rows are kept, and which
   failures and no-data skips remain (the latest of each path that has no row, nor chip rows
   for a scene that failed once).
2. The kept rows are copied into a new output staged in the parts folder (so the next run
   clears what a killed merge leaves), which the caller renames into place:

   - HDF5 (:func:`merge_hdf5`): each source dataset by dataset, :data:`CHUNK_ROWS` rows at a
     time, strings as numpy arrays (never one Python call per row or per part);
   - GeoParquet (:func:`merge_parquet`): the output's files copied whole (their record
     batches), the parts' rows converted once, into the file of their CRS, in tables of up to
     :data:`CHUNK_ROWS` rows; then each file laid out for archives
     (:func:`~salibi.embed.output.geoparquet.lay_out`: sorted along a Hilbert curve of the footprint
     centres, row groups of 64k rows or more).

Sources written before the ``datetime`` column (HDF5 ``/datetime``, the GeoParquet column) are
merged with their rows' times unknown (empty, null): the merged output always has it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.output.hdf5 import CHUNK_ROWS
from salibi.embed.records import Columns

__all__ = ["CHUNK_ROWS", "Stock", "merge_hdf5", "merge_parquet", "take_stock"]

#: A merged HDF5 file's chunk cache: its compressed ``crs`` chunks, written source by source,
#: stay there until complete and are compressed once.
_CHUNK_CACHE_BYTES = 64 * 2**20

Notes = list[tuple[str, str]]


@dataclass
class Stock:
    """What the sources of a merge hold: per source the mask of its rows that are kept, the
    failures and no-data skips that remain (path -> reason) and the widest CRS string (bytes)."""

    keep: list[np.ndarray] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    crs_bytes: int = 1

    @property
    def rows(self) -> int:
        return int(sum(int(k.sum()) for k in self.keep))


def take_stock(sources: list[Path], look: Callable[[Path], tuple[list[tuple[str, str]], Notes, Notes, int]]) -> Stock:
    """The :class:`Stock` of ``sources`` in order; ``look(source)`` gives its ``(path, modality)``
    keys, failures, no-data skips and CRS string width."""
    stock = Stock()
    seen: set[tuple[str, str]] = set()
    for source in sources:
        keys, failed, skipped, crs_bytes = look(source)
        keep = np.zeros(len(keys), bool)
        for i, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                keep[i] = True
        stock.keep.append(keep)
        stock.crs_bytes = max(stock.crs_bytes, crs_bytes)
        for notes, found in ((stock.failed, failed), (stock.skipped, skipped)):
            for path, reason in found:
                stock.failed.pop(path, None)
                stock.skipped.pop(path, None)
                notes[path] = reason
    # A path with a row is done; so is a scene that failed once and has chip rows (FILE#rRcC) now.
    paths = {p for p, _ in seen}
    done = paths | {p.rpartition("#")[0] for p in paths if "#" in p}
    stock.failed = {p: r for p, r in stock.failed.items() if p not in done}
    stock.skipped = {p: r for p, r in stock.skipped.items() if p not in done}
    return stock


def merge_hdf5(sources: list[Path], staged: Path, attrs: dict[str, Any], dim: int) -> int:
    """The kept rows of ``sources`` (HDF5 files of this layout: the output, then the parts) and the
    remaining notes written to ``staged``; the number of rows."""
    from salibi.embed.output.hdf5 import HDF5Writer, hdf5_inventory, open_for_merge

    stock = take_stock(sources, hdf5_inventory)
    with open_for_merge(staged, chunk_cache_bytes=_CHUNK_CACHE_BYTES) as out:
        writer = HDF5Writer(out, attrs, stock.rows, dim, stock.crs_bytes, stock.failed, stock.skipped)
        for source, keep in zip(sources, stock.keep):
            if keep.any():
                with open_for_merge(source) as f:
                    writer.copy(f, None if keep.all() else keep)
    return stock.rows


def _look_parquet(file: Path) -> tuple[list[tuple[str, str]], Notes, Notes, int]:
    from salibi.embed.output.geoparquet import parquet_keys, parquet_meta

    meta = parquet_meta(file) or {}
    return parquet_keys(file), meta.get("failed", []), meta.get("skipped", []), 1


def _look_any(file: Path) -> tuple[list[tuple[str, str]], Notes, Notes, int]:
    from salibi.embed.output.hdf5 import hdf5_inventory

    return hdf5_inventory(file) if file.suffix == ".h5" else _look_parquet(file)


def merge_parquet(
    existing: list[Path],
    parts: list[Path],
    staging: Callable[[int], Path],
    target_of: Callable[[str, int], Path],
    fixed_crs: str,
    meta: dict[str, Any],
    dim: int,
) -> tuple[list[tuple[Path, Path]], int]:
    """The kept rows of the output's ``existing`` files and of the ``parts`` written as GeoParquet,
    one file per CRS (``fixed_crs``: every footprint reprojected to it, one file), each staged at
    ``staging(k)`` for ``target_of(tag, number of files)``; ``meta`` is the files' ``salibi``
    metadata (the remaining notes added). Returns ``[(staged, target)]`` and the number of rows."""
    from salibi.embed.output.geoparquet import GeoParquetWriter, lay_out, parquet_meta

    stock = take_stock(existing + parts, _look_any)
    tags = _CrsTags()
    existing_crs = {  # the files with rows (a file of failures only makes no CRS group; its notes are kept)
        file: (parquet_meta(file) or {}).get("crs_wkt", "") for file, keep in zip(existing, stock.keep) if keep.size
    }
    groups: dict[str, str] = {}  # tag -> the WKT its file states (the first met)
    for wkt in existing_crs.values():
        groups.setdefault(tags(wkt), wkt)
    part_keep = stock.keep[len(existing) :]
    for wkt in [fixed_crs] if fixed_crs else _part_crs(parts, part_keep):
        groups.setdefault(tags(wkt), wkt)
    if not groups:
        groups = {tags(fixed_crs): fixed_crs}
    meta = {**meta, "failed": list(stock.failed.items()), "skipped": list(stock.skipped.items())}
    staged = [(staging(k), target_of(group, len(groups))) for k, group in enumerate(sorted(groups))]
    writers: dict[str, GeoParquetWriter] = {}
    # Every row is first written as it comes (beside its staged file), then laid out.
    unsorted = {
        group: temporary.with_name(temporary.name + ".unsorted.tmp")
        for (temporary, _), group in zip(staged, sorted(groups))
    }
    try:
        for group in sorted(groups):
            writers[group] = GeoParquetWriter(unsorted[group], dim, groups[group], meta)
        for file, wkt in existing_crs.items():
            writers[tags(wkt)].copy(file)
        pending: dict[str, list[Columns]] = {group: [] for group in groups}
        for columns in _kept_rows(parts, part_keep):
            for group, selected in _by_group(columns, fixed_crs, tags):
                pending[group].append(selected)
                if sum(len(c) for c in pending[group]) >= CHUNK_ROWS:
                    writers[group].write(Columns.concat(pending[group], dim))
                    pending[group] = []
        for group, left in pending.items():
            writers[group].write(Columns.concat(left, dim))
        for writer in writers.values():
            writer.close()
        for (temporary, _), group in zip(staged, sorted(groups)):
            lay_out(unsorted[group], temporary)
    finally:
        for writer in writers.values():
            writer.close()
        for path in unsorted.values():
            path.unlink(missing_ok=True)
    return staged, stock.rows


class _CrsTags:
    """WKT -> file tag (:func:`~salibi.embed.output.geoparquet.crs_tag`), each WKT looked up once: one file
    per CRS, however GDAL spelled its WKT."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}

    def __call__(self, wkt: str) -> str:
        if wkt not in self.tags:
            from salibi.embed.output.geoparquet import crs_tag

            self.tags[wkt] = crs_tag(wkt)
        return self.tags[wkt]


def _part_crs(parts: list[Path], keep: list[np.ndarray]) -> list[str]:
    """The CRSs (WKT) of the kept rows of ``parts``, in the order first met."""
    from salibi.embed.output.hdf5 import open_for_merge

    found: dict[str, None] = {}
    for part, mask in zip(parts, keep):
        if mask.any():
            with open_for_merge(part) as f:
                raw = f["crs"][:][mask]
            for value in np.unique(raw).tolist():
                found.setdefault(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    return list(found)


def _kept_rows(parts: list[Path], keep: list[np.ndarray]) -> Iterator[Columns]:
    """The kept rows of ``parts``, in order, :data:`CHUNK_ROWS` at most at a time."""
    from salibi.embed.output.hdf5 import iter_hdf5

    for part, mask in zip(parts, keep):
        if not mask.any():
            continue
        at = 0
        for columns in iter_hdf5(part):
            chunk = mask[at : at + len(columns)]
            at += len(columns)
            yield columns if chunk.all() else columns.select(chunk)


def _by_group(columns: Columns, fixed_crs: str, tags: _CrsTags) -> Iterator[tuple[str, Columns]]:
    """``columns`` split by the CRS file their rows go to."""
    if fixed_crs:
        yield tags(fixed_crs), columns
        return
    codes: dict[str, int] = {}  # WKT -> its number in this chunk (a dict: no fixed-width copy of every WKT)
    which = np.array([codes.setdefault(wkt, len(codes)) for wkt in columns.crs.tolist()])
    for wkt, k in codes.items():
        yield tags(wkt), columns if len(codes) == 1 else columns.select(which == k)
