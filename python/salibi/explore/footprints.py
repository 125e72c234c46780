"""Chip footprints on the web map: each row's ``bounds`` (on its own CRS) as four corners in
EPSG:4326, then in MapLibre's mercator units (the world is the square [0, 1] x [0, 1], y down).

The page keeps them as float32 offsets from one float64 origin (the middle of the drawn chips),
which places a corner within millimetres anywhere a set of chips lies together (float32 alone
would be metres off at the far side of the world)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Footprints", "footprints", "mercator"]

#: The latitude MapLibre's square mercator world ends at.
MAX_LATITUDE = 85.051129


@dataclass
class Footprints:
    """``corners`` (N, 4, 2) lon/lat (lower-left, lower-right, upper-right, upper-left; NaN where a
    row has no georeference) and ``drawn`` (N,) the rows that have one."""

    corners: np.ndarray
    drawn: np.ndarray

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the drawn chips (the whole world when none is)."""
        if not self.drawn.any():
            return (-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE)
        drawn = self.corners[self.drawn]
        return (
            float(drawn[..., 0].min()),
            float(drawn[..., 1].min()),
            float(drawn[..., 0].max()),
            float(drawn[..., 1].max()),
        )


def footprints(bounds: np.ndarray, crs: list[str]) -> Footprints:
    """The lon/lat corners of every row (``bounds`` (N, 4) xmin, ymin, xmax, ymax on the row's CRS,
    given as WKT; rows without a CRS or with NaN bounds are not drawn)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform

    bounds = np.asarray(bounds, np.float64).reshape(-1, 4)
    wkt = np.asarray(crs, dtype=object)
    drawn = np.isfinite(bounds).all(axis=1) & (wkt != "")
    corners = np.full((len(bounds), 4, 2), np.nan)
    xs = bounds[:, [0, 2, 2, 0]]
    ys = bounds[:, [1, 1, 3, 3]]
    for source in sorted(set(wkt[drawn].tolist())):
        rows = np.flatnonzero(drawn & (wkt == source))
        lon, lat = transform(CRS.from_wkt(source), CRS.from_epsg(4326), xs[rows].ravel(), ys[rows].ravel())
        corners[rows, :, 0] = np.asarray(lon).reshape(-1, 4)
        corners[rows, :, 1] = np.asarray(lat).reshape(-1, 4)
    drawn &= np.isfinite(corners).all(axis=(1, 2))
    corners[~drawn] = np.nan
    return Footprints(corners, drawn)


def mercator(lonlat: np.ndarray) -> np.ndarray:
    """lon/lat (..., 2) in MapLibre's mercator units (x east from -180 deg, y south from the top)."""
    lon = lonlat[..., 0]
    lat = np.clip(lonlat[..., 1], -MAX_LATITUDE, MAX_LATITUDE)
    x = (180.0 + lon) / 360.0
    y = (180.0 - np.degrees(np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)))) / 360.0
    return np.stack([x, y], axis=-1)
