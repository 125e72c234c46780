"""Tiles: finding the rasters of a folder, their georeference and GSD, and reading a whole tile
into windows the model takes (steps 1-6 of :mod:`salibi.embed` for a folder of tiles), with its
acquisition time when its tags record one (:func:`salibi.rasters.acquisition_time`).

:func:`read_tile` runs in DataLoader worker processes when ``num_workers`` > 0: what it takes and
returns is picklable, and a tile that cannot be embedded comes back with the reason, not raised.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.inputs.pixels import normalise, read_routed, to_windows
from salibi.embed.inputs.routing import BandLayout, BandRefusal, BandRoute, Router
from salibi.embed.output.store import PARTS_SUFFIX
from salibi.embed.records import Chip, ReadSettings
from salibi.rasters import acquisition_time, envelope, gdal_reason, pixel_size_m, round_significant

__all__ = [
    "TILE_SUFFIXES",
    "Georeference",
    "TileFailure",
    "TileWork",
    "band_layout",
    "find_tiles",
    "georeference",
    "looks_like_db",
    "open_raster",
    "read_tile",
    "route_raster",
    "router_for",
]

TILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".j2k", ".png", ".jpg", ".jpeg")


def find_tiles(tiles_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """``(path relative to tiles_dir in POSIX form, absolute path)`` of every tile, sorted.

    Symbolic links to files and folders are followed, but each real folder is visited once: a
    folder reached again (a second link to it, or a link back up that makes a loop) is not
    entered again, so its tiles are listed once, under the path that comes first in sorted order.
    Hidden files and folders are skipped."""
    root = Path(tiles_dir)
    found = []
    visited: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError:  # gone or unreadable since it was listed: os.walk skips it the same way
            dirs[:] = []
            continue
        if (info.st_dev, info.st_ino) in visited:
            dirs[:] = []
            continue
        visited.add((info.st_dev, info.st_ino))
        # An output written inside the tiles folder must not feed its own part files back in.
        # Sorted as "name/", the order of the paths below them: the first path met is the first sorted.
        kept = [d for d in dirs if not d.startswith(".") and not d.endswith(PARTS_SUFFIX)]
        dirs[:] = sorted(kept, key=lambda d: d + "/")
        for name in files:
            if not name.startswith(".") and name.lower().endswith(TILE_SUFFIXES):
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


@dataclass(frozen=True)
class TileWork:
    """One tile: a whole file, one row (a work item)."""

    rel: str
    path: str


class TileFailure(Exception):
    """A raster that cannot be embedded; the message is the reason stored in ``failed_reason``."""


@contextmanager
def open_raster(path: Path) -> Iterator[Any]:
    """The raster open for reading (a plain PNG/JPEG without georeference too), or a :class:`TileFailure`."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain PNG/JPEG: handled by --gsd
        try:
            ds = rasterio.open(path)
        except RasterioIOError as err:
            raise TileFailure(f"cannot open: {gdal_reason(err)}; the file may be truncated or not a raster") from None
        with ds:
            yield ds


# -- georeference and GSD ------------------------------------------------------------------------


class Georeference:
    """Where a raster lies: ``bounds`` and ``crs`` (WKT; NaN and ``""`` without georeference), and
    its GSD in metres rounded to 3 significant digits (real files say 0.49999 m: the model and the
    output see 0.5)."""

    def __init__(self, bounds: tuple[float, float, float, float], crs: str, gsd: float) -> None:
        self.bounds, self.crs, self.gsd = bounds, crs, gsd


def georeference(ds: Any, default_gsd: float | None) -> Georeference:
    """The raster's georeference, its GSD from it, else ``default_gsd``; else a :class:`TileFailure`."""
    crs, transform = ds.crs, ds.transform
    if transform.is_identity and ds.gcps[0]:  # GCP-only rasters (some Sentinel-1 products)
        from rasterio.transform import from_gcps

        gcps, crs = ds.gcps
        transform = from_gcps(gcps)
    gsd = None
    if crs is not None and not transform.is_identity:
        try:
            gsd = pixel_size_m(crs, transform, ds.width, ds.height)
        except (ValueError, ArithmeticError, TypeError, AttributeError):
            gsd = None  # a CRS without usable units: treated as not georeferenced
    if gsd is not None and math.isfinite(gsd) and gsd > 0:
        return Georeference(envelope(transform, ds.width, ds.height), crs.to_wkt(), round_significant(gsd, 3))
    if default_gsd is not None:
        return Georeference((math.nan,) * 4, "", round_significant(default_gsd, 3))
    raise TileFailure("no georeference: pass --gsd")


# -- the band contract, applied to an open raster --------------------------------------------------


def band_layout(ds: Any, file_name: str) -> BandLayout:
    """What ``ds`` (a raster called ``file_name``) says about its bands (:class:`~salibi.embed.inputs.routing.BandLayout`)."""
    return BandLayout.of(
        ds.descriptions, [c.name for c in ds.colorinterp], file_name, ds.driver, np.dtype(ds.dtypes[0]).kind == "c"
    )


def looks_like_db(ds: Any) -> bool:
    """Backscatter in dB is mostly negative; optical reflectance and SAR intensity are not."""
    from rasterio.enums import Resampling

    if np.dtype(ds.dtypes[0]).kind != "f":
        return False
    rows, cols = min(ds.height, 128), min(ds.width, 128)
    sample = ds.read(1, out_shape=(rows, cols), resampling=Resampling.nearest, masked=True)
    values = np.ma.compressed(sample)
    values = values[np.isfinite(values)]
    return values.size > 0 and float(np.median(values)) < 0


def router_for(settings: ReadSettings) -> Router:
    """A :class:`~salibi.embed.inputs.routing.Router` for the rasters read with ``settings`` (one per run and process)."""
    return Router(settings.specs, settings.modality, settings.fill_missing, settings.band_names)


def route_raster(ds: Any, file_name: str, gsd: float, router: Router) -> tuple[BandRoute, bool]:
    """The encoder and bands for ``ds`` under the band contract, and whether its pixels are complex;
    a :class:`TileFailure` with the reason when it has none."""
    layout = band_layout(ds, file_name)
    try:
        chosen = router.route(layout, gsd, looks_like_db=lambda: looks_like_db(ds))
    except BandRefusal as err:
        raise TileFailure(str(err)) from None
    return chosen, layout.is_complex


# -- reading one tile ----------------------------------------------------------------------------


def read_tile(rel: str, path: Path, settings: ReadSettings, router: Router | None = None) -> Chip:
    """Read, route, normalise, pad and window one tile (opened once); failures are returned, not
    raised. ``router``: the run's, which routes each band layout once (else a new one)."""
    chip = Chip(path=rel, source=rel)
    try:
        _read_into(chip, path, settings, router or router_for(settings))
    except TileFailure as err:
        chip.failure = str(err)
    except Exception as err:  # one bad file must not stop the other tiles: it becomes a failed row
        chip.failure = f"cannot read: {gdal_reason(err)}; the file may be truncated or corrupt"
    if chip.failure is not None:
        chip.windows = chip.token_masks = None
    return chip


def _read_into(chip: Chip, path: Path, settings: ReadSettings, router: Router) -> None:
    from rasterio.errors import RasterioIOError

    with open_raster(path) as ds:
        where = georeference(ds, settings.default_gsd)
        chip.bounds, chip.crs, chip.gsd = where.bounds, where.crs, where.gsd
        chip.window = (0, 0, int(ds.width), int(ds.height))
        chip.datetime = acquisition_time(ds.tags())
        chosen, is_complex = route_raster(ds, path.name, where.gsd, router)
        chip.modality, chip.bands, chip.assumption = chosen.modality, chosen.label, chosen.assumption
        try:
            values, invalid = read_routed(ds, chosen, is_complex)
        except RasterioIOError as err:
            raise TileFailure(
                f"cannot read its pixels: {gdal_reason(err)}; the file may be truncated or corrupt"
            ) from None
    if invalid[[k for k, f in enumerate(chosen.filled) if not f]].all():
        raise TileFailure("no valid pixels (all nodata or NaN)")
    image, chip.per_tile_normalised = normalise(values, invalid, settings.specs[chosen.modality], chosen.filled)
    chip.windows, chip.token_masks = to_windows(image, settings.patch_size, settings.window_patches)
