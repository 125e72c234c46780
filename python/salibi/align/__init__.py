"""Build a co-registered multi-modal training set (``salibi align``).

Chips of one ground footprint are cut out of high-resolution optical (``hires``), low-resolution
optical (``lores``, e.g. Sentinel-2) and SAR (``sar``, e.g. Sentinel-1) rasters and written to
one HDF5 file (format ``salibi-aligned``, see DESIGN.md "Data formats": version 2, whose raster
layout is version 1's). The paper's released PMTiles archives are imported by
:mod:`salibi.align.pmtiles` instead (``salibi align`` tells them by their magic bytes).

How it works (the module that does each step in brackets; the Rust core's counterparts are in
``rust/salibi-core/src/align/``):

1. Every input is opened with rasterio. Several files of one modality are that modality's
   bands in the order given (they may differ in resolution); ``bands={"lores": [4, 3, 2]}``
   picks bands by their 1-based position in that concatenation. Each file's acquisition time is
   read from its tags; every chip records the low-res scene's (else the first modality's that
   has one) as ``/datetime``. [:mod:`.inputs`]
2. The target CRS is ``crs``, else the high-res input's own (without high-res input: the
   low-res one's), or the UTM zone of the footprint centre when that is geographic. [:mod:`.grid`]
3. The chip grid (Rust core, ``tiles.rs``) covers the intersection of all inputs, each chip a
   whole number of pixels at every modality's GSD, anchored on the pixel lattice of the finest
   input that is already on the target grid, so chips at its native GSD are exact copies of
   its pixels. [:mod:`.grid`]
4. The grid is processed in strips of chip rows, read in column batches within a memory
   budget. [:mod:`.strips`] Inputs on the target CRS and north-up are read in windows; the
   others are warped by GDAL (rasterio.warp) once per batch straight onto the modality's chip
   pixel lattice. Complex rasters (SAR SLC) are turned into linear intensity ``|z|^2``. The
   Rust core (``resample.rs``) then resamples every source onto every chip (area average when
   downsampling, bilinear otherwise) in parallel, without the GIL, and measures each chip's
   invalid fraction. [:mod:`.reading`]
5. A pixel is invalid when it is NaN, equals its file's nodata value or, for files that
   declare no nodata, is zero in every selected band of the file (zero fill). Chips with more
   than ``max_nodata`` invalid pixels in any modality are dropped. Invalid pixels of kept chips
   are stored as NaN (the ``nodata`` attribute); :class:`salibi.data.AlignedDataset` fills them
   with the band mean. [:mod:`.strips`]
6. Train/validation split by spatial blocks of ``split_block_chips`` x ``split_block_chips``
   chips: whole blocks go to validation until ``val_fraction`` of the kept chips is reached;
   training chips that touch a validation chip (8-neighbourhood, corners included) are dropped
   as a buffer, so no training chip is adjacent to a validation chip. [:mod:`.split`]
7. Band mean and standard deviation per modality over the training chips (NaN ignored).
   [:mod:`.write`]

The output is written to a temporary file next to it, flushed to disk and renamed when
complete (:mod:`salibi.fileio`); what was written comes back as an :class:`AlignSummary`.
Modalities appear in the shared order of :data:`salibi.vocabulary.MODALITIES` (sar, lores, hires).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from salibi.align.grid import common_footprint, place_on_target, plan_grid, target_crs
from salibi.align.inputs import as_paths, check_arguments, open_modality, rename_bands
from salibi.align.settings import DEFAULTS
from salibi.align.summary import AlignSummary
from salibi.align.write import check_output, write_aligned_set
from salibi.vocabulary import MODALITIES

__all__ = ["AlignSummary", "align"]

Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def align(
    hires: Paths = (),
    lores: Paths = (),
    sar: Paths = (),
    *,
    output: str | os.PathLike[str],
    tile_size_m: float = DEFAULTS.tile_size_m,
    gsd: Mapping[str, float] | None = None,
    bands: Mapping[str, Sequence[int]] | None = None,
    band_names: Mapping[str, Sequence[str]] | None = None,
    crs: str | None = None,
    max_nodata: float = DEFAULTS.max_nodata,
    val_fraction: float = DEFAULTS.val_fraction,
    overwrite: bool = False,
    seed: int = DEFAULTS.seed,
    progress: bool = True,
) -> AlignSummary:
    """Cut co-registered chips of every given modality into one HDF5 training set.

    ``hires``/``lores``/``sar``: a path or a list of paths per modality (at least two
    modalities). ``gsd``: metres per pixel per modality (default: the native GSD of the
    modality's finest file rounded to three significant digits, e.g. 0.49999 -> 0.5; to two
    for files that must be reprojected, whose GSD on the target CRS is an estimate).
    ``bands``: 1-based band positions over the concatenated bands of a modality's files.
    ``band_names``: names for a modality's kept bands, in order (default: the files' band
    descriptions, else the band a one-band file's name states -- ``..._B04.jp2`` -> ``B04``,
    ``..._VV.tif`` -> ``VV``, ``LC08_..._SR_B5.TIF`` -> ``LC08_B5`` -- else ``<file stem>:<band>``); name them when the files do not (``red``,
    ``VV``, ``B04``, ...) so evaluation and embedding can match bands by name.
    ``val_fraction``: share of the kept chips (before buffer chips are dropped) that goes to
    validation. Raises :class:`salibi.errors.SalibiError` subclasses for anything the user can
    fix; no output is left behind on failure.
    """
    started = time.perf_counter()
    files = {"hires": as_paths(hires), "lores": as_paths(lores), "sar": as_paths(sar)}
    gsd = dict(gsd or {})
    picked: dict[str, list[int]] = {k: [int(b) for b in v] for k, v in (bands or {}).items()}
    present = [m for m in MODALITIES if files[m]]
    check_arguments(present, gsd, picked, tile_size_m, max_nodata, val_fraction)
    output = Path(output)
    check_output(output, overwrite)

    import rasterio

    with ExitStack() as stack, rasterio.Env():
        modalities = [open_modality(m, files[m], picked.get(m), stack) for m in present]
        rename_bands(modalities, band_names or {})
        target = target_crs(crs, modalities)
        for mod in modalities:
            for inp in mod.inputs:
                place_on_target(inp, target)
        footprint = common_footprint(modalities, target)
        for mod in modalities:
            mod.gsd = float(gsd.get(mod.name, min(inp.native_gsd for inp in mod.inputs)))
        grid = plan_grid(modalities, footprint, tile_size_m)
        for mod in modalities:
            mod.size_px = int(round(tile_size_m / mod.gsd))
        return write_aligned_set(
            output=output,
            modalities=modalities,
            grid=grid,
            target=target,
            footprint=footprint,
            tile_size_m=float(tile_size_m),
            max_nodata=float(max_nodata),
            val_fraction=float(val_fraction),
            seed=seed,
            progress=progress,
            started=started,
        )
