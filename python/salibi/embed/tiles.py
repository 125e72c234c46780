"""From a tile file to windows the model takes (steps 1-6 of :mod:`salibi.embed`): finding tiles,
reading them, their georeference and GSD, the modality, the bands, normalisation and windows.

:func:`read_tile` runs in DataLoader worker processes when ``num_workers`` > 0: what it takes and
returns is picklable, and a tile that cannot be embedded comes back with the reason, not raised.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.bands import BandIdentity, identify, match_strength, name_key
from salibi.embed.store import PARTS_SUFFIX
from salibi.rasters import envelope, gdal_reason, round_significant

__all__ = [
    "DEFAULT_WINDOW_PATCHES",
    "HIRES_BELOW_M",
    "TILE_SUFFIXES",
    "ModalitySpec",
    "ReadSettings",
    "Tile",
    "TileReader",
    "band_keys",
    "find_tiles",
    "pixel_size_m",
    "read_tile",
    "window_layout",
]

TILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".j2k", ".png", ".jpg", ".jpeg")
#: ``auto``: optical tiles with a GSD below this (metres) are high-res optical.
HIRES_BELOW_M = 5.0
#: Largest window side, in patches (32 x 32 patches = 1024 tokens: 256 px for tiny, 512 px for base).
DEFAULT_WINDOW_PATCHES = 32


def find_tiles(tiles_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """``(path relative to tiles_dir in POSIX form, absolute path)`` of every tile, sorted."""
    root = Path(tiles_dir)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        # An output written inside the tiles folder must not feed its own part files back in.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(PARTS_SUFFIX))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(TILE_SUFFIXES):
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


# -- what the reader is told and what it returns -------------------------------------------------


@dataclass(frozen=True)
class ModalitySpec:
    """What the checkpoint says about one modality's input: band count, names and statistics."""

    channels: int
    bands: tuple[str, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


@dataclass(frozen=True)
class ReadSettings:
    """Everything a reader needs (picklable: sent to DataLoader workers)."""

    modality: str  # "auto" or one of salibi.vocabulary.MODALITIES
    default_gsd: float | None
    specs: dict[str, ModalitySpec]  # the checkpoint's modalities
    patch_size: int
    window_patches: int


@dataclass
class Tile:
    """One read tile: its windows ready for the model, or why it failed."""

    index: int
    path: str
    modality: str = ""
    gsd: float = math.nan
    bounds: tuple[float, float, float, float] = (math.nan,) * 4
    crs: str = ""
    windows: Any = None  # (W, C, h, w) float32 tensor, normalised and zero-padded
    token_masks: Any = None  # (W, N) bool tensor: tokens holding tile pixels
    failure: str | None = None
    per_tile_normalised: bool = False

    def pin_memory(self) -> Tile:
        """Called by the DataLoader (pin_memory=True on CUDA): page-locked windows copy faster."""
        if self.windows is not None:
            self.windows, self.token_masks = self.windows.pin_memory(), self.token_masks.pin_memory()
        return self


class TileReader:
    """Map-style dataset for torch's DataLoader: item i -> :class:`Tile`."""

    def __init__(self, tiles: Sequence[tuple[int, str, Path]], settings: ReadSettings) -> None:
        self.tiles = list(tiles)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> Tile:
        index, rel, path = self.tiles[i]
        return read_tile(index, rel, path, self.settings)


class _TileFailure(Exception):
    """A tile that cannot be embedded; the message is the reason stored in /failed_reason."""


# -- reading one tile ----------------------------------------------------------------------------


def read_tile(index: int, rel: str, path: Path, settings: ReadSettings) -> Tile:
    """Read, select bands, normalise, pad and window one tile; failures are returned, not raised."""
    tile = Tile(index=index, path=rel)
    try:
        _read_into(tile, path, settings)
    except _TileFailure as err:
        tile.failure = str(err)
    except Exception as err:  # one bad file must not stop the other tiles: it becomes a failed row
        tile.failure = f"cannot read: {gdal_reason(err)}; the file may be truncated or corrupt"
    if tile.failure is not None:
        tile.windows = tile.token_masks = None
    return tile


def _read_into(tile: Tile, path: Path, settings: ReadSettings) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain PNG/JPEG: handled by --gsd
        try:
            ds = rasterio.open(path)
        except RasterioIOError as err:
            raise _TileFailure(f"cannot open: {gdal_reason(err)}; the file may be truncated or not a raster") from None
        with ds:
            _georeference(tile, ds, settings.default_gsd)
            is_complex = np.dtype(ds.dtypes[0]).kind == "c"
            tile.modality = _choose_modality(ds, is_complex, tile.gsd, settings)
            spec = settings.specs[tile.modality]
            indexes = _select_bands(ds, tile.modality, spec)
            try:
                data = ds.read(indexes, masked=True)
            except RasterioIOError as err:
                raise _TileFailure(
                    f"cannot read its pixels: {gdal_reason(err)}; the file may be truncated or corrupt"
                ) from None
    values = np.ma.getdata(data)
    invalid = np.ma.getmaskarray(data)
    if is_complex:  # intensity |z|^2, as salibi align stores SLC
        values = values.real.astype(np.float32) ** 2 + values.imag.astype(np.float32) ** 2
    else:
        values = values.astype(np.float32, copy=False)
    invalid = invalid | ~np.isfinite(values)
    if invalid.all():
        raise _TileFailure("no valid pixels (all nodata or NaN)")
    normalised, tile.per_tile_normalised = _normalise(values, invalid, spec)
    tile.windows, tile.token_masks = _windows(normalised, settings.patch_size, settings.window_patches)


# -- georeference and GSD ------------------------------------------------------------------------


def _georeference(tile: Tile, ds: Any, default_gsd: float | None) -> None:
    """Fill bounds, crs and gsd of ``tile`` from the dataset (or the default GSD)."""
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
        tile.bounds = envelope(transform, ds.width, ds.height)
        tile.crs = crs.to_wkt()
    elif default_gsd is not None:
        gsd = default_gsd
    else:
        raise _TileFailure("no georeference: pass --gsd")
    # Real files say 0.49999 m: the model and the output see 0.5.
    tile.gsd = round_significant(gsd, 3)


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


# -- modality ------------------------------------------------------------------------------------


def _choose_modality(ds: Any, is_complex: bool, gsd: float, settings: ReadSettings) -> str:
    if settings.modality != "auto":
        return settings.modality  # checked against the checkpoint before the run
    if is_complex:
        modality, why = "sar", "complex pixels"
    elif ds.count == 2:
        modality, why = "sar", "2 bands"
    elif np.dtype(ds.dtypes[0]).kind == "f" and _looks_like_db(ds):
        modality, why = "sar", "values in dB"
    elif gsd < HIRES_BELOW_M:
        modality, why = "hires", f"GSD {gsd:g} m < {HIRES_BELOW_M:g} m"
    else:
        modality, why = "lores", f"GSD {gsd:g} m >= {HIRES_BELOW_M:g} m"
    if modality not in settings.specs:
        raise _TileFailure(
            f"looks like {modality} ({why}) but the checkpoint has no {modality} encoder "
            f"(it has {', '.join(settings.specs)}); pass --modality to choose one"
        )
    return modality


def _looks_like_db(ds: Any) -> bool:
    """Backscatter in dB is mostly negative; optical reflectance and SAR intensity are not."""
    from rasterio.enums import Resampling

    rows, cols = min(ds.height, 128), min(ds.width, 128)
    sample = ds.read(1, out_shape=(rows, cols), resampling=Resampling.nearest, masked=True)
    values = np.ma.compressed(sample)
    values = values[np.isfinite(values)]
    return values.size > 0 and float(np.median(values)) < 0


# -- bands ---------------------------------------------------------------------------------------

# The weakest salibi.bands.match_strength that still means the same band. Strength 2 (a nearby
# centre wavelength, e.g. B08 for B8A) is another band in the place the encoder learnt this one:
# such a tile gets the RGB or first-bands choice instead.
_SAME_BAND = 1


@dataclass(frozen=True)
class _BandName:
    key: str  # salibi.bands.name_key: the name spelled plainly
    identity: BandIdentity


def _band_name(name: str, modality: str) -> _BandName | None:
    key = name_key(name)
    return _BandName(key, identify(name, sar=modality == "sar")) if key else None


def band_keys(name: str, modality: str) -> list[str]:
    """Identities of a band name, strongest first: ``B4``, ``b04`` -> ``["name:b4", "s2:B04",
    "colour:red"]``. Two band names denote the same band when they share a key."""
    band = _band_name(name, modality)
    if band is None:
        return []
    identity = band.identity
    return [band.key, *(k for k in (identity.primary, *identity.aliases) if k)]


def _match(wanted: _BandName, have: _BandName) -> int | None:
    """How well tile band ``have`` stands for checkpoint band ``wanted`` (0 best), None if not at all:
    the same plain name, then the same identity (``B4`` for ``B04``), then an implied one (``B04`` for ``red``)."""
    if wanted.key == have.key:
        return 0
    match = match_strength(wanted.identity, have.identity)
    return None if match is None or match[0] > _SAME_BAND else 1 + match[0]


def _tile_band_names(ds: Any) -> list[str]:
    """Per band: its description, else its colour interpretation when that is a colour."""
    names = []
    for i in range(ds.count):
        description = (ds.descriptions[i] or "").strip()
        interp = ds.colorinterp[i].name if i < len(ds.colorinterp) else ""
        names.append(description or (interp if interp in ("red", "green", "blue") else ""))
    return names


def _is_alpha(ds: Any, i: int) -> bool:
    return i < len(ds.colorinterp) and ds.colorinterp[i].name == "alpha"


def _find_bands(tile_bands: list[_BandName | None], wanted: Sequence[str], modality: str) -> list[int] | None:
    """1-based indexes of the tile bands that are ``wanted``, each used once; None unless all are found."""
    chosen: list[int] = []
    for name in wanted:
        want = _band_name(name, modality)
        candidates = []  # (strength, band): the best match wins, then the first band
        for i, have in enumerate(tile_bands):
            strength = _match(want, have) if want and have and i not in chosen else None
            if strength is not None:
                candidates.append((strength, i))
        if not candidates:
            return None
        chosen.append(min(candidates)[1])
    return [i + 1 for i in chosen]


def _select_bands(ds: Any, modality: str, spec: ModalitySpec) -> list[int]:
    """1-based band indexes of ``ds`` to feed the ``modality`` encoder (step 4 of :mod:`salibi.embed`)."""
    tile_bands = [_band_name(n, modality) for n in _tile_band_names(ds)]
    if spec.bands:
        by_name = _find_bands(tile_bands, spec.bands, modality)
        if by_name:
            return by_name
    if spec.channels == 3 and modality != "sar":
        rgb = _find_bands(tile_bands, ("red", "green", "blue"), modality)
        if rgb:
            return rgb
    usable = [i + 1 for i in range(ds.count) if not _is_alpha(ds, i)]
    if len(usable) < spec.channels:
        wanted = f" ({', '.join(spec.bands)})" if spec.bands else ""
        raise _TileFailure(
            f"has {len(usable)} band(s) but the checkpoint's {modality} encoder takes {spec.channels}{wanted}; "
            "give tiles with those bands"
        )
    return usable[: spec.channels]


# -- normalisation and windows -------------------------------------------------------------------


def _normalise(values: np.ndarray, invalid: np.ndarray, spec: ModalitySpec) -> tuple[np.ndarray, bool]:
    """``(x - mean) / std`` per band, invalid pixels set to 0 (the mean)."""
    per_tile = spec.mean is None or spec.std is None
    if per_tile:
        valid = np.where(invalid, np.nan, values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-invalid bands
            mean = np.nan_to_num(np.nanmean(valid, axis=(1, 2)))
            std = np.nan_to_num(np.nanstd(valid, axis=(1, 2)))
    else:
        mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    out = (values - mean.astype(np.float32)[:, None, None]) / std[:, None, None]
    out[invalid] = 0.0
    return out.astype(np.float32, copy=False), per_tile


def window_layout(height: int, width: int, patch: int, window_patches: int) -> tuple[int, int, int, int]:
    """``(window rows, window cols, patch rows per window, patch cols per window)`` for a tile:
    equal windows, as few as fit ``window_patches`` x ``window_patches`` patches."""
    rows_p, cols_p = -(-height // patch), -(-width // patch)
    n_rows, n_cols = -(-rows_p // window_patches), -(-cols_p // window_patches)
    return n_rows, n_cols, -(-rows_p // n_rows), -(-cols_p // n_cols)


def _windows(image: np.ndarray, patch: int, window_patches: int) -> tuple[Any, Any]:
    """(C, H, W) -> zero-padded windows (W, C, h, w) and their token masks (W, N)."""
    import torch

    c, h, w = image.shape
    n_rows, n_cols, wr, wc = window_layout(h, w, patch, window_patches)
    full = np.zeros((c, n_rows * wr * patch, n_cols * wc * patch), np.float32)
    full[:, :h, :w] = image
    # tokens holding at least one tile pixel: padding stays out of the mean
    rows_p, cols_p = -(-h // patch), -(-w // patch)
    token_valid = np.zeros((n_rows * wr, n_cols * wc), bool)
    token_valid[:rows_p, :cols_p] = True
    windows = full.reshape(c, n_rows, wr * patch, n_cols, wc * patch).transpose(1, 3, 0, 2, 4)
    windows = windows.reshape(n_rows * n_cols, c, wr * patch, wc * patch)
    masks = token_valid.reshape(n_rows, wr, n_cols, wc).transpose(0, 2, 1, 3).reshape(n_rows * n_cols, wr * wc)
    keep = masks.any(axis=1)  # a window of padding only adds nothing
    return torch.from_numpy(np.ascontiguousarray(windows[keep])), torch.from_numpy(np.ascontiguousarray(masks[keep]))
