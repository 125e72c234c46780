"""The areas one ``salibi fetch`` covers: the box, its web-mercator tiles, and a shard's share.

An area is a lon/lat box with a key that names its folder. Without ``--tiles`` the one area is
``--bbox`` (key ``bbox``). ``--tiles Z/X/Y`` (repeatable; the authors' ``-t``) makes each tile an
area (key ``Z-X-Y``), cut to ``--bbox`` when both are given; ``--tiles Z`` alone means every
zoom-``Z`` tile that meets ``--bbox``. ``--shard I/N`` keeps areas ``I, I+N, I+2N, ...`` of that
sorted list, so the ranks of a SLURM array or of torchrun fetch disjoint areas into one folder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from salibi.errors import InputError

#: Web-mercator latitude limit (tiles end there).
MAX_LATITUDE = 85.0511287798066
#: Tiles one --tiles Z may expand to.
MAX_TILES = 100_000


@dataclass(frozen=True)
class Area:
    """A lon/lat box (west, south, east, north) and the key naming its folder."""

    key: str
    bbox: tuple[float, float, float, float]


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``W,S,E,N`` in degrees, checked."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"--bbox {text}: give four numbers W,S,E,N in degrees, e.g. --bbox -0.78,38.08,-0.74,38.13")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InputError(f"--bbox {text}: needs -180 <= W < E <= 180 and -90 <= S < N <= 90 (longitude first, degrees)")
    return west, south, east, north


_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?"


def check_datetime(text: str) -> str:
    """``START/END`` (dates or RFC 3339 times, ``..`` for open) or one date, checked."""
    from datetime import datetime

    parts = text.split("/")
    ok = 1 <= len(parts) <= 2 and all(p == ".." or re.fullmatch(_DATE, p) for p in parts) and parts != ["..", ".."]
    if ok:
        try:
            bounds = [datetime.fromisoformat(p.replace("Z", "+00:00")) for p in parts if p != ".."]
        except ValueError:
            ok = False
        else:
            if len(bounds) == 2 and bounds[0].replace(tzinfo=None) > bounds[1].replace(tzinfo=None):
                raise InputError(f"--datetime {text}: the start is after the end")
    if not ok:
        raise InputError(f"--datetime {text}: give START/END as dates or RFC 3339 times, e.g. 2023-06-01/2023-08-31")
    return text


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The lon/lat box of web-mercator (XYZ, "slippy map") tile ``z/x/y``."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return (x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    lat = max(-MAX_LATITUDE, min(MAX_LATITUDE, lat))
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def plan_areas(bbox: tuple[float, float, float, float] | None, tiles: list[str]) -> list[Area]:
    """Every area of the query, sorted by key (see the module docstring)."""
    if not tiles:
        if bbox is None:
            raise InputError("give --bbox W,S,E,N or --tiles Z/X/Y")
        return [Area("bbox", bbox)]
    areas: dict[str, Area] = {}
    for text in tiles:
        numbers = text.split("/")
        if not all(n.isdigit() for n in numbers) or len(numbers) not in (1, 3) or int(numbers[0]) > 24:
            raise InputError(f"--tiles {text}: give Z/X/Y (a web-mercator tile, zoom 0-24) or a zoom Z with --bbox")
        z = int(numbers[0])
        if len(numbers) == 1:
            if bbox is None:
                raise InputError(f"--tiles {text}: a zoom alone needs --bbox (its tiles that meet the box are fetched)")
            x0, y0 = _tile_of(bbox[0], bbox[3], z)
            x1, y1 = _tile_of(bbox[2], bbox[1], z)
            if (x1 - x0 + 1) * (y1 - y0 + 1) > MAX_TILES:
                raise InputError(f"--tiles {text}: more than {MAX_TILES} tiles over --bbox; choose a lower zoom")
            chosen = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        else:
            x, y = int(numbers[1]), int(numbers[2])
            if not (x < 2**z and y < 2**z):
                raise InputError(f"--tiles {text}: zoom {z} has tiles 0..{2**z - 1} in X and Y")
            chosen = [(x, y)]
        for x, y in chosen:
            box = tile_bounds(z, x, y)
            if bbox is not None:
                box = (max(box[0], bbox[0]), max(box[1], bbox[1]), min(box[2], bbox[2]), min(box[3], bbox[3]))
                if box[0] >= box[2] or box[1] >= box[3]:
                    if len(numbers) == 3:
                        raise InputError(f"--tiles {text}: the tile does not meet --bbox")
                    continue
            areas[f"{z}-{x}-{y}"] = Area(f"{z}-{x}-{y}", box)
    return [areas[k] for k in sorted(areas, key=lambda k: tuple(int(v) for v in k.split("-")))]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``I/N`` (0 <= I < N) as ``(I, N)``; None is ``(0, 1)``."""
    if text is None:
        return 0, 1
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not found or not int(found[1]) < int(found[2]):
        raise InputError(
            f"--shard {text}: give I/N with 0 <= I < N, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
        )
    return int(found[1]), int(found[2])


def shard_areas(areas: list[Area], shard: tuple[int, int]) -> list[Area]:
    """This shard's areas: every N-th from the I-th."""
    index, count = shard
    return areas[index::count]
