"""Embed every tile of a folder (``salibi embed``): one row per tile with its georeference.

::

    from salibi.embed import embed_folder, read_embeddings
    summary = embed_folder("tiles/", "runs/first", "out.h5")   # -> EmbedSummary
    print(summary.format())
    table = read_embeddings("out.h5")       # numpy columns: embedding, path, modality, gsd, ...

How a tile becomes a row:

1. Tiles are the files under ``tiles_dir`` (recursively, sorted, hidden files and folders
   skipped) ending in ``.tif``/``.tiff`` (GeoTIFF, COG), ``.jp2``/``.j2k`` (JPEG 2000),
   ``.png``, ``.jpg``/``.jpeg``; everything else is ignored. All are read with rasterio
   (GDAL), so a PNG/JPEG with a world file or ``.aux.xml`` beside it is georeferenced.
2. Ground sampling distance (GSD): from the georeference -- the coarser of the two pixel axes,
   in metres (a geographic CRS is converted with the WGS84 ellipsoid at the tile's centre
   latitude) -- else ``gsd``; a tile with neither fails with ``no georeference: pass --gsd``.
   The GSD is rounded to 3 significant digits (real files say 0.49999 m), which is what is
   fed to the model and stored.
3. Modality: ``modality`` or, with ``auto``: SAR when the tile is complex, has exactly 2 bands,
   or holds floats whose median is negative (backscatter in dB); else high-res optical when the
   GSD is below 5 m; else low-res optical. A tile whose modality the checkpoint lacks fails.
4. Bands: the checkpoint modality's bands by name when all of them are found among the tile's
   band names (GDAL band descriptions or colour interpretation; ``B4`` = ``B04``, ``red`` =
   ``B04``, case and zero padding ignored); else red, green, blue when the encoder takes three
   bands and the tile names them; else the first bands the encoder takes. A tile with fewer
   bands fails. Complex SAR becomes intensity ``|z|^2``, as ``salibi align`` stores it.
5. Normalisation: ``(x - mean) / std`` with the checkpoint's statistics; a checkpoint saved
   without them is normalised per tile and band (the summary says so). Invalid pixels (NaN,
   the file's nodata value, GDAL's mask e.g. a PNG alpha band) become 0, the band mean.
6. Size: tiles are **padded**, never cropped: the normalised tile is padded with zeros (the
   band mean) at the bottom and right to a multiple of the patch size. A tile larger than
   ``window_patches`` x ``window_patches`` patches is cut into equal windows no larger than
   that. The row is the mean of the encoder tokens of the patches holding tile pixels (padding
   patches are left out), over all windows: a token-count-weighted mean of the windows. A tile
   is read whole into memory: cut multi-gigabyte scenes into tiles first (e.g. gdal_retile.py).
7. Windows of equal (modality, GSD, size) are batched, ``batch_size`` per forward pass, on
   ``device`` (``auto``: CUDA when available, with bf16 autocast); ``num_workers`` processes
   read tiles (a torch DataLoader).

Output: HDF5 ``salibi-embeddings`` version 1 (DESIGN.md "Data formats"). Crash safety and
resume: the finished ``out.h5`` is only ever replaced whole (written under a temporary name,
then renamed). While a run goes on, finished rows (and failures) are written as small complete
files ``out.h5.parts/part-NNNNNN.h5`` (also temporary name + rename) every ``batch_size`` tiles
and at least every 10 seconds; at the end ``out.h5`` and the parts are merged into a new
``out.h5`` and the parts deleted. A run that is killed keeps its parts; the next run with the
same output skips every tile already in ``out.h5`` or a part (by path relative to
``tiles_dir``), retries the failed ones and merges everything into exactly one row per tile.
A tile that changed since it was embedded is not embedded again (use a new output for that).
An output written with another checkpoint (sha256 of ``model.safetensors``) is refused. One
run per output at a time (a lock on the parts folder).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.devices import resolve_device
from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.progress import RateProgress

if TYPE_CHECKING:  # pragma: no cover
    import h5py
    import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TILE_SUFFIXES",
    "EmbedSummary",
    "Embeddings",
    "embed_folder",
    "find_tiles",
    "read_embeddings",
]

FORMAT = "salibi-embeddings"
FORMAT_VERSION = 1
TILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".j2k", ".png", ".jpg", ".jpeg")
MODALITIES = ("hires", "lores", "sar")
#: ``auto``: optical tiles with a GSD below this (metres) are high-res optical.
HIRES_BELOW_M = 5.0
#: Largest window side, in patches (32 x 32 patches = 1024 tokens: 256 px for tiny, 512 px for base).
DEFAULT_WINDOW_PATCHES = 32
#: Finished rows are written to a part file at least this often.
FLUSH_SECONDS = 10.0

PARTS_SUFFIX = ".parts"
_PART_NAME = re.compile(r"^part-(\d{6,})\.h5$")
_STRING_COLUMNS = ("path", "modality", "crs")
# Rows copied at once when merging parts into the output.
_MERGE_CHUNK_ROWS = 16384


# -- results -------------------------------------------------------------------------------------


@dataclass
class EmbedSummary:
    """What :func:`embed_folder` did."""

    output: Path
    tiles_found: int
    embedded: int  # rows added by this run
    skipped: int  # tiles already in the output (or its parts) before this run
    failed: int  # tiles this run could not embed
    rows: int  # rows in the output now
    seconds: float
    device: str
    checkpoint: Path
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run
    notes: list[str] = field(default_factory=list)

    @property
    def tiles_per_second(self) -> float:
        done = self.embedded + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0

    def format(self, max_failures: int = 5) -> str:
        """The summary line (and the first failures, notes) that ``salibi embed`` prints."""
        lines = [
            f"embedded {self.embedded}, skipped {self.skipped} (already in the output), failed {self.failed} "
            f"of {self.tiles_found} tiles in {self.seconds:.1f} s ({self.tiles_per_second:.1f} tiles/s) on "
            f"{self.device} -> {self.output} ({self.rows} rows)"
        ]
        for path, reason in self.failures[:max_failures]:
            lines.append(f"  failed: {path}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more (see /failed_path, /failed_reason)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass
class Embeddings:
    """An embeddings file read into memory (:func:`read_embeddings`)."""

    embedding: np.ndarray  # (N, D) float32
    path: list[str]
    modality: list[str]
    gsd: np.ndarray  # (N,) float64
    bounds: np.ndarray  # (N, 4) float64
    crs: list[str]
    failed_path: list[str]
    failed_reason: list[str]
    attrs: dict[str, Any]

    def row_of(self, path: str) -> int:
        return self.path.index(path)


# -- finding tiles -------------------------------------------------------------------------------


def find_tiles(tiles_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """``(path relative to tiles_dir in POSIX form, absolute path)`` of every tile, sorted."""
    root = Path(tiles_dir)
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(PARTS_SUFFIX))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(TILE_SUFFIXES):
                path = Path(folder) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


# -- reading one tile (in a worker process when num_workers > 0) ---------------------------------


@dataclass(frozen=True)
class _ModalitySpec:
    channels: int
    bands: tuple[str, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


@dataclass(frozen=True)
class _ReadSettings:
    """Everything a reader needs (picklable: sent to DataLoader workers)."""

    modality: str  # "auto" or one of MODALITIES
    default_gsd: float | None
    specs: dict[str, _ModalitySpec]  # the checkpoint's modalities
    patch_size: int
    window_patches: int


@dataclass
class _Tile:
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

    def pin_memory(self) -> _Tile:
        """Called by the DataLoader (pin_memory=True on CUDA): page-locked windows copy faster."""
        if self.windows is not None:
            self.windows, self.token_masks = self.windows.pin_memory(), self.token_masks.pin_memory()
        return self


class _TileReader:
    """Map-style dataset for torch's DataLoader: item i -> :class:`_Tile`."""

    def __init__(self, tiles: Sequence[tuple[int, str, Path]], settings: _ReadSettings) -> None:
        self.tiles = list(tiles)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> _Tile:
        index, rel, path = self.tiles[i]
        return read_tile(index, rel, path, self.settings)


def _identity(item: Any) -> Any:
    return item


def read_tile(index: int, rel: str, path: Path, settings: _ReadSettings) -> _Tile:
    """Read, select bands, normalise, pad and window one tile; failures are returned, not raised."""
    tile = _Tile(index=index, path=rel)
    try:
        _read_into(tile, path, settings)
    except _TileFailure as err:
        tile.failure = str(err)
    except Exception as err:
        tile.failure = f"cannot read: {_gdal_reason(err)}; the file may be truncated or corrupt"
    if tile.failure is not None:
        tile.windows = tile.token_masks = None
    return tile


class _TileFailure(Exception):
    """A tile that cannot be embedded; the message is the reason stored in /failed_reason."""


def _gdal_reason(err: BaseException) -> str:
    """The most specific message: rasterio wraps GDAL's own ("IReadBlock failed ...") as the cause."""
    while err.__cause__ is not None and "see previous exception" in str(err).lower():
        err = err.__cause__
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300]


def _read_into(tile: _Tile, path: Path, settings: _ReadSettings) -> None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            ds = rasterio.open(path)
        except RasterioIOError as err:
            raise _TileFailure(f"cannot open: {_gdal_reason(err)}; the file may be truncated or not a raster") from None
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
                    f"cannot read its pixels: {_gdal_reason(err)}; the file may be truncated or corrupt"
                ) from None
    values = np.ma.getdata(data)
    invalid = np.ma.getmaskarray(data)
    if is_complex:
        values = values.real.astype(np.float32) ** 2 + values.imag.astype(np.float32) ** 2
    else:
        values = values.astype(np.float32, copy=False)
    invalid = invalid | ~np.isfinite(values)
    if invalid.all():
        raise _TileFailure("no valid pixels (all nodata or NaN)")
    normalised, tile.per_tile_normalised = _normalise(values, invalid, spec)
    tile.windows, tile.token_masks = _windows(normalised, settings.patch_size, settings.window_patches)


def _georeference(tile: _Tile, ds: Any, default_gsd: float | None) -> None:
    """Fill bounds, crs and gsd of ``tile`` from the dataset (or the default GSD)."""
    crs, transform = ds.crs, ds.transform
    if transform.is_identity and ds.gcps[0]:  # GCP-only rasters (some Sentinel-1 products)
        from rasterio.transform import from_gcps

        gcps, crs = ds.gcps
        transform = from_gcps(gcps)
    gsd = None
    if crs is not None and not transform.is_identity:
        try:
            gsd = _pixel_size_m(crs, transform, ds.width, ds.height)
        except (ValueError, ArithmeticError, TypeError, AttributeError):
            gsd = None  # a CRS without usable units: treated as not georeferenced
    if gsd is not None and math.isfinite(gsd) and gsd > 0:
        tile.bounds = _envelope(transform, ds.width, ds.height)
        tile.crs = crs.to_wkt()
    elif default_gsd is not None:
        gsd = default_gsd
    else:
        raise _TileFailure("no georeference: pass --gsd")
    tile.gsd = _round_significant(gsd, 3)


_WGS84_A = 6378137.0
_WGS84_E2 = 6.69437999014e-3


def _pixel_size_m(crs: Any, transform: Any, width: int, height: int) -> float:
    """Metres per pixel: the coarser of the column and row steps of ``transform``."""
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


def _envelope(transform: Any, width: int, height: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*(transform @ (c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))))
    return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))


def _round_significant(value: float, digits: int) -> float:
    return float(round(value, digits - 1 - int(math.floor(math.log10(value)))))


def _choose_modality(ds: Any, is_complex: bool, gsd: float, settings: _ReadSettings) -> str:
    available = ", ".join(settings.specs)
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
            f"looks like {modality} ({why}) but the checkpoint has no {modality} encoder (it has {available}); "
            "pass --modality to choose one"
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


# Names of colours (GDAL colour interpretation, band descriptions) -> one spelling.
_COLOUR_WORDS = {
    "red": "red",
    "r": "red",
    "green": "green",
    "g": "green",
    "blue": "blue",
    "b": "blue",
    "nir": "nir",
    "near infrared": "nir",
    "nearinfrared": "nir",
    "near-infrared": "nir",
}
_S2_COLOUR = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
_S2_BAND = re.compile(r"^(?:s2[_\s-]?)?b?0*(\d{1,2}a?)(?:\s*[-_:]\s*.*)?$", re.IGNORECASE)


def band_keys(name: str, modality: str) -> list[str]:
    """Identities of a band name, strongest first: ``B4``, ``b04`` -> ``["name:b4", "s2:B04",
    "colour:red"]``. Two band names denote the same band when they share a key."""
    text = " ".join(name.strip().lower().split())
    if not text:
        return []
    keys = ["name:" + re.sub(r"(?<!\d)0+(?=\d)", "", re.sub(r"[\s_\-]+", "", text))]
    if modality == "sar":
        pols = set(re.findall(r"(?<![a-z])(vv|vh|hh|hv)(?![a-z])", text))
        if len(pols) == 1:
            keys.append("pol:" + pols.pop())
        return keys
    match = _S2_BAND.match(text)
    number = match.group(1).upper() if match else ""
    s2 = "B8A" if number == "8A" else f"B{int(number):02d}" if number.isdigit() and 1 <= int(number) <= 12 else None
    if s2:
        keys.append("s2:" + s2)
        if s2 in _S2_COLOUR:
            keys.append("colour:" + _S2_COLOUR[s2])
    colour = _COLOUR_WORDS.get(text)
    if colour:
        keys.append("colour:" + colour)
    return keys


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


def _select_bands(ds: Any, modality: str, spec: _ModalitySpec) -> list[int]:
    """1-based band indexes of ``ds`` to feed the ``modality`` encoder (see the module doc)."""
    names = _tile_band_names(ds)
    tile_keys = [band_keys(n, modality) if n else [] for n in names]

    def find(wanted: Sequence[str]) -> list[int] | None:
        chosen: list[int] = []
        for name in wanted:
            keys = band_keys(name, modality)
            candidates = []  # (strength of the strongest shared key, band), unused bands only
            for i, keys_i in enumerate(tile_keys):
                shared = [keys.index(k) for k in keys_i if k in keys]
                if shared and i not in chosen:
                    candidates.append((min(shared), i))
            if not candidates:
                return None
            chosen.append(min(candidates)[1])
        return [i + 1 for i in chosen]

    if spec.bands:
        by_name = find(spec.bands)
        if by_name:
            return by_name
    if spec.channels == 3 and modality != "sar":
        rgb = find(("red", "green", "blue"))
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


def _normalise(values: np.ndarray, invalid: np.ndarray, spec: _ModalitySpec) -> tuple[np.ndarray, bool]:
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
    """``(window rows, window cols, patch rows per window, patch cols per window)`` for a tile."""
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
    # tokens holding at least one tile pixel
    rows_p, cols_p = -(-h // patch), -(-w // patch)
    token_valid = np.zeros((n_rows * wr, n_cols * wc), bool)
    token_valid[:rows_p, :cols_p] = True
    windows = full.reshape(c, n_rows, wr * patch, n_cols, wc * patch).transpose(1, 3, 0, 2, 4)
    windows = windows.reshape(n_rows * n_cols, c, wr * patch, wc * patch)
    masks = token_valid.reshape(n_rows, wr, n_cols, wc).transpose(0, 2, 1, 3).reshape(n_rows * n_cols, wr * wc)
    keep = masks.any(axis=1)  # a window of padding only adds nothing
    return torch.from_numpy(np.ascontiguousarray(windows[keep])), torch.from_numpy(np.ascontiguousarray(masks[keep]))


# -- the output file and its parts ---------------------------------------------------------------


@dataclass
class _Rows:
    """Columns of some rows (a part's worth)."""

    embedding: list[np.ndarray] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    modality: list[str] = field(default_factory=list)
    gsd: list[float] = field(default_factory=list)
    bounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    crs: list[str] = field(default_factory=list)
    failed_path: list[str] = field(default_factory=list)
    failed_reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.path) + len(self.failed_path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _string_dtype(length: int | None = None) -> Any:
    import h5py

    return h5py.string_dtype("utf-8", length)


def _create_layout(f: h5py.File, attrs: dict[str, Any], rows: int, failed: int, dim: int, crs_bytes: int) -> None:
    for key, value in attrs.items():
        f.attrs[key] = value
    f.create_dataset("embedding", shape=(rows, dim), dtype=np.float32)
    for name in ("path", "modality"):
        f.create_dataset(name, shape=(rows,), dtype=_string_dtype())
    f.create_dataset("gsd", shape=(rows,), dtype=np.float64)
    f.create_dataset("bounds", shape=(rows, 4), dtype=np.float64)
    # The same WKT repeats on most rows: fixed-length strings compress it to almost nothing
    # (variable-length ones live uncompressed in the global heap).
    crs_options: dict[str, Any] = {}
    if rows:
        crs_options = dict(chunks=(min(rows, 4096),), compression="gzip", shuffle=True)
    f.create_dataset("crs", shape=(rows,), dtype=_string_dtype(max(1, crs_bytes)), **crs_options)
    for name in ("failed_path", "failed_reason"):
        f.create_dataset(name, shape=(failed,), dtype=_string_dtype())


def _encode_fixed(values: Sequence[str], length: int) -> np.ndarray:
    # h5py converts only to a numpy dtype carrying the same utf-8 tag as the dataset
    return np.array([v.encode("utf-8") for v in values], dtype=_string_dtype(max(1, length)))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Output:
    """``out.h5`` plus ``out.h5.parts/``: checks, the part writer and the final merge."""

    def __init__(self, path: Path, attrs: dict[str, Any], dim: int) -> None:
        self.path = path
        self.parts = path.with_name(path.name + PARTS_SUFFIX)
        self.attrs = attrs
        self.dim = dim
        self._lock_fd: int | None = None
        self._next_part = 0

    # checking and locking
    def prepare(self) -> tuple[set[str], list[str]]:
        """Check the output and its parts, lock them, drop leftovers of killed writes.
        Returns the paths already embedded and warnings about damaged parts."""
        if self.path.exists() and not self.path.is_file():
            raise InputError(f"-o {self.path}: is a folder; give a file name such as {self.path / 'embeddings.h5'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.parts.mkdir(exist_ok=True)
            probe = self.parts / f".probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise InputError(
                f"-o {self.path}: cannot write there ({err.strerror or err}); choose a writable location"
            ) from None
        self._lock()
        for leftover in self.parts.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        done: set[str] = set()
        if self.path.exists():
            done.update(self._check(self.path, is_part=False))
        problems = []
        numbers = [-1]
        for part in self._part_files():
            try:
                done.update(self._check(part, is_part=True))
            except _DamagedPart as err:
                problems.append(str(err))
                part.unlink(missing_ok=True)
                continue
            numbers.append(int(_PART_NAME.match(part.name)[1]))  # type: ignore[index]
        self._next_part = max(numbers) + 1
        return done, problems

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no lock
            return
        for _ in range(3):
            self.parts.mkdir(exist_ok=True)
            fd = os.open(self.parts, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputExistsError(
                    f"-o {self.path}: another salibi embed is writing this output right now; "
                    "wait for it to finish or choose another -o"
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.parts))
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)  # the folder was removed by a run that just finished: lock the new one
        raise OutputExistsError(f"-o {self.path}: another salibi embed keeps replacing {self.parts}; choose another -o")

    def close(self) -> None:
        """Remove the parts folder when empty (only if this run holds it), release the lock."""
        if self._lock_fd is not None:
            self.remove_parts_folder_if_empty()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted((p for p in self.parts.iterdir() if _PART_NAME.match(p.name)), key=lambda p: p.name)

    def _check(self, path: Path, is_part: bool) -> list[str]:
        """The embedded paths of an existing output or part, after checking its format and checkpoint."""
        import h5py

        try:
            with h5py.File(path, "r") as f:
                fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
                sha, variant = f.attrs.get("checkpoint_sha256"), f.attrs.get("variant")
                width = f["embedding"].shape[1:] if "embedding" in f else None
                paths = list(f["path"].asstr()[:]) if "path" in f else None
        except OSError as err:
            if is_part:
                raise _DamagedPart(
                    f"{path}: damaged part ({_gdal_reason(err)}); ignored, its tiles are embedded again"
                ) from None
            raise DataFormatError(
                f"-o {path}: exists but cannot be read as HDF5 ({_gdal_reason(err)}); choose another -o or delete it"
            ) from None
        if fmt != FORMAT or version != FORMAT_VERSION:
            if is_part:
                raise _DamagedPart(f"{path}: not a {FORMAT} part; ignored and deleted")
            raise DataFormatError(
                f"-o {path}: exists but is not a {FORMAT} version {FORMAT_VERSION} file "
                f"(format {fmt!r}, version {version!r}); choose another -o or delete it"
            )
        if sha != self.attrs["checkpoint_sha256"]:
            where = f"{self.parts} holds rows" if is_part else f"-o {path} holds embeddings"
            raise OutputExistsError(
                f"{where} of another checkpoint (sha256 {str(sha)[:12]}..., variant {variant}) than "
                f"{self.attrs['checkpoint']} (sha256 {self.attrs['checkpoint_sha256'][:12]}...); embeddings of "
                "different checkpoints do not mix: choose another -o"
            )
        if paths is None or width != (self.dim,):
            if is_part:
                raise _DamagedPart(f"{path}: incomplete part; ignored, its tiles are embedded again")
            raise DataFormatError(f"-o {path}: a damaged {FORMAT} file (no /path or /embedding); choose another -o")
        return paths

    # writing
    def write_part(self, rows: _Rows) -> None:
        """Write ``rows`` as the next complete part file (temporary name, then rename)."""
        import h5py

        if not len(rows):
            return
        final = self.parts / f"part-{self._next_part:06d}.h5"
        temporary = final.with_name(final.name + ".tmp")
        crs_bytes = max((len(c.encode("utf-8")) for c in rows.crs), default=1)
        with h5py.File(temporary, "w") as f:
            _create_layout(f, self.attrs_for_file(), len(rows.path), len(rows.failed_path), self.dim, crs_bytes)
            if rows.path:
                f["embedding"][:] = np.stack(rows.embedding).astype(np.float32)
                f["path"][:] = rows.path
                f["modality"][:] = rows.modality
                f["gsd"][:] = np.asarray(rows.gsd, np.float64)
                f["bounds"][:] = np.asarray(rows.bounds, np.float64).reshape(-1, 4)
                f["crs"][:] = _encode_fixed(rows.crs, crs_bytes)
            if rows.failed_path:
                f["failed_path"][:] = rows.failed_path
                f["failed_reason"][:] = rows.failed_reason
        os.replace(temporary, final)
        self._next_part += 1

    def attrs_for_file(self) -> dict[str, Any]:
        return {k: v for k, v in self.attrs.items() if k != "checkpoint"}

    def merge(self) -> int:
        """Merge ``out.h5`` and the parts into a new ``out.h5`` (one row per path, a failure
        only for paths without a row, the latest failure of a path); delete the parts.
        Returns the number of rows."""
        import h5py

        parts = self._part_files()
        if not parts:
            self.remove_parts_folder_if_empty()
            return self.rows_in_output()
        sources = ([self.path] if self.path.exists() else []) + parts
        seen: set[str] = set()
        keep: list[np.ndarray] = []
        failures: dict[str, str] = {}
        crs_bytes = 1
        for source in sources:
            with h5py.File(source, "r") as f:
                paths = f["path"].asstr()[:]
                mask = np.zeros(len(paths), bool)
                for i, p in enumerate(paths):
                    if p not in seen:
                        seen.add(p)
                        mask[i] = True
                keep.append(mask)
                if mask.any():  # our files store fixed-length CRS strings: their width is enough
                    crs_bytes = max(crs_bytes, f["crs"].dtype.itemsize)
                for p, reason in zip(f["failed_path"].asstr()[:], f["failed_reason"].asstr()[:]):
                    failures.pop(p, None)  # the latest failure of a path, in the order found
                    failures[p] = reason
        failures = {p: r for p, r in failures.items() if p not in seen}
        total = int(sum(int(m.sum()) for m in keep))
        temporary = self.parts / "merged.h5.tmp"
        with h5py.File(temporary, "w") as out:
            _create_layout(out, self.attrs_for_file(), total, len(failures), self.dim, crs_bytes)
            at = 0
            for source, mask in zip(sources, keep):
                with h5py.File(source, "r") as f:
                    for start in range(0, len(mask), _MERGE_CHUNK_ROWS):
                        sel = mask[start : start + _MERGE_CHUNK_ROWS]
                        n = int(sel.sum())
                        if n == 0:
                            continue
                        stop = start + len(sel)
                        out["embedding"][at : at + n] = f["embedding"][start:stop][sel]
                        out["path"][at : at + n] = f["path"].asstr()[start:stop][sel]
                        out["modality"][at : at + n] = f["modality"].asstr()[start:stop][sel]
                        out["gsd"][at : at + n] = f["gsd"][start:stop][sel]
                        out["bounds"][at : at + n] = f["bounds"][start:stop][sel]
                        out["crs"][at : at + n] = _encode_fixed(list(f["crs"].asstr()[start:stop][sel]), crs_bytes)
                        at += n
            if failures:
                out["failed_path"][:] = list(failures)
                out["failed_reason"][:] = list(failures.values())
        _fsync(temporary)
        os.replace(temporary, self.path)
        try:
            _fsync(self.path.parent)
        except OSError:  # pragma: no cover - some filesystems cannot fsync a folder
            pass
        for part in parts:
            part.unlink(missing_ok=True)
        self.remove_parts_folder_if_empty()
        return total

    def remove_parts_folder_if_empty(self) -> None:
        try:
            self.parts.rmdir()
        except OSError:
            pass  # not empty (someone's file) or already gone: left as it is

    def rows_in_output(self) -> int:
        import h5py

        if not self.path.exists():
            return 0
        with h5py.File(self.path, "r") as f:
            return int(f["embedding"].shape[0])


class _DamagedPart(Exception):
    pass


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read a ``salibi-embeddings`` file into memory (for modest sizes; use h5py for huge ones)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such embeddings file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or f.attrs.get("format_version") != FORMAT_VERSION:
                raise DataFormatError(f"{path}: not a {FORMAT} version {FORMAT_VERSION} file")
            return Embeddings(
                embedding=f["embedding"][:],
                path=list(f["path"].asstr()[:]),
                modality=list(f["modality"].asstr()[:]),
                gsd=f["gsd"][:],
                bounds=f["bounds"][:],
                crs=list(f["crs"].asstr()[:]),
                failed_path=list(f["failed_path"].asstr()[:]),
                failed_reason=list(f["failed_reason"].asstr()[:]),
                attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
            )
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read as HDF5 ({_gdal_reason(err)})") from None


# -- progress ------------------------------------------------------------------------------------


# -- the run -------------------------------------------------------------------------------------


def _modality_specs(model: Any) -> dict[str, _ModalitySpec]:
    specs = {}
    for m in model.modalities:
        info = model.modality_info.get(m) or {}

        def values(key: str) -> tuple | None:
            v = info.get(key)
            return tuple(v) if v is not None and len(v) == model.config.channels[m] else None

        specs[m] = _ModalitySpec(
            channels=int(model.config.channels[m]),
            bands=values("bands"),
            mean=values("mean"),
            std=values("std"),
        )
    return specs


@dataclass
class _Pending:
    """A tile whose windows are (partly) through the model."""

    tile: _Tile
    windows_left: int
    token_sum: Any = None  # (D,) float64 tensor on CPU
    token_count: int = 0


def embed_folder(
    tiles_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    modality: str = "auto",
    gsd: float | None = None,
    batch_size: int = 32,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
    window_patches: int = DEFAULT_WINDOW_PATCHES,
) -> EmbedSummary:
    """Embed every tile under ``tiles_dir`` with the checkpoint's encoders into ``output``
    (HDF5 ``salibi-embeddings`` v1), skipping tiles already there. See the module doc."""

    started = time.perf_counter()
    tiles_dir, output = Path(tiles_dir), Path(output)
    if modality != "auto" and modality not in MODALITIES:
        raise InputError(f"--modality {modality}: expected auto, {', '.join(MODALITIES)}")
    if gsd is not None and not (math.isfinite(gsd) and gsd > 0):
        raise InputError(f"--gsd {gsd}: must be a positive number of metres per pixel")
    if batch_size < 1 or num_workers < 0 or window_patches < 1:
        raise InputError("--batch-size and the window must be at least 1, --num-workers at least 0")
    if not tiles_dir.exists():
        raise MissingInputError(f"{tiles_dir}: no such folder; give the folder that holds the tiles")
    if not tiles_dir.is_dir():
        raise InputError(f"{tiles_dir}: not a folder; give the folder that holds the tiles")
    found = find_tiles(tiles_dir)
    if not found:
        raise MissingInputError(
            f"{tiles_dir}: no tiles found (looked for {', '.join(TILE_SUFFIXES)} files in it and its subfolders)"
        )

    from salibi.models import load_checkpoint
    from salibi.models.checkpoint import WEIGHTS

    torch_device = resolve_device(device)
    model = load_checkpoint(checkpoint, map_location=torch_device)
    if modality != "auto" and modality not in model.modalities:
        raise InputError(
            f"--modality {modality}: the checkpoint {model.checkpoint_path} has no {modality} encoder "
            f"(it has {', '.join(model.modalities)})"
        )
    checkpoint_folder = Path(model.checkpoint_path or checkpoint)
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "checkpoint_sha256": _sha256(checkpoint_folder / WEIGHTS),
        "variant": model.config.variant,
        "model": json.dumps(model.config.to_dict(), sort_keys=True),
        "checkpoint": str(checkpoint_folder),
    }
    store = _Output(output, attrs, int(model.config.dim))
    try:
        done, damaged = store.prepare()
        todo = [(i, rel, path) for i, (rel, path) in enumerate(found) if rel not in done]
        summary = EmbedSummary(
            output=output,
            tiles_found=len(found),
            embedded=0,
            skipped=len(found) - len(todo),
            failed=0,
            rows=0,
            seconds=0.0,
            device=str(torch_device),
            checkpoint=checkpoint_folder,
            notes=damaged,
        )
        settings = _ReadSettings(
            modality=modality,
            default_gsd=gsd,
            specs=_modality_specs(model),
            patch_size=int(model.config.patch_size),
            window_patches=window_patches,
        )
        per_tile_normalised = _run(
            model, todo, settings, store, summary, torch_device, batch_size, num_workers, progress
        )
        summary.rows = store.merge()
    finally:
        store.close()
    if per_tile_normalised:
        summary.notes.append(
            f"the checkpoint has no normalisation statistics for {', '.join(sorted(per_tile_normalised))}: "
            "those tiles were normalised per tile and band"
        )
    summary.seconds = time.perf_counter() - started
    return summary


def _tile_iterator(todo: list, settings: _ReadSettings, num_workers: int, pin: bool) -> Iterator[_Tile]:
    reader = _TileReader(todo, settings)
    if num_workers == 0:
        return (reader[i] for i in range(len(reader)))
    from torch.utils.data import DataLoader

    loader: Any = DataLoader(
        reader,  # type: ignore[arg-type]  # any map-style object will do
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity,
        pin_memory=pin,
        prefetch_factor=4,
    )
    return iter(loader)


def _run(
    model: Any,
    todo: list,
    settings: _ReadSettings,
    store: _Output,
    summary: EmbedSummary,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    progress: bool,
) -> set[str]:
    """Embed ``todo``; write parts as rows finish. Returns modalities normalised per tile."""
    import torch

    use_cuda = device.type == "cuda"
    per_tile: set[str] = set()
    pending: dict[int, _Pending] = {}
    # (modality, gsd, h, w) -> queued windows [(tile index, window, token mask)], oldest group first
    queues: OrderedDict[tuple, list[tuple[int, Any, Any]]] = OrderedDict()
    queued = 0
    rows = _Rows()
    last_flush = time.perf_counter()
    bar = RateProgress("embedding", "tiles", len(todo), progress)

    def flush(force: bool = False) -> None:
        nonlocal rows, last_flush
        if len(rows) and (force or len(rows) >= batch_size or time.perf_counter() - last_flush >= FLUSH_SECONDS):
            store.write_part(rows)
            rows = _Rows()
            last_flush = time.perf_counter()

    def finish(entry: _Pending) -> None:
        tile = entry.tile
        rows.embedding.append((entry.token_sum / entry.token_count).float().numpy())
        rows.path.append(tile.path)
        rows.modality.append(tile.modality)
        rows.gsd.append(tile.gsd)
        rows.bounds.append(tile.bounds)
        rows.crs.append(tile.crs)
        summary.embedded += 1
        bar.advance(1)

    def run_batch(key: tuple) -> None:
        nonlocal queued
        group = queues.pop(key)
        queued -= len(group)
        modality_name, gsd_value = key[0], key[1]
        images = torch.stack([w for _, w, _ in group]).to(device, non_blocking=True)
        masks = torch.stack([m for _, _, m in group]).to(device, non_blocking=True)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            tokens = model.encode(images, modality=modality_name, gsd=gsd_value)
        weights = masks.to(torch.float32).unsqueeze(-1)
        sums = (tokens.float() * weights).sum(dim=1).double().cpu()  # (B, D)
        counts = masks.sum(dim=1).cpu().tolist()
        for (index, _, _), row_sum, count in zip(group, sums, counts):
            entry = pending[index]
            entry.token_sum = row_sum if entry.token_sum is None else entry.token_sum + row_sum
            entry.token_count += int(count)
            entry.windows_left -= 1
            if entry.windows_left == 0:
                finish(pending.pop(index))
        flush()

    try:
        for tile in _tile_iterator(todo, settings, num_workers, use_cuda):
            if tile.failure is not None:
                rows.failed_path.append(tile.path)
                rows.failed_reason.append(tile.failure)
                summary.failed += 1
                summary.failures.append((tile.path, tile.failure))
                bar.advance(1)
                flush()
                continue
            if tile.per_tile_normalised:
                per_tile.add(tile.modality)
            windows, masks = tile.windows, tile.token_masks
            pending[tile.index] = _Pending(tile, windows_left=windows.shape[0])
            key = (tile.modality, tile.gsd, windows.shape[-2], windows.shape[-1])
            for w, m in zip(windows, masks):
                queues.setdefault(key, []).append((tile.index, w, m))
                queued += 1
                if len(queues[key]) >= batch_size:
                    run_batch(key)
            tile.windows = tile.token_masks = None
            # Bound memory when tiles of many sizes arrive: run the oldest group early.
            while queued > 2 * batch_size:
                run_batch(next(iter(queues)))
        while queues:
            run_batch(next(iter(queues)))
    finally:
        bar.close()
        flush(force=True)  # keep what finished, also on Ctrl-C
    return per_tile
