"""The tortilla container of GEO-Bench-2 (tacotoolbox / tacoreader), read with pyarrow only.

A tortilla file (magic ``#y``) is a fixed 200-byte header, a pile of payloads, and a footer::

    0    2 bytes   b"#y"
    2    u64 LE    footer offset          (from the start of this tortilla)
    10   u64 LE    footer length
    18   u64 LE    number of data partitions (1)
    26   174 zero bytes
    200  ...       payloads: GeoTIFF, HDF5 or nested tortillas, back to back
         footer    a Parquet table, one row per payload

Footer columns used here: ``tortilla:id``, ``tortilla:file_format`` (``GTiff``, ``HDF5``,
``TORTILLA``, ``BYTES``), ``tortilla:data_split``, ``tortilla:offset`` and ``tortilla:length``
(bytes, from the start of the tortilla that holds the footer); every other column (``stac:*``,
``labels``, ...) is kept as a Python value in :attr:`Entry.fields`.

GEO-Bench-2 nests two levels: each outer row is a ``TORTILLA`` (one sample) whose own footer
lists the sample's items; their offsets are relative to the start of that sample tortilla.
:class:`Tortilla` makes every offset absolute (file position), so an :class:`Entry` says exactly
which bytes of which file hold a payload.

Every number is checked before it is used: the header must lie inside the span it describes,
the footer inside that span after the header, every payload between the header and the footer,
and the footer's Parquet metadata must promise no more than :data:`MAX_FOOTER_BYTES`
uncompressed. A file that breaks any of these raises :class:`~salibi.errors.DataFormatError`
naming the file and what is wrong, before anything past the bad number is read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, MissingInputError

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_FOOTER_BYTES",
    "Entry",
    "Tortilla",
    "read_span",
]

HEADER_SIZE = 200
MAGIC = b"#y"
#: The magic of a TACO file (tacoreader reads both; GEO-Bench-2 ships tortillas).
TACO_MAGIC = b"WX"
#: Largest uncompressed footer accepted (a hostile Parquet footer could expand without bound).
MAX_FOOTER_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct("<2sQQQ")
_REQUIRED = ("tortilla:id", "tortilla:file_format", "tortilla:offset", "tortilla:length")
_FIX = "re-download the file (a partial download or a damaged copy)"


@dataclass(frozen=True)
class Entry:
    """One footer row: payload ``id`` of ``file_format`` at absolute ``offset`` in ``path``."""

    path: Path
    id: str
    file_format: str
    split: str | None
    offset: int
    length: int
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def where(self) -> str:
        """``FILE (item ID, bytes A..B)``, for messages."""
        return f"{self.path} (item {self.id!r}, bytes {self.offset}..{self.offset + self.length})"

    @property
    def vsisubfile(self) -> str:
        """The GDAL path of this payload: ``/vsisubfile/OFFSET_LENGTH,FILE``."""
        return f"/vsisubfile/{self.offset}_{self.length},{self.path}"


@dataclass(frozen=True)
class Tortilla:
    """The footer of one tortilla: the file, where the tortilla starts and ends in it, its rows."""

    path: Path
    start: int
    end: int
    entries: tuple[Entry, ...]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Tortilla:
        """The outer tortilla of the file ``path``."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise MissingInputError(f"{path} does not exist") from None
        except OSError as err:
            raise DataFormatError(f"{path} cannot be read ({err.strerror or err})") from None
        return _read_tortilla(path, 0, size, f"{path}")

    @classmethod
    def nested(cls, entry: Entry) -> Tortilla:
        """The tortilla stored as ``entry`` (one GEO-Bench-2 sample)."""
        if entry.file_format != "TORTILLA":
            raise DataFormatError(f"{entry.where} is {entry.file_format}, not a nested TORTILLA; {_FIX}")
        return _read_tortilla(entry.path, entry.offset, entry.offset + entry.length, entry.where)

    def __len__(self) -> int:
        return len(self.entries)


def read_span(path: Path, start: int, length: int, where: str) -> bytes:
    """``length`` bytes at ``start`` of ``path``, all of them (a short read is a damaged file)."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(length)
    except OSError as err:
        raise DataFormatError(f"{where}: cannot read {path} ({err.strerror or err})") from None
    if len(data) != length:
        raise DataFormatError(
            f"{where}: {path} ends after {start + len(data)} bytes, inside bytes {start}..{start + length}; {_FIX}"
        )
    return data


def _read_tortilla(path: Path, start: int, end: int, where: str) -> Tortilla:
    span = end - start
    if span < HEADER_SIZE:
        raise DataFormatError(f"{where}: {span} bytes, shorter than the {HEADER_SIZE}-byte tortilla header; {_FIX}")
    magic, footer_offset, footer_length, _ = _HEADER.unpack(read_span(path, start, _HEADER.size, where))
    if magic != MAGIC:
        kind = "a TACO file (magic WX)" if magic == TACO_MAGIC else f"not a tortilla (magic {magic!r}, expected b'#y')"
        raise DataFormatError(f"{where} is {kind}; GEO-Bench-2 datasets are .tortilla files: {_FIX}")
    if footer_length == 0 or footer_offset < HEADER_SIZE or footer_offset + footer_length > span:
        raise DataFormatError(
            f"{where}: the header puts the footer at bytes {footer_offset}..{footer_offset + footer_length}, "
            f"outside the {span} bytes after the {HEADER_SIZE}-byte header; {_FIX}"
        )
    table = _parse_footer(read_span(path, start + footer_offset, footer_length, where), where)
    entries = _entries(table, path, start, footer_offset, where)
    return Tortilla(path, start, end, entries)


def _parse_footer(data: bytes, where: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        meta = parquet.metadata
        promised = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if promised > MAX_FOOTER_BYTES:
            raise DataFormatError(
                f"{where}: the footer would expand to {promised} bytes (limit {MAX_FOOTER_BYTES}); {_FIX}"
            )
        table = parquet.read()
    except DataFormatError:
        raise
    except (pa.ArrowException, OSError, ValueError, IndexError) as err:
        reason = " ".join(str(err).split())[:200]
        raise DataFormatError(f"{where}: the footer is not a readable Parquet table ({reason}); {_FIX}") from None
    missing = [c for c in _REQUIRED if c not in table.column_names]
    if missing:
        raise DataFormatError(f"{where}: the footer lacks column(s) {', '.join(missing)}; {_FIX}")
    for name in ("tortilla:offset", "tortilla:length"):
        if not pa.types.is_integer(table.schema.field(name).type):
            raise DataFormatError(f"{where}: footer column {name} holds {table.schema.field(name).type}, not integers")
    return table


def _entries(table: Any, path: Path, start: int, footer_offset: int, where: str) -> tuple[Entry, ...]:
    columns = table.to_pydict()
    ids, formats = columns.pop("tortilla:id"), columns.pop("tortilla:file_format")
    offsets, lengths = columns.pop("tortilla:offset"), columns.pop("tortilla:length")
    splits = columns.pop("tortilla:data_split", [None] * len(ids))
    columns.pop("__index_level_0__", None)
    entries = []
    for row, (item_id, fmt, offset, length) in enumerate(zip(ids, formats, offsets, lengths)):
        if item_id is None or fmt is None or offset is None or length is None:
            raise DataFormatError(f"{where}: footer row {row} has an empty id, format, offset or length; {_FIX}")
        if offset < HEADER_SIZE or length < 0 or offset + length > footer_offset:
            raise DataFormatError(
                f"{where}: item {item_id!r} claims bytes {offset}..{offset + length}, outside the payloads "
                f"(bytes {HEADER_SIZE}..{footer_offset}); {_FIX}"
            )
        fields = {name: values[row] for name, values in columns.items()}
        split = splits[row]
        entries.append(
            Entry(path, str(item_id), str(fmt), None if split is None else str(split), start + offset, length, fields)
        )
    return tuple(entries)
