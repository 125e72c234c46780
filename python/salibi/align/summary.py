"""What one ``salibi align`` run wrote: the numbers the command prints and callers inspect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AlignSummary:
    """What :func:`salibi.align.align` wrote."""

    path: Path
    chips_in_grid: int
    chips_kept: int
    chips_train: int
    chips_val: int
    chips_dropped_nodata: int
    chips_dropped_buffer: int
    footprint: tuple[float, float, float, float]
    grid_extent: tuple[float, float, float, float]
    crs: str
    tile_size_m: float
    gsd: dict[str, float]
    chip_px: dict[str, int]
    bands: dict[str, list[str]]
    split_block_chips: int
    seconds: float

    @property
    def chips_per_second(self) -> float:
        return self.chips_in_grid / self.seconds if self.seconds > 0 else float("inf")

    def format(self) -> str:
        """A few human-readable lines (what ``salibi align`` prints)."""
        x0, y0, x1, y1 = self.footprint
        lines = [
            f"wrote {self.path}: {self.chips_kept} chips ({self.chips_train} train, {self.chips_val} validation)",
            f"  grid: {self.chips_in_grid} chips of {self.tile_size_m:g} m; dropped {self.chips_dropped_nodata} "
            f"with too many invalid pixels and {self.chips_dropped_buffer} buffer chips between train and validation "
            f"(split blocks of {self.split_block_chips}x{self.split_block_chips} chips)",
            f"  footprint: {x0:.1f}, {y0:.1f} .. {x1:.1f}, {y1:.1f} ({(x1 - x0) / 1000:.2f} x {(y1 - y0) / 1000:.2f} km) "
            f"in {self.crs}",
        ]
        for m in self.gsd:
            lines.append(
                f"  {m}: {len(self.bands[m])} band(s) [{', '.join(self.bands[m])}] at {self.gsd[m]:g} m/px, "
                f"{self.chip_px[m]}x{self.chip_px[m]} px per chip"
            )
        lines.append(f"  {self.seconds:.1f} s, {self.chips_per_second:.0f} chips/s")
        return "\n".join(lines)
