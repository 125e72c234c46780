"""Web-mercator XYZ tiles: PMTiles tile ids, tile bounds, and each tile's ground sample distance.

Tile ids (the PMTiles v3 specification): the tiles of zooms ``0 .. z-1`` come first, ``(4^z - 1) / 3``
of them, then zoom ``z``'s tiles in the order of the Hilbert curve over its ``2^z x 2^z`` grid
(``x`` from the west, ``y`` from the north). Both directions work on numpy arrays of ids at once,
so an archive of a hundred thousand tiles is indexed in milliseconds.

Geometry: EPSG:3857 on a sphere of radius 6 378 137 m; a tile of zoom ``z`` is ``2 pi R / 2^z``
mercator metres a side, and its 256 pixels are ``2 pi R / (256 * 2^z)`` mercator metres each. A
mercator metre is ``cos(latitude)`` metres on the ground, so a tile's **ground** GSD is its
mercator resolution times the cosine of the latitude of its centre (3.96 m per pixel for zoom 15
at 34 deg N; the authors' code used grid units and a fixed ratio instead).
"""

from __future__ import annotations

import math

import numpy as np

#: WGS 84 semi-major axis: the sphere of web mercator (EPSG:3857), metres.
EARTH_RADIUS_M = 6_378_137.0
#: Half the mercator world's side, metres: x and y run from -HALF_WORLD_M to +HALF_WORLD_M.
HALF_WORLD_M = math.pi * EARTH_RADIUS_M
#: The deepest zoom whose tile ids fit in 64 bits.
MAX_ZOOM = 31

__all__ = [
    "EARTH_RADIUS_M",
    "MAX_ZOOM",
    "first_id",
    "ground_gsd",
    "mercator_resolution",
    "tile_bounds",
    "tileid_to_zxy",
    "zoom_of",
    "zxy_to_tileid",
]


def first_id(z: int | np.ndarray) -> np.ndarray | int:
    """The id of zoom ``z``'s first tile: the count of tiles of the zooms above, ``(4^z - 1) / 3``."""
    if isinstance(z, np.ndarray):
        return ((np.left_shift(np.uint64(1), 2 * z.astype(np.uint64))) - np.uint64(1)) // np.uint64(3)
    return ((1 << (2 * int(z))) - 1) // 3


#: first_id of every zoom 0 .. MAX_ZOOM + 1 (the last: one past the deepest tile id).
_FIRST_IDS = np.array([first_id(z) for z in range(MAX_ZOOM + 2)], dtype=np.uint64)


def zoom_of(ids: np.ndarray) -> np.ndarray:
    """The zoom of each tile id (uint64 array) -> int64 array."""
    return np.searchsorted(_FIRST_IDS, np.asarray(ids, np.uint64), side="right").astype(np.int64) - 1


def zxy_to_tileid(z: int, x_in: np.ndarray | int, y_in: np.ndarray | int) -> np.ndarray:
    """Tile ids (uint64) of tiles ``x``, ``y`` of zoom ``z``; ValueError outside the zoom's grid."""
    if not 0 <= int(z) <= MAX_ZOOM:
        raise ValueError(f"zoom {z} is outside 0..{MAX_ZOOM}")
    x: np.ndarray = np.array(x_in, np.int64)
    y: np.ndarray = np.array(y_in, np.int64)
    n = 1 << int(z)
    if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= n or y.max() >= n):
        raise ValueError(f"tile x/y outside zoom {z}'s grid of {n} x {n} tiles")
    d = np.zeros(np.broadcast(x, y).shape, np.uint64)
    s = n >> 1
    while s > 0:
        rx: np.ndarray = np.asarray((x & s) > 0)
        ry: np.ndarray = np.asarray((y & s) > 0)
        d += np.uint64(s) * np.uint64(s) * ((3 * rx.astype(np.uint64)) ^ ry.astype(np.uint64))
        x, y = _rotate(n, x, y, rx, ry)
        s >>= 1
    return d + np.uint64(first_id(int(z)))


def tileid_to_zxy(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, x, y) int64 arrays of tile ids (any zooms)."""
    ids = np.asarray(ids, np.uint64)
    z = zoom_of(ids)
    if ids.size and z.max() > MAX_ZOOM:
        raise ValueError(f"tile id {int(ids.max())} is deeper than zoom {MAX_ZOOM}")
    pos = (ids - _FIRST_IDS[z]).astype(np.uint64)
    x = np.zeros(ids.shape, np.int64)
    y = np.zeros(ids.shape, np.int64)
    n = np.left_shift(np.int64(1), z)
    s = 1
    top = int(z.max()) if ids.size else 0
    for _ in range(top):
        active = s < n
        rx = ((pos // np.uint64(2)) & np.uint64(s)).astype(np.int64)
        ry = ((pos ^ rx.astype(np.uint64)) & np.uint64(s)).astype(np.int64)
        rx, ry = np.where(active, rx, 0), np.where(active, ry, 0)
        # rotate within the s x s square, then step into the quadrant
        flip = active & (ry == 0) & (rx != 0)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        swap = active & (ry == 0)
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x, y = x + rx, y + ry
        pos = np.where(active, pos >> np.uint64(1), pos)
        s <<= 1
    return z, x, y


def _rotate(n: int, x: np.ndarray, y: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flip = (~ry) & rx
    x = np.where(flip, n - 1 - x, x)
    y = np.where(flip, n - 1 - y, y)
    return np.where(~ry, y, x), np.where(~ry, x, y)


def tile_side_m(z: int) -> float:
    """A tile's side at zoom ``z`` in mercator metres."""
    return 2.0 * HALF_WORLD_M / (1 << int(z))


def mercator_resolution(z: int, tile_px: int = 256) -> float:
    """Mercator metres per pixel of a ``tile_px`` tile at zoom ``z`` (at the equator: ground metres)."""
    return tile_side_m(z) / tile_px


def tile_bounds(z: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, 4) float64 bounds (min x, min y, max x, max y) in EPSG:3857 of tiles ``x``, ``y`` of zoom ``z``."""
    side = tile_side_m(z)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return np.stack([x * side - HALF_WORLD_M, HALF_WORLD_M - (y + 1) * side, (x + 1) * side - HALF_WORLD_M,
                     HALF_WORLD_M - y * side], axis=-1)  # fmt: skip


def centre_latitude(z: int, y: np.ndarray) -> np.ndarray:
    """Latitude in degrees of the centre of tile rows ``y`` of zoom ``z``."""
    northing = HALF_WORLD_M - (np.asarray(y, np.float64) + 0.5) * tile_side_m(z)
    return np.degrees(np.arctan(np.sinh(northing / EARTH_RADIUS_M)))


def ground_gsd(z: int, y: np.ndarray, tile_px: int = 256) -> np.ndarray:
    """Ground metres per pixel of ``tile_px`` tiles in rows ``y`` of zoom ``z``: the mercator resolution
    times ``cos`` of the latitude of each tile's centre."""
    return mercator_resolution(z, tile_px) * np.cos(np.radians(centre_latitude(z, y)))
