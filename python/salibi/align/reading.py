"""Reading sources onto the chip grid (the Rust core's ``resample.rs`` does the resampling).

For one rectangle of the grid (a batch of chips, ``extent`` on the target CRS) every input
of a modality is turned into a :class:`Source`: windowed inputs (on the target CRS, north-up)
are read as they are, the others are warped by GDAL straight onto the modality's chip pixel
lattice. Complex rasters (SAR SLC) become linear intensity ``|z|^2``. The core then resamples
all sources onto every chip in parallel, without the GIL, and measures each chip's invalid
fraction (:func:`resample_onto_chips`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from salibi.align.inputs import InputFile, Modality
from salibi.errors import DataFormatError
from salibi.rasters import affine_apply, gdal_reason

# Source pixels read beyond a batch on each side, so bilinear taps at its edge exist.
READ_MARGIN_PX = 2

Extent = tuple[float, float, float, float]  # min_x, min_y, max_x, max_y on the target CRS


class Source(NamedTuple):
    """Pixels of one input over a batch, as the core's ``resample_chips`` takes them."""

    pixels: np.ndarray  # (bands, rows, cols) float32
    transform: tuple[float, float, float, float]  # left, top, pixel width, pixel height
    nodata: float | None
    zero_fill: bool  # no nodata declared: pixels zero in every band are invalid


def resample_onto_chips(mod: Modality, extent: Extent, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chips of ``mod`` whose top-left corners are ``origins`` (inside ``extent``):
    ``(chips (n, bands, px, px) in output band order, invalid fraction per chip (n,))``."""
    from salibi import _core

    sources = [read_source(inp, extent, mod.gsd) for inp in mod.inputs]
    chips, invalid = _core.resample_chips(
        [s.pixels for s in sources],
        [s.transform for s in sources],
        origins,
        mod.gsd,
        mod.size_px,
        nodata=[s.nodata for s in sources],
        zero_fill=[s.zero_fill for s in sources],
    )
    if mod.channel_order is not None:
        chips = chips[:, mod.channel_order]
    return chips, invalid


def read_source(inp: InputFile, extent: Extent, gsd: float) -> Source:
    """Pixels of ``inp`` covering ``extent``: read in a window, or warped at ``gsd``."""
    from rasterio.errors import RasterioError

    try:
        if inp.windowed:
            return _read_window(inp, extent)
        return _warp(inp, extent, gsd)
    except RasterioError as err:
        raise DataFormatError(
            f"{inp.flag}: cannot read its pixels ({gdal_reason(err)}); the file may be truncated or corrupt"
        ) from None


def intensity(values: np.ndarray) -> np.ndarray:
    """Linear intensity ``|z|^2`` of complex values, float32."""
    return (values.real.astype(np.float32) ** 2 + values.imag.astype(np.float32) ** 2).astype(np.float32)


def _nothing(inp: InputFile, extent: Extent) -> Source:
    """A source that covers nothing of ``extent`` (one NaN pixel): its chips are all invalid."""
    return Source(np.full((len(inp.indexes), 1, 1), np.nan, np.float32), (extent[0], extent[3], 1.0, 1.0), None, False)


def _read_window(inp: InputFile, extent: Extent) -> Source:
    from rasterio.windows import Window

    ds = inp.dataset
    t = ds.transform
    col0 = max(0, math.floor((extent[0] - t.c) / t.a + 1e-9) - READ_MARGIN_PX)
    col1 = min(ds.width, math.ceil((extent[2] - t.c) / t.a - 1e-9) + READ_MARGIN_PX)
    row0 = max(0, math.floor((t.f - extent[3]) / -t.e + 1e-9) - READ_MARGIN_PX)
    row1 = min(ds.height, math.ceil((t.f - extent[1]) / -t.e - 1e-9) + READ_MARGIN_PX)
    if col1 <= col0 or row1 <= row0:
        return _nothing(inp, extent)
    window = Window(col0, row0, col1 - col0, row1 - row0)
    if inp.is_complex:
        values = intensity(ds.read(inp.indexes, window=window))
        nodata = None
    else:
        values = ds.read(inp.indexes, window=window, out_dtype=np.float32)
        nodata = None if ds.nodata is None else float(ds.nodata)
    transform = (t.c + col0 * t.a, t.f + row0 * t.e, t.a, -t.e)
    return Source(np.ascontiguousarray(values), transform, nodata, ds.nodata is None)


def _warp(inp: InputFile, extent: Extent, gsd: float) -> Source:
    """Warp with GDAL straight onto the modality's pixel lattice over ``extent``."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    ds = inp.dataset
    width = int(round((extent[2] - extent[0]) / gsd))
    height = int(round((extent[3] - extent[1]) / gsd))
    destination = np.full((len(inp.indexes), height, width), np.nan, np.float32)
    dst_transform = Affine(gsd, 0.0, extent[0], 0.0, -gsd, extent[3])
    resampling = Resampling.average if gsd > inp.native_gsd * (1 + 1e-6) else Resampling.bilinear
    common = dict(
        destination=destination,
        dst_transform=dst_transform,
        dst_crs=inp.target,
        dst_nodata=np.nan,
        resampling=resampling,
        # One thread: GDAL's multi-threaded warper swallows read errors of corrupt files
        # (and prints them itself); the parallel work is the core's anyway.
        num_threads=1,
    )
    if inp.is_complex:
        window = _source_window(inp, extent)
        if window is None:
            return _nothing(inp, extent)
        values = intensity(ds.read(inp.indexes, window=window))
        values[:, (values == 0).all(axis=0)] = np.nan  # zero fill of the SLC
        reproject(values, src_transform=ds.window_transform(window), src_crs=ds.crs, src_nodata=np.nan, **common)
    else:
        reproject(rasterio.band(ds, inp.indexes), src_nodata=ds.nodata, **common)
    return Source(destination, (extent[0], extent[3], gsd, gsd), None, ds.nodata is None)


def _source_window(inp: InputFile, extent: Extent) -> Any:
    """The source pixel window (plus margin) that covers ``extent`` on the target CRS."""
    from rasterio.warp import transform as transform_points
    from rasterio.windows import Window

    ds = inp.dataset
    xs = [extent[0], extent[2], extent[0], extent[2], (extent[0] + extent[2]) / 2]
    ys = [extent[1], extent[1], extent[3], extent[3], (extent[1] + extent[3]) / 2]
    sx, sy = transform_points(inp.target, ds.crs, xs, ys)
    inverse = ~ds.transform
    cols, rows = zip(*(affine_apply(inverse, x, y) for x, y in zip(sx, sy)))
    col0 = max(0, math.floor(min(cols)) - READ_MARGIN_PX)
    col1 = min(ds.width, math.ceil(max(cols)) + READ_MARGIN_PX)
    row0 = max(0, math.floor(min(rows)) - READ_MARGIN_PX)
    row1 = min(ds.height, math.ceil(max(rows)) + READ_MARGIN_PX)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)
