"""Small facts about rasters shared by align, embed and eval (no GDAL import at module level)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["affine_apply", "envelope", "gdal_reason", "round_significant"]


def gdal_reason(err: BaseException, limit: int = 300) -> str:
    """The most specific message in an exception chain: rasterio and h5py wrap GDAL's or HDF5's
    own message ("IReadBlock failed at X offset ...") as the cause of a generic one."""
    messages = []
    seen: BaseException | None = err
    while seen is not None:
        text = " ".join(str(seen).split())
        if text and "see previous exception" not in text.lower():
            messages.append(text)
        seen = seen.__cause__ or seen.__context__
    # The first specific one: GDAL's names the file, band and block; the libtiff message beneath it does not.
    return (messages[0] if messages else type(err).__name__)[:limit]


def round_significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (0.49999 -> 0.5 for 3); non-positive
    and non-finite values unchanged."""
    if value <= 0 or not math.isfinite(value):
        return value
    return float(round(value, digits - 1 - int(math.floor(math.log10(value)))))


def affine_apply(t: Any, x: float, y: float) -> tuple[float, float]:
    """Affine ``t`` applied to the point ``(x, y)`` (spelled out: affine 3 deprecates ``*``)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def envelope(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of a ``width`` x ``height`` raster, also for rotated transforms."""
    corners = [affine_apply(transform, c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))]
    xs, ys = zip(*corners)
    return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))
