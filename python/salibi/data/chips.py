"""How an aligned set stores one modality's chips, and reading them back (both storages).

- **rasters** (format version 1 and 2, ``salibi align`` of GeoTIFFs): ``/<m>/data`` (N, C, H, W)
  float32, NaN where invalid.
- **encoded tiles** (version 2, ``salibi align`` of PMTiles archives): the archive's own tile bytes,
  one after another in ``/<m>/tile_bytes`` (uint8), chip ``i``'s ``T`` tiles at
  ``/<m>/tile_offsets[i]`` (uint64) with ``/<m>/tile_lengths[i]`` (uint32) bytes each, decoded on
  reading by :func:`salibi.data.web_tiles.decode_chip` under the layout in the group's
  attributes (:class:`~salibi.data.web_tiles.ChipLayout`).

Either may have ``/<m>/chip_gsd`` (N,) float64, each chip's own ground GSD (web tiles: it
changes with latitude); without it every chip has the group's ``gsd`` attribute.

A :class:`ChipReader` hides the difference: ``shape``, ``read(row)`` -> (values, invalid) for the
training loop, ``read_rows(rows)`` -> float32 with NaN where invalid, ``gsd(rows)``. Offsets and
lengths read from the file are checked against the byte array before use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from salibi.data.web_tiles import MAX_TILE_BYTES, ChipLayout, decode_chip
from salibi.errors import DataFormatError

#: The attribute value of an encoded-tiles modality.
ENCODED_TILES = "encoded-tiles"

__all__ = ["ENCODED_TILES", "ChipReader", "chip_shape", "is_encoded"]


def is_encoded(group: Any) -> bool:
    """Whether a modality group stores encoded tiles rather than float rasters."""
    storage = group.attrs.get("storage", "rasters")
    return (storage.decode() if isinstance(storage, bytes) else str(storage)) == ENCODED_TILES


def missing_datasets(group: Any) -> list[str]:
    """The datasets a modality group of its storage lacks."""
    names = ("tile_bytes", "tile_offsets", "tile_lengths") if is_encoded(group) else ("data",)
    return [name for name in (*names, "mean", "std") if name not in group]


def chip_shape(group: Any, where: str) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a modality group: its chips, channels and chip size in pixels."""
    if not is_encoded(group):
        shape = tuple(int(v) for v in group["data"].shape)
        if len(shape) != 4:
            raise DataFormatError(f"{where}/data has shape {shape}, not (chips, channels, height, width)")
        return shape[0], shape[1], shape[2], shape[3]
    layout = ChipLayout.from_attrs(group.attrs, where)
    offsets, lengths = group["tile_offsets"].shape, group["tile_lengths"].shape
    if len(offsets) != 2 or offsets != lengths or offsets[1] != layout.tiles:
        raise DataFormatError(
            f"{where}: tile_offsets {offsets} and tile_lengths {lengths} do not give {layout.tiles} tile(s) per chip"
        )
    return offsets[0], len(layout.channels), layout.chip_px, layout.chip_px


class ChipReader:
    """One modality of an open aligned set (an ``h5py.Group``), read chip by chip."""

    def __init__(self, group: Any, where: str) -> None:
        self.where = where
        self.shape = chip_shape(group, where)
        self.encoded = is_encoded(group)
        self.nominal_gsd = float(group.attrs["gsd"])
        self._chip_gsd = group["chip_gsd"] if "chip_gsd" in group else None
        if self._chip_gsd is not None and self._chip_gsd.shape != (self.shape[0],):
            raise DataFormatError(f"{where}/chip_gsd has shape {self._chip_gsd.shape}, not ({self.shape[0]},)")
        if self.encoded:
            self.layout = ChipLayout.from_attrs(group.attrs, where)
            self._bytes = group["tile_bytes"]
            self._size = int(self._bytes.shape[0])
            # Where every chip's tiles are: read once (16 bytes per tile), not twice per sample.
            self._offsets = np.asarray(group["tile_offsets"][:], np.uint64)
            self._lengths = np.asarray(group["tile_lengths"][:], np.uint64)
        else:
            self._data = group["data"]
        self._gsds: np.ndarray | None = None

    def gsd(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n,) float64 ground GSDs of chips ``rows``."""
        if self._chip_gsd is None:
            return np.full(len(rows), self.nominal_gsd)
        if self._gsds is None:
            values = np.asarray(self._chip_gsd[:], np.float64)
            if not (np.isfinite(values).all() and (values > 0).all()):
                raise DataFormatError(f"{self.where}/chip_gsd holds a GSD that is not a positive number")
            self._gsds = values
        return self._gsds[np.asarray(rows, np.int64)]

    def read(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(values float32 (C, H, W), invalid bool (C, H, W) or (H, W)) of chip ``row``."""
        if not self.encoded:
            values = np.asarray(self._data[row], dtype=np.float32)
            return values, np.isnan(values)
        bands, valid = self.read_encoded(row)
        return bands.astype(np.float32), ~valid

    def read_encoded(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(bands uint8 (C, H, W), valid bool (H, W)) of chip ``row`` of an encoded-tiles modality."""
        bands, valid, _ = decode_chip(self._tiles(row), self.layout, f"{self.where} chip {row}")
        return bands, valid

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n, C, H, W) float32 of chips ``rows`` (increasing), NaN where invalid."""
        if not self.encoded:
            return np.asarray(self._data[np.asarray(rows, np.int64)], dtype=np.float32)
        out = np.empty((len(rows), *self.shape[1:]), np.float32)
        for k, row in enumerate(rows):
            values, invalid = self.read(int(row))
            values[np.broadcast_to(invalid, values.shape)] = np.nan
            out[k] = values
        return out

    def _tiles(self, row: int) -> list[bytes]:
        offsets, lengths = self._offsets[row], self._lengths[row]
        ends = offsets + lengths
        if (ends > self._size).any() or (ends < offsets).any() or (lengths > MAX_TILE_BYTES).any():
            raise DataFormatError(
                f"{self.where} chip {row}: its tiles lie outside tile_bytes ({self._size} bytes); the file is damaged: "
                "re-create it with `salibi align`"
            )
        start, stop = int(offsets.min()), int(ends.max())
        if stop - start > len(offsets) * MAX_TILE_BYTES:
            raise DataFormatError(f"{self.where} chip {row}: its tiles are scattered over the file; it is damaged")
        span = self._bytes[start:stop].tobytes()
        return [span[int(o) - start : int(o) - start + int(n)] for o, n in zip(offsets, lengths)]
