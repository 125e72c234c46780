"""Small facts about rasters shared by fetch, align, embed and eval (no GDAL import at module level)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ACQUISITION_TAG",
    "TIFF_DATETIME_TAG",
    "acquisition_tags",
    "acquisition_time",
    "affine_apply",
    "as_utc",
    "envelope",
    "gdal_reason",
    "iso_utc",
    "parse_iso_utc",
    "pixel_size_m",
    "round_significant",
]

#: GDAL metadata item (default domain) holding a raster's acquisition time, ISO 8601 in UTC
#: (``2019-09-19T18:00:00Z``): what ``salibi fetch`` writes from the STAC item's ``datetime``.
ACQUISITION_TAG = "ACQUISITION_DATETIME"
#: The baseline TIFF tag DateTime (306) as GDAL names it: ``YYYY:MM:DD HH:MM:SS``, no zone
#: (salibi writes it in UTC, and reads it as UTC).
TIFF_DATETIME_TAG = "TIFFTAG_DATETIME"
_TIFF_DATETIME_FORMAT = "%Y:%m:%d %H:%M:%S"


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


_WGS84_A = 6378137.0
_WGS84_E2 = 6.69437999014e-3


def pixel_size_m(crs: Any, transform: Any, width: int, height: int) -> float:
    """Metres per pixel: the coarser of the column and row steps of ``transform`` (a geographic
    CRS is converted on the WGS84 ellipsoid at the raster's centre latitude)."""
    if crs.is_geographic:
        name, radians_per_unit = crs.units_factor
        degrees_per_unit = math.degrees(radians_per_unit)
        _, lat = transform @ (width / 2, height / 2)
        phi = math.radians(lat * degrees_per_unit)
        metres_per_degree_lat = 111132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
        metres_per_degree_lon = (math.pi * _WGS84_A * math.cos(phi)) / (
            180 * math.sqrt(1 - _WGS84_E2 * math.sin(phi) ** 2)
        )
        sx, sy = metres_per_degree_lon * degrees_per_unit, metres_per_degree_lat * degrees_per_unit
        column_step = math.hypot(transform.a * sx, transform.d * sy)
        row_step = math.hypot(transform.b * sx, transform.e * sy)
        return max(column_step, row_step)
    _, metres_per_unit = crs.linear_units_factor
    return max(math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)) * metres_per_unit


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC: converted when it has a zone, taken as UTC when it has none."""
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iso_utc(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with a ``Z`` (``2019-09-19T18:00:00Z``; microseconds when it has them)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def parse_iso_utc(text: str) -> datetime:
    """ISO 8601 text (``Z``, ``z`` or an offset; none: UTC) as a UTC time; ``ValueError`` when it is not one."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00")))


def acquisition_tags(moment: datetime) -> dict[str, str]:
    """The tags that record ``moment`` as a raster's acquisition time: :data:`ACQUISITION_TAG`
    (ISO 8601, UTC) and the TIFF DateTime tag (whole seconds, UTC), for ``update_tags``."""
    utc = as_utc(moment)
    return {ACQUISITION_TAG: iso_utc(utc), TIFF_DATETIME_TAG: utc.strftime(_TIFF_DATETIME_FORMAT)}


def acquisition_time(tags: Mapping[str, str]) -> datetime | None:
    """A raster's acquisition time (UTC) from its default-domain tags (rasterio's ``ds.tags()``):
    :data:`ACQUISITION_TAG` when it parses, else the TIFF DateTime tag (read as UTC) when it
    parses; None otherwise (never guessed)."""
    text = tags.get(ACQUISITION_TAG)
    if text is not None:
        try:
            return parse_iso_utc(text)
        except ValueError:
            pass
    text = tags.get(TIFF_DATETIME_TAG)
    if text is not None:
        try:
            return datetime.strptime(text.strip(), _TIFF_DATETIME_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return None
