"""What one import of tile archives wrote: the numbers ``salibi align`` prints and callers inspect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`salibi.align.pmtiles.import_archives` wrote."""

    path: Path
    zoom: int
    tiles_at_zoom: dict[str, int]
    chips_in_every_archive: int
    chips_kept: int
    chips_train: int
    chips_val: int
    chips_test: int
    dropped_missing_child: int
    dropped_nodata: int
    dropped_no_split: int
    dropped_buffer: int
    split_from: str  # "files" or "spatial"
    bands: dict[str, list[str]]
    chip_px: dict[str, int]
    tiles_per_chip: dict[str, int]
    gsd_range: dict[str, tuple[float, float]]
    gsd_median: dict[str, float]
    sar_saturated: int
    sar_overflow: str  # "repaired", "kept" or "none"
    tile_bytes: int
    file_bytes: int
    resumed_chips: int
    seconds: float

    @property
    def size_ratio(self) -> float:
        """The output's bytes per byte of the tiles it holds."""
        return self.file_bytes / self.tile_bytes if self.tile_bytes else float("nan")

    def format(self) -> str:
        """A few human-readable lines (what ``salibi align`` prints)."""
        z = self.zoom
        counts = ", ".join(f"{m} {n}" for m, n in self.tiles_at_zoom.items())
        lines = [
            f"wrote {self.path}: {self.chips_kept} chips ({self.chips_train} train, {self.chips_val} validation, "
            f"{self.chips_test} test) of zoom {z}, CRS EPSG:3857",
            f"  tiles of zoom {z}: {counts}; {self.chips_in_every_archive} in every archive",
            "  dropped: "
            + (f"{self.dropped_missing_child} missing a hires tile of zoom {z + 1}, " if "hires" in self.bands else "")
            + f"{self.dropped_nodata} with too many invalid pixels, "
            + (
                f"{self.dropped_no_split} in no split file"
                if self.split_from == "files"
                else f"{self.dropped_buffer} buffer chips between train and validation (spatial split)"
            ),
        ]
        for m, bands in self.bands.items():
            low, high = self.gsd_range[m]
            stitched = f" ({self.tiles_per_chip[m]} tiles of zoom {z + 1})" if self.tiles_per_chip[m] > 1 else ""
            line = (
                f"  {m}: {', '.join(bands)}, {self.chip_px[m]}x{self.chip_px[m]} px{stitched}, ground GSD "
                f"{low:.4g}..{high:.4g} m/px (median {self.gsd_median[m]:.4g})"
            )
            if m == "sar":
                fate = {"repaired": "repaired to 255", "kept": "kept as 0 (--keep-sar-overflow)"}.get(
                    self.sar_overflow, ""
                )
                line += f"; {self.sar_saturated} saturated values (DN >= 1000 wrapped to 0) {fate}"
            lines.append(line)
        lines.append(
            f"  size: {self.file_bytes / 1e6:.1f} MB for {self.tile_bytes / 1e6:.1f} MB of tiles "
            f"({self.size_ratio:.2f}x; the tiles are kept encoded)"
        )
        resumed = f", {self.resumed_chips} chips from an earlier run" if self.resumed_chips else ""
        lines.append(f"  {self.seconds:.1f} s{resumed}")
        return "\n".join(lines)
