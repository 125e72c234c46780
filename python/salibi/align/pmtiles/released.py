"""The conventions of the Scale-ALiBi authors' released tile archives, stated once.

One PMTiles v3 archive per modality (``sar_tiles*.pmtile``, ``visual_tiles*.pmtile``,
``hires_visual_tiles*.pmtile``), web-mercator tiles of 256 x 256 px keyed by the PMTiles tile id;
samples pair by the same tile in every archive. Decoded as RGBA (the header's tile type says PNG
even where the bytes are JPEG, so the bytes' own signature decides):

- ``sar``: Sentinel-1 GRD; R unused, G = VV, B = VH, A = valid; each value
  ``uint8(min(max(DN / 1000, 0), 1) * 256)`` of the raw digital number, so a DN of 1000 or more
  wrapped to 0 (repaired to 255 unless asked to keep it; see :mod:`salibi.data.web_tiles`);
- ``lores``: Sentinel-2 L2A true colour (the ``visual``/TCI asset): R, G, B = B04, B03, B02, 8-bit,
  A = valid;
- ``hires``: NAIP natural colour, RGB (JPEG) or RGBA; the archive holds each tile and its four
  children of the next zoom, which the authors stitch (top-left, top-right / bottom-left,
  bottom-right) into 512 x 512 px of the same footprint.

The archives' metadata holds only an attribution (and their stored centre has latitude and
longitude swapped): nothing else is read from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from salibi.data.web_tiles import ChipLayout

#: Pixels of a tile side.
TILE_PX = 256


@dataclass(frozen=True)
class ReleasedModality:
    """What one modality's archive holds: its bands and where they are in the decoded RGBA."""

    bands: tuple[str, ...]
    channels: tuple[int, ...]
    sar_overflow: bool  # values in the wrapped DN/1000 encoding
    what: str

    def layout(self, side: int, keep_overflow: bool) -> ChipLayout:
        overflow = "none" if not self.sar_overflow else ("kept" if keep_overflow else "repaired")
        return ChipLayout(TILE_PX, side, self.channels, overflow)


RELEASED: dict[str, ReleasedModality] = {
    "sar": ReleasedModality(("VV", "VH"), (1, 2), True, "Sentinel-1 GRD VV/VH, DN/1000 in 8 bits (sar_tiles)"),
    "lores": ReleasedModality(("B04", "B03", "B02"), (0, 1, 2), False, "Sentinel-2 L2A true colour (visual_tiles)"),
    "hires": ReleasedModality(("red", "green", "blue"), (0, 1, 2), False, "NAIP natural colour (hires_visual_tiles)"),
}
