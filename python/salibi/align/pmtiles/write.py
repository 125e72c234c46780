"""The imported set: the finished parts gathered into one aligned HDF5 file (format version 2).

Layout (beside the datasets every aligned set has, ``/bounds``, ``/split``, ``/<m>/mean``,
``/<m>/std``; see :mod:`salibi.data.chips`): per modality the encoded tiles (``tile_bytes``,
``tile_offsets``, ``tile_lengths``; layout attributes) and ``chip_gsd``, each chip's ground GSD;
``/tile_id`` (N,) uint64 and ``/tile_zxy`` (N, 3) the chips' tiles; ``/sar/saturated`` (N,) the
SAR values found wrapped to 0. ``/bounds`` are the tiles' bounds in EPSG:3857 (the set's CRS).
The modality's ``gsd`` attribute is the median of its chips' (for a checkpoint's record and the
reference length of pretraining); every chip is trained with its own.

Written through :func:`salibi.align.write.staged_hdf5` (a temporary name, renamed when complete),
one part's tiles at a time, so memory stays bounded whatever the set's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from salibi.align.pmtiles.convert import ChipNumbers, part_size
from salibi.align.pmtiles.import_plan import ChipPlan
from salibi.align.pmtiles.released import RELEASED
from salibi.align.pmtiles.web_mercator import ground_gsd, tile_bounds, tile_side_m
from salibi.align.split import TRAIN
from salibi.align.write import checked, staged_hdf5
from salibi.data.chips import ENCODED_TILES
from salibi.data.web_tiles import ChipLayout
from salibi.errors import DataFormatError
from salibi.vocabulary import ALIGNED_FORMAT, ALIGNED_FORMAT_VERSION

__all__ = ["band_statistics", "write_imported_set"]


def band_statistics(numbers: ChipNumbers, m: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float32 per band over the valid pixels of chips ``rows``."""
    count = numbers.count[m][rows].sum()
    sums, squares = numbers.sums[m][rows].sum(axis=0), numbers.squares[m][rows].sum(axis=0)
    mean = sums / max(count, 1.0)
    variance = np.maximum(squares / max(count, 1.0) - mean**2, 0.0)
    if count == 0:
        mean = variance = np.full_like(mean, np.nan)
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def write_imported_set(
    output: Path,
    folder: Path,
    plan: ChipPlan,
    numbers: ChipNumbers,
    labels: np.ndarray,
    layouts: Mapping[str, ChipLayout],
    provenance: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """Write the chips of ``plan`` that were kept (``numbers.kept``) and got a split label
    (``labels`` >= 0) to ``output``; per modality the GSDs of the chips written."""
    import h5py
    from rasterio.crs import CRS

    stored = numbers.kept & (labels >= 0)
    rows = np.flatnonzero(stored)
    n = len(rows)
    train = labels[rows] == TRAIN
    size = part_size(len(plan.ids))
    gsds: dict[str, np.ndarray] = {}
    with staged_hdf5(output) as staged:
        f = staged.file
        x, y = plan.x[rows], plan.y[rows]
        f.create_dataset("bounds", data=tile_bounds(plan.zoom, x, y))
        f.create_dataset("split", data=labels[rows].astype(np.uint8))
        f.create_dataset("tile_id", data=plan.ids[rows])
        f.create_dataset("tile_zxy", data=np.stack([np.full(n, plan.zoom), x, y], axis=1).astype(np.int32))
        for m, layout in layouts.items():
            group = f.create_group(m)
            tiles = layout.tiles
            total = int(plan.lengths[m][rows].sum())  # the archive's tile lengths: the bytes kept
            data = group.create_dataset("tile_bytes", shape=(total,), dtype=np.uint8)  # contiguous: no chunk slack
            offsets = group.create_dataset("tile_offsets", shape=(n, tiles), dtype=np.uint64)
            lengths = group.create_dataset("tile_lengths", shape=(n, tiles), dtype=np.uint32)
            written = at = 0
            for k in range(-(-len(plan.ids) // size)):
                part_rows = np.arange(k * size, min((k + 1) * size, len(plan.ids)))
                kept_here = numbers.kept[part_rows]
                with h5py.File(folder / f"part-{k:06d}.h5", "r") as part:
                    chosen = np.flatnonzero(stored[part_rows][kept_here])  # of the part's kept chips, those stored
                    part_lengths = part[m]["tile_lengths"][:].astype(np.int64)  # (kept, T)
                    blob = part[m]["tile_bytes"][:] if len(chosen) else np.zeros(0, np.uint8)
                if not len(chosen):
                    continue
                chip_starts = np.concatenate([[0], np.cumsum(part_lengths.sum(axis=1))])
                chunk = np.concatenate([blob[chip_starts[j] : chip_starts[j + 1]] for j in chosen])
                data[at : at + len(chunk)] = chunk
                chosen_lengths = part_lengths[chosen]
                starts = at + np.concatenate([np.zeros(1, np.int64), np.cumsum(chosen_lengths.reshape(-1))[:-1]])
                lengths[written : written + len(chosen)] = chosen_lengths
                offsets[written : written + len(chosen)] = starts.reshape(-1, tiles)
                at += len(chunk)
                written += len(chosen)
                checked(output, staged.check)
            if written != n or at != total:
                raise DataFormatError(f"{folder}: its parts do not hold the planned tiles; run the command again")
            gsds[m] = ground_gsd(plan.zoom, y, layout.chip_px)
            group.create_dataset("chip_gsd", data=gsds[m])
            mean, std = band_statistics(numbers, m, rows[train])
            group.create_dataset("mean", data=mean)
            group.create_dataset("std", data=std)
            _modality_attributes(group, m, layout, gsds[m], provenance["sources"][m])
        if "sar" in layouts:
            f["sar"].create_dataset("saturated", data=numbers.saturated[rows].astype(np.uint32))
        f.attrs["format"] = ALIGNED_FORMAT
        f.attrs["format_version"] = ALIGNED_FORMAT_VERSION
        f.attrs["crs"] = CRS.from_epsg(3857).to_wkt()
        f.attrs["tile_size_m"] = tile_side_m(plan.zoom)  # mercator metres: the chips' ground size varies
        f.attrs["crs_name"] = "EPSG:3857"
        f.attrs["zoom"] = plan.zoom
        for key, value in provenance.items():
            if key != "sources":
                f.attrs[key] = value
        checked(output, staged.close)
    return gsds


def _modality_attributes(group: Any, m: str, layout: ChipLayout, gsd: np.ndarray, source: str) -> None:
    import h5py

    text = h5py.string_dtype()
    group.attrs["storage"] = ENCODED_TILES
    for key, value in layout.attrs().items():
        group.attrs[key] = value
    group.attrs["gsd"] = float(np.median(gsd)) if len(gsd) else float("nan")
    group.attrs["gsd_range"] = np.array([gsd.min(), gsd.max()] if len(gsd) else [np.nan, np.nan])
    group.attrs["bands"] = np.array(RELEASED[m].bands, dtype=text)
    group.attrs["sources"] = np.array([source], dtype=text)
    group.attrs["nodata"] = np.float32(np.nan)
    group.attrs["chip_px"] = layout.chip_px
