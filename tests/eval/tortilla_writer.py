"""A tortilla writer for tests, from the format facts (shared/geobench2_samples/README.md):
200-byte header (``#y``, u64 footer offset, u64 footer length, u64 partitions = 1, zeros), the
payloads back to back, then a Parquet footer whose offsets count from the tortilla's start.
Samples are nested tortillas. Tests use it to write small GEO-Bench-2 datasets and to lie about
offsets on purpose.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HEADER_SIZE = 200


@dataclass
class Item:
    """One payload of a tortilla: ``data`` stored as ``file_format`` under ``id``; ``fields`` are
    extra footer columns; ``offset``/``length`` override the footer's true values."""

    id: str
    file_format: str
    data: bytes
    split: str = "train"
    fields: dict[str, Any] = field(default_factory=dict)
    offset: int | None = None
    length: int | None = None


def header(footer_offset: int, footer_length: int, magic: bytes = b"#y") -> bytes:
    return struct.pack("<2sQQQ", magic, footer_offset, footer_length, 1) + bytes(HEADER_SIZE - 26)


def footer(rows: Sequence[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {}
    for row in rows:
        for name in row:
            columns.setdefault(name, [])
    for row in rows:
        for name, values in columns.items():
            values.append(row.get(name))
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="zstd")
    return buffer.getvalue()


def tortilla(items: Sequence[Item]) -> bytes:
    """A whole tortilla of ``items``."""
    pile = bytearray()
    rows = []
    for item in items:
        offset = HEADER_SIZE + len(pile)
        pile += item.data
        rows.append(
            {
                "tortilla:id": item.id,
                "tortilla:file_format": item.file_format,
                "tortilla:data_split": item.split,
                "tortilla:offset": offset if item.offset is None else item.offset,
                "tortilla:length": len(item.data) if item.length is None else item.length,
                **item.fields,
            }
        )
    table = footer(rows)
    return header(HEADER_SIZE + len(pile), len(table)) + bytes(pile) + table


def sample(sample_id: str, split: str, items: Sequence[Item], **fields: Any) -> Item:
    """One GEO-Bench-2 sample: a nested tortilla of ``items`` (their ``fields`` also at the top)."""
    inner = [Item(i.id, i.file_format, i.data, split, {**fields, **i.fields}, i.offset, i.length) for i in items]
    return Item(sample_id, "TORTILLA", tortilla(inner), split, dict(fields))


def write_dataset(folder: Path, file_name: str, samples: Sequence[Item]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_bytes(tortilla(samples))
    return path


def geotiff(array: np.ndarray, crs: str | None = "EPSG:32631", gsd: float = 10.0, **profile: Any) -> bytes:
    """A GeoTIFF of ``array`` (C, H, W) in memory, north-up at ``gsd`` metres."""
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    array = np.asarray(array)
    count, height, width = array.shape
    options: dict[str, Any] = {"driver": "GTiff", "count": count, "height": height, "width": width}
    options["dtype"] = array.dtype.name
    if crs is not None:
        options.update(crs=crs, transform=from_origin(500000.0, 5700000.0, gsd, gsd))
    options.update(profile)
    with MemoryFile() as memory:
        with memory.open(**options) as dst:
            dst.write(array)
        return bytes(memory.read())


def hdf5(array: np.ndarray, name: str = "data") -> bytes:
    """An HDF5 file holding ``array`` as dataset ``name``, in memory."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset(name, data=array)
    return buffer.getvalue()


def banded(count: int, size: int = 16, dtype: str = "uint16", base: int = 100) -> np.ndarray:
    """(count, size, size): band ``i`` holds ``base * (i + 1)`` everywhere, so a reader's order shows."""
    return np.stack([np.full((size, size), base * (i + 1)) for i in range(count)]).astype(dtype)
