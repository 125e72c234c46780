"""A PMTiles version 3 archive, read by salibi itself: header, directories, tiles.

The layout (the PMTiles v3 specification): a 127-byte header -- magic ``PMTiles``, version 3,
then little-endian offsets and lengths of the root directory, the metadata, the leaf
directories and the tile data, counts, the compressions and tile type, zooms and bounds. A
directory is a (possibly compressed) list of varints: the entry count, then per entry the
tile-id delta from the previous entry, the run length, the length, and the offset (0: right
after the previous entry's data; else offset + 1). An entry of run length 0 points to a leaf
directory (offset in the leaf section); one of run length ``r`` says tiles ``id .. id + r - 1``
all have these bytes (offset in the tile data section).

Nothing read from the file is trusted: every section, directory and tile must lie inside the
file and its own section; entries must be in increasing, non-overlapping order, each leaf inside
the id range its pointer covers; leaf directories nest at most :data:`MAX_LEAF_DEPTH` deep and
are each read once; a directory may expand to at most :data:`MAX_DIRECTORY_BYTES` (gzip bombs are
refused before they expand further) and an archive to :data:`MAX_ENTRIES` entries and
:data:`MAX_TILES` tiles of one zoom. Each violation is a :class:`~salibi.errors.DataFormatError`
that names the archive. Directories are decoded with numpy (varints included), so a
hundred-thousand-tile archive is indexed in a fraction of a second.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from salibi.align.pmtiles.sources import ByteSource, check_span
from salibi.align.pmtiles.web_mercator import MAX_ZOOM, first_id, zoom_of
from salibi.errors import DataFormatError

MAGIC = b"PMTiles"
HEADER_BYTES = 127
#: Bytes one directory may expand to (about 2 million entries).
MAX_DIRECTORY_BYTES = 16 * 2**20
#: Leaf directories below the root.
MAX_LEAF_DEPTH = 4
#: Directory entries of one archive.
MAX_ENTRIES = 50_000_000
#: Tiles of one zoom an index holds (runs expanded).
MAX_TILES = 2**24
#: Bytes of one tile: a 256 x 256 RGBA image needs a quarter of this, even uncompressed.
MAX_TILE_BYTES = 4 * 2**20
COMPRESSIONS = {0: "unknown", 1: "none", 2: "gzip", 3: "brotli", 4: "zstd"}
TILE_TYPES = {0: "unknown", 1: "mvt", 2: "png", 3: "jpeg", 4: "webp", 5: "avif", 6: "mlt"}

__all__ = ["Archive", "Entries", "Header", "TileIndex"]


@dataclass(frozen=True)
class Header:
    """The fields of a PMTiles v3 header salibi uses (offsets absolute, in bytes)."""

    root_offset: int
    root_length: int
    metadata_offset: int
    metadata_length: int
    leaf_offset: int
    leaf_length: int
    data_offset: int
    data_length: int
    addressed_tiles: int
    internal_compression: int
    tile_compression: int
    tile_type: int
    min_zoom: int
    max_zoom: int

    @classmethod
    def parse(cls, name: str, raw: bytes, size: int) -> Header:
        if raw[:2] == b"PM" and raw[2:4] in (b"\x01\x00", b"\x02\x00"):
            raise DataFormatError(
                f"{name}: PMTiles version {raw[2]} (an older layout); salibi reads version 3: convert it with "
                "`pmtiles convert`"
            )
        if len(raw) < HEADER_BYTES or raw[:7] != MAGIC:
            raise DataFormatError(
                f"{name}: not a PMTiles archive (it does not start with the PMTiles magic bytes); give the "
                ".pmtile archive itself"
            )
        if raw[7] != 3:
            raise DataFormatError(
                f"{name}: PMTiles version {raw[7]}; salibi reads version 3: convert it with `pmtiles convert`"
            )
        values = struct.unpack_from("<11Q4B2B", raw, 8)
        (root_offset, root_length, metadata_offset, metadata_length, leaf_offset, leaf_length, data_offset,
         data_length, addressed) = values[:9]  # fmt: skip
        header = cls(
            root_offset, root_length, metadata_offset, metadata_length, leaf_offset, leaf_length, data_offset,
            data_length, addressed, values[12], values[13], values[14], values[15], values[16],
        )  # fmt: skip
        sections = [
            ("root directory", header.root_offset, header.root_length),
            ("metadata", header.metadata_offset, header.metadata_length),
            ("leaf directories", header.leaf_offset, header.leaf_length),
            ("tile data", header.data_offset, header.data_length),
        ]
        for what, offset, length in sections:
            check_span(name, size, offset, length, f"the {what} (as the header says)")
        if header.root_length == 0:
            raise DataFormatError(f"{name}: the header gives an empty root directory; the archive is damaged")
        for what, code in (("directories", header.internal_compression), ("tiles", header.tile_compression)):
            if code not in (0, 1, 2):
                kind = COMPRESSIONS.get(code, f"unknown compression {code}")
                raise DataFormatError(
                    f"{name}: its {what} use {kind} compression, which salibi does not read; re-pack the archive "
                    "with gzip (`pmtiles convert`)"
                )
        return header


@dataclass(frozen=True)
class Entries:
    """Tile entries of a whole archive (leaf directories resolved), in tile-id order: uint64 ids,
    uint64 absolute offsets, uint32 lengths, uint32 run lengths (>= 1)."""

    ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    runs: np.ndarray

    def deepest_zoom(self) -> int:
        """The deepest zoom any entry reaches (-1 when empty)."""
        if not len(self.ids):
            return -1
        return int(zoom_of(self.ids[-1:] + self.runs[-1:].astype(np.uint64) - np.uint64(1))[0])


@dataclass(frozen=True)
class TileIndex:
    """The tiles of one zoom: sorted uint64 ids and each tile's absolute offset and length."""

    zoom: int
    ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, position) of ``ids`` in the index: a bool mask and positions (valid where found)."""
        position = np.searchsorted(self.ids, ids)
        clipped = np.minimum(position, max(len(self.ids) - 1, 0))
        found = (position < len(self.ids)) & (self.ids[clipped] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return found, clipped


class Archive:
    """One PMTiles archive open for reading: :attr:`header`, :meth:`entries`, :meth:`index`, :meth:`read`."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.name = source.name
        if source.size < HEADER_BYTES:
            raise DataFormatError(
                f"{self.name}: not a PMTiles archive ({source.size} bytes, shorter than the 127-byte header)"
            )
        self.header = Header.parse(self.name, source.read(0, HEADER_BYTES, "the header"), source.size)
        self._entries: Entries | None = None

    def close(self) -> None:
        self.source.close()

    # -- directories --------------------------------------------------------------------------

    def entries(self) -> Entries:
        """Every tile entry of the archive (read once, then kept)."""
        if self._entries is None:
            h = self.header
            parts: list[tuple[np.ndarray, ...]] = []
            self._walk(h.root_offset, h.root_length, 0, None, parts, set(), [0])
            if parts:
                ids, offsets, lengths, runs = (np.concatenate(column) for column in zip(*parts))
            else:
                ids = offsets = np.zeros(0, np.uint64)
                lengths = runs = np.zeros(0, np.uint32)
            self._entries = Entries(ids, offsets, lengths.astype(np.uint32), runs.astype(np.uint32))
        return self._entries

    def _walk(
        self,
        offset: int,
        length: int,
        depth: int,
        span: tuple[int, int] | None,
        parts: list[tuple[np.ndarray, ...]],
        seen: set[int],
        count: list[int],
    ) -> None:
        """Read the directory at ``offset`` (absolute), append its tile entries to ``parts`` and
        descend into its leaves; ``span``: the tile ids ``[first, end)`` its pointer covers."""
        where = "the root directory" if depth == 0 else f"a leaf directory at byte {offset}"
        if length > MAX_DIRECTORY_BYTES:
            raise DataFormatError(
                f"{self.name}: {where} is {length} bytes, more than salibi reads ({MAX_DIRECTORY_BYTES})"
            )
        if offset in seen:
            raise DataFormatError(f"{self.name}: {where} is pointed to twice; the archive is damaged")
        seen.add(offset)
        ids, runs, lengths, offsets = self._directory(offset, length, where)
        count[0] += len(ids)
        if count[0] > MAX_ENTRIES:
            raise DataFormatError(f"{self.name}: more than {MAX_ENTRIES} directory entries; salibi does not read it")
        if len(ids) and span is not None and (int(ids[0]) < span[0] or (span[1] >= 0 and int(ids[-1]) >= span[1])):
            raise DataFormatError(
                f"{self.name}: {where} holds tile ids outside the range its parent gives it; the archive is damaged"
            )
        h = self.header
        ends = ids.astype(np.float64) + runs.astype(np.float64)  # float: no wrap-around past 2^64
        if len(ids) > 1 and (ends[:-1] > ids[1:].astype(np.float64)).any():
            raise DataFormatError(f"{self.name}: {where} has tile runs that overlap; the archive is damaged")
        if len(ids) and ends.max() > float(first_id(MAX_ZOOM + 1)):
            raise DataFormatError(
                f"{self.name}: {where} has tile ids deeper than zoom {MAX_ZOOM}; the archive is damaged"
            )
        tiles = runs > 0
        if tiles.any():
            ends_in_data = offsets[tiles].astype(np.float64) + lengths[tiles].astype(np.float64)
            if ends_in_data.max() > h.data_length:
                raise DataFormatError(
                    f"{self.name}: {where} points to tile bytes past the tile data section ({h.data_length} bytes); "
                    "the archive is truncated or damaged"
                )
            parts.append(
                (ids[tiles], offsets[tiles] + np.uint64(h.data_offset), lengths[tiles], runs[tiles].astype(np.uint32))
            )
        leaves = np.flatnonzero(~tiles)
        if len(leaves) and depth >= MAX_LEAF_DEPTH:
            raise DataFormatError(
                f"{self.name}: leaf directories nest deeper than {MAX_LEAF_DEPTH} levels; the archive is damaged"
            )
        for i in leaves:
            end = int(ids[i + 1]) if i + 1 < len(ids) else (span[1] if span else -1)
            leaf_offset, leaf_length = int(offsets[i]), int(lengths[i])
            if leaf_offset + leaf_length > h.leaf_length:
                raise DataFormatError(
                    f"{self.name}: {where} points to a leaf directory past the leaf section ({h.leaf_length} bytes); "
                    "the archive is truncated or damaged"
                )
            self._walk(h.leaf_offset + leaf_offset, leaf_length, depth + 1, (int(ids[i]), end), parts, seen, count)

    def _directory(self, offset: int, length: int, where: str) -> tuple[np.ndarray, ...]:
        """(ids uint64, runs, lengths, offsets relative to their section) of one directory."""
        raw = self.source.read(offset, length, where)
        data = self._expand(raw, where)
        values = _varints(data, self.name, where)
        if not len(values):
            raise DataFormatError(f"{self.name}: {where} is empty; the archive is damaged")
        n = int(values[0])
        if len(values) != 1 + 4 * n:
            raise DataFormatError(
                f"{self.name}: {where} says it has {n} entries but holds {len(values) - 1} numbers (not 4 per entry); "
                "the archive is damaged"
            )
        deltas, runs, lengths, raw_offsets = (values[1 + k * n : 1 + (k + 1) * n] for k in range(4))
        if n > 1 and (deltas[1:] == 0).any():
            raise DataFormatError(f"{self.name}: {where} lists a tile id twice; the archive is damaged")
        with np.errstate(over="ignore"):
            ids = np.cumsum(deltas, dtype=np.uint64)
        if n and (ids[1:] < ids[:-1]).any():
            raise DataFormatError(f"{self.name}: {where} has tile ids past 2^64; the archive is damaged")
        if (lengths > 2**32 - 1).any() or (runs > 2**32 - 1).any():
            raise DataFormatError(f"{self.name}: {where} has entries of impossible size; the archive is damaged")
        if n and raw_offsets[0] == 0:
            raise DataFormatError(f"{self.name}: {where} gives its first entry no offset; the archive is damaged")
        return ids, runs, lengths, _offsets(raw_offsets, lengths)

    def _expand(self, raw: bytes, where: str) -> bytes:
        if self.header.internal_compression != 2:
            if len(raw) > MAX_DIRECTORY_BYTES:
                raise DataFormatError(f"{self.name}: {where} is larger than {MAX_DIRECTORY_BYTES} bytes")
            return raw
        return gunzip(raw, MAX_DIRECTORY_BYTES, f"{self.name}: {where}")

    # -- tiles --------------------------------------------------------------------------------

    def index(self, zoom: int) -> TileIndex:
        """The tiles of ``zoom`` (runs expanded), sorted by id."""
        e = self.entries()
        low, high = np.uint64(first_id(zoom)), np.uint64(first_id(zoom + 1))
        ends = e.ids + e.runs.astype(np.uint64)
        pick = (e.ids < high) & (ends > low)
        starts = np.maximum(e.ids[pick], low)
        stops = np.minimum(ends[pick], high)
        counts = (stops - starts).astype(np.int64)
        total = int(counts.sum())
        if total > MAX_TILES:
            raise DataFormatError(
                f"{self.name}: {total} tiles at zoom {zoom}, more than salibi indexes ({MAX_TILES}); choose another "
                "--zoom"
            )
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        ids = np.repeat(starts, counts) + within.astype(np.uint64)
        return TileIndex(zoom, ids, np.repeat(e.offsets[pick], counts), np.repeat(e.lengths[pick], counts))

    def read(self, offset: int, length: int, what: str) -> bytes:
        """``length`` bytes at absolute ``offset`` (a tile or a span of tiles), checked against the file."""
        return self.source.read(offset, length, what)


def gunzip(raw: bytes, limit: int, name: str) -> bytes:
    """``raw`` gzip-decompressed, refusing more than ``limit`` bytes of output (a gzip bomb) or a
    stream that is cut short or damaged."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as err:
        raise DataFormatError(f"{name}: damaged gzip data ({err}); the archive is damaged") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise DataFormatError(
            f"{name}: expands to more than {limit} bytes (a decompression bomb?); salibi does not read it"
        )
    if not inflater.eof:
        raise DataFormatError(f"{name}: its gzip data are cut short; the archive is truncated or damaged")
    return out


def _varints(data: bytes, name: str, where: str) -> np.ndarray:
    """Every unsigned LEB128 varint of ``data`` as uint64 (vectorised); DataFormatError for one
    cut short or over 64 bits."""
    raw = np.frombuffer(data, np.uint8)
    if not len(raw):
        return np.zeros(0, np.uint64)
    last = raw < 0x80
    if not last[-1]:
        raise DataFormatError(f"{name}: {where} ends inside a number; the archive is damaged")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    sizes = ends - starts + 1
    if sizes.max() > 10 or (sizes == 10).any() and (raw[ends[sizes == 10]] > 1).any():
        raise DataFormatError(f"{name}: {where} holds a number over 64 bits; the archive is damaged")
    position = np.arange(len(raw)) - np.repeat(starts, sizes)
    parts = (raw & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)


def _offsets(raw: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Directory offsets: a stored 0 (after the first entry) means right after the previous entry."""
    n = len(raw)
    offsets = raw.astype(np.uint64) - np.uint64(1)
    if not n:
        return offsets
    implicit = np.zeros(n, bool)
    implicit[1:] = raw[1:] == 0
    # Runs of implicit offsets continue from the last explicit one: offset = explicit + lengths since.
    group = np.cumsum(~implicit) - 1
    explicit_at = np.flatnonzero(~implicit)
    with np.errstate(over="ignore"):
        running = np.cumsum(lengths.astype(np.uint64), dtype=np.uint64)
        before = running - lengths.astype(np.uint64)  # lengths of the entries before each one
        base = offsets[explicit_at][group] + (before - before[explicit_at][group])
    return np.where(implicit, base, offsets)
