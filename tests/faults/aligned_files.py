"""Aligned training sets written by hand, for shapes ``salibi align`` would take long to make:
the layout of format ``salibi-aligned`` version 1 (DESIGN.md "Data formats"), chunks left
unwritten (HDF5 allocates none), so a set of 4000-px chips is a few kilobytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: One modality: (channels, chip side in px, GSD in m/px).
Modality = tuple[int, int, float]


def write_aligned(path: Path, modalities: dict[str, Modality], chips: int = 16, fill: float | None = 0.5) -> Path:
    """A complete aligned set of ``chips`` training chips; ``fill``: the pixel value written into
    small chips (None: leave them unwritten, e.g. for huge chips)."""
    import h5py
    from rasterio.crs import CRS

    tile = {side * gsd for _, side, gsd in modalities.values()}
    assert len(tile) == 1, "every modality must cover the same ground"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "salibi-aligned"
        f.attrs["format_version"] = 1
        f.attrs["crs"] = CRS.from_epsg(32631).to_wkt()
        f.attrs["tile_size_m"] = float(tile.pop())
        f.create_dataset("bounds", data=np.tile(np.array([[0.0, 0.0, 1.0, 1.0]]), (chips, 1)))
        f.create_dataset("split", data=np.zeros(chips, np.uint8))
        for name, (channels, side, gsd) in modalities.items():
            group = f.create_group(name)
            data = group.create_dataset(
                "data", shape=(chips, channels, side, side), dtype="f4", chunks=(1, channels, side, side)
            )
            if fill is not None:
                data[:] = fill + np.arange(channels, dtype="f4")[None, :, None, None]
            group.attrs["gsd"] = float(gsd)
            group.attrs["bands"] = np.array([f"b{i + 1}" for i in range(channels)], dtype=h5py.string_dtype())
            group.attrs["sources"] = np.array(["hand-made"], dtype=h5py.string_dtype())
            group.attrs["nodata"] = np.float32(np.nan)
            group.create_dataset("mean", data=np.full(channels, 0.5, np.float32))
            group.create_dataset("std", data=np.full(channels, 0.1, np.float32))
    return path
