"""Chips made of encoded web-map tiles (PNG, JPEG, WebP), decoded safely, stitched and masked.

An aligned set imported from tile archives (``salibi align`` on PMTiles) keeps each chip's tiles
as the archive held them -- a few times smaller than their pixels -- and decodes them when read.
A chip's :class:`ChipLayout` says how: ``side`` x ``side`` tiles of ``tile_px`` pixels (row-major:
top-left, top-right, bottom-left, bottom-right when ``side`` is 2), which of the decoded RGBA
channels are the bands, and what a value means:

- alpha 0 is nodata (an image without alpha is valid everywhere);
- ``sar_overflow`` ``"repaired"`` or ``"kept"``: the released SAR tiles stored
  ``uint8(min(max(DN / 1000, 0), 1) * 256)``, so a digital number of 1000 or more became 256 and
  wrapped to 0; a *valid* pixel of 0 is saturated, not dark. Those values are counted and,
  ``"repaired"``, set to 255.

Decoding trusts nothing: the format is told by the bytes' own signature (archives label JPEG
tiles as PNG), a tile larger than :data:`MAX_TILE_BYTES` or of any size but ``tile_px`` square is
refused before its pixels are decoded (Pillow reads the size from the header first), as is what
Pillow calls a decompression bomb; 16-bit and CMYK images are refused. Errors are
:class:`~salibi.errors.DataFormatError` naming the tile.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.errors import DataFormatError

#: Bytes of one encoded tile: a 256 x 256 RGBA image is 256 KiB uncompressed.
MAX_TILE_BYTES = 4 * 2**20
#: What ``sar_overflow`` may say.
SAR_OVERFLOW = ("none", "repaired", "kept")
#: The value a saturated SAR pixel is repaired to.
SATURATED = 255
_SIGNATURES = (("PNG", b"\x89PNG\r\n\x1a\n"), ("JPEG", b"\xff\xd8\xff"))
_MODES = {"RGBA", "RGB", "L", "LA", "P", "PA", "La"}

__all__ = ["ChipLayout", "decode_chip", "decode_tile", "image_format"]


def image_format(data: bytes) -> str | None:
    """``PNG``, ``JPEG`` or ``WEBP`` from the bytes' signature; None for anything else."""
    for name, signature in _SIGNATURES:
        if data.startswith(signature):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_tile(data: bytes, tile_px: int, where: str) -> np.ndarray:
    """(tile_px, tile_px, 3 or 4) uint8 of one encoded tile: RGB, or RGBA when the image has alpha."""
    from PIL import Image

    kind = image_format(data)
    if kind is None:
        start = data[:8].hex(" ") if data else "nothing"
        raise DataFormatError(f"{where}: not a PNG, JPEG or WebP image (it starts with {start})")
    if len(data) > MAX_TILE_BYTES:
        raise DataFormatError(f"{where}: {len(data)} bytes, more than a {tile_px} x {tile_px} tile can need")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
            if image.size != (tile_px, tile_px):
                raise DataFormatError(
                    f"{where}: a {image.size[0]} x {image.size[1]} px {kind} image, not a {tile_px} x {tile_px} px tile"
                )
            if image.mode not in _MODES:
                raise DataFormatError(f"{where}: a {image.mode} {kind} image; expected 8-bit RGB or RGBA")
            image.load()
    except DataFormatError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataFormatError(f"{where}: refused as a decompression bomb ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise DataFormatError(f"{where}: a damaged {kind} image ({err})") from None
    return np.asarray(image if image.mode in ("RGB", "RGBA") else image.convert("RGBA"))


@dataclass(frozen=True)
class ChipLayout:
    """How a chip is made of tiles (see the module docstring)."""

    tile_px: int
    side: int  # tiles per chip side: 1, or 2 for four children stitched
    channels: tuple[int, ...]  # RGBA channels that are the bands, in band order
    sar_overflow: str = "none"

    @property
    def chip_px(self) -> int:
        return self.tile_px * self.side

    @property
    def tiles(self) -> int:
        return self.side * self.side

    def attrs(self) -> dict[str, Any]:
        """The HDF5 attributes that store this layout."""
        return {
            "tile_px": self.tile_px,
            "tiles_per_side": self.side,
            "tile_channels": np.asarray(self.channels, np.int64),
            "sar_overflow": self.sar_overflow,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> ChipLayout:
        try:
            overflow = attrs.get("sar_overflow", "none")
            layout = cls(
                tile_px=int(attrs["tile_px"]),
                side=int(attrs["tiles_per_side"]),
                channels=tuple(int(c) for c in np.asarray(attrs["tile_channels"]).reshape(-1)),
                sar_overflow=overflow.decode() if isinstance(overflow, bytes) else str(overflow),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(f"{where}: incomplete tile layout ({err})") from None
        if (
            not 1 <= layout.tile_px <= 4096
            or layout.side not in (1, 2)
            or not layout.channels
            or not all(0 <= c <= 3 for c in layout.channels)
            or layout.sar_overflow not in SAR_OVERFLOW
        ):
            raise DataFormatError(f"{where}: impossible tile layout {layout}")
        return layout


def decode_chip(
    tiles: Sequence[bytes], layout: ChipLayout, where: str, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(bands uint8 (C, H, W), valid bool (H, W), saturated SAR values counted) of one chip;
    ``names``: what to call each tile in errors (default: ``where`` and its position)."""
    if len(tiles) != layout.tiles:
        raise DataFormatError(f"{where}: {len(tiles)} tiles for a chip of {layout.tiles}")
    t, side = layout.tile_px, layout.side
    bands = np.empty((len(layout.channels), t * side, t * side), np.uint8)
    valid = np.ones((t * side, t * side), bool)
    for k, data in enumerate(tiles):
        r, c = divmod(k, side)
        name = names[k] if names else (where if layout.tiles == 1 else f"{where} tile {k + 1}/{layout.tiles}")
        pixels = decode_tile(data, t, name)  # (t, t, 3 | 4)
        rows, cols = slice(r * t, (r + 1) * t), slice(c * t, (c + 1) * t)
        for band, channel in enumerate(layout.channels):
            if channel >= pixels.shape[-1]:
                raise DataFormatError(f"{name}: an image without channel {channel} (alpha); expected RGBA")
            bands[band, rows, cols] = pixels[..., channel]
        if pixels.shape[-1] == 4:
            np.greater(pixels[..., 3], 0, out=valid[rows, cols])
    saturated = 0
    if layout.sar_overflow != "none":
        wrapped = (bands == 0) & valid
        saturated = int(wrapped.sum())
        if saturated and layout.sar_overflow == "repaired":
            bands[wrapped] = SATURATED
    return bands, valid, saturated
