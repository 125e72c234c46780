"""Build a co-registered multi-modal training set (``salibi align``).

Chips of one ground footprint are cut out of high-resolution optical (``hires``), low-resolution
optical (``lores``, e.g. Sentinel-2) and SAR (``sar``, e.g. Sentinel-1) rasters and written to
one HDF5 file (format ``salibi-aligned`` version 1, see DESIGN.md "Data formats").

How it works:

1. Every input is opened with rasterio. Several files of one modality are that modality's
   bands in the order given (they may differ in resolution); ``bands={"lores": [4, 3, 2]}``
   picks bands by their 1-based position in that concatenation. Complex rasters (SAR SLC) are
   turned into linear intensity ``|z|^2``.
2. The target CRS is ``crs``, else the high-res input's own (else the first input's), or the
   UTM zone of the footprint centre when that is geographic.
3. The chip grid (Rust core) covers the intersection of all inputs, each chip a whole number
   of pixels at every modality's GSD, anchored on the pixel lattice of the finest input that
   is already on the target grid, so chips at its native GSD are exact copies of its pixels.
4. The grid is processed in strips of chip rows. Inputs on the target CRS and north-up are
   read in windows; the others are warped by GDAL (rasterio.warp) once per strip straight
   onto the modality's chip pixel lattice. The Rust core then resamples every source onto
   every chip (area average when downsampling, bilinear otherwise) in parallel, without the
   GIL, and measures each chip's invalid fraction.
5. A pixel is invalid when it is NaN, equals its file's nodata value or, for files that
   declare no nodata, is zero in every selected band of the file (zero fill). Chips with more
   than ``max_nodata`` invalid pixels in any modality are dropped. Invalid pixels of kept chips
   are stored as NaN (the ``nodata`` attribute); :class:`salibi.data.AlignedDataset` fills them
   with the band mean.
6. Train/validation split by spatial blocks of ``split_block_chips`` x ``split_block_chips``
   chips: whole blocks go to validation until ``val_fraction`` of the kept chips is reached;
   training chips that touch a validation chip (8-neighbourhood, corners included) are dropped
   as a buffer, so no training chip is adjacent to a validation chip.
7. Band mean and standard deviation per modality over the training chips (NaN ignored).

The output is written to a temporary file next to it and renamed when complete.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.progress import RateProgress

if TYPE_CHECKING:  # pragma: no cover
    import h5py
    from rasterio.crs import CRS

MODALITIES = ("hires", "lores", "sar")
FORMAT = "salibi-aligned"
FORMAT_VERSION = 1

# Source pixels read beyond a strip on each side, so bilinear taps at its edge exist.
_READ_MARGIN_PX = 2
# Bytes of source pixels read at once; wide strips are read in column batches under this.
_BATCH_BYTES = 256 * 2**20
# Bytes of finished chips held back while the split of the next rows is decided.
_HOLD_BYTES = 1024 * 2**20
# Largest split block, in chips a side.
_MAX_BLOCK = 8


@dataclass(frozen=True)
class AlignSummary:
    """What :func:`align` wrote."""

    path: Path
    chips_in_grid: int
    chips_kept: int
    chips_train: int
    chips_val: int
    chips_dropped_nodata: int
    chips_dropped_buffer: int
    footprint: tuple[float, float, float, float]
    grid_extent: tuple[float, float, float, float]
    crs: str
    tile_size_m: float
    gsd: dict[str, float]
    chip_px: dict[str, int]
    bands: dict[str, list[str]]
    split_block_chips: int
    seconds: float

    @property
    def chips_per_second(self) -> float:
        return self.chips_in_grid / self.seconds if self.seconds > 0 else float("inf")

    def format(self) -> str:
        """A few human-readable lines (what ``salibi align`` prints)."""
        x0, y0, x1, y1 = self.footprint
        lines = [
            f"wrote {self.path}: {self.chips_kept} chips ({self.chips_train} train, {self.chips_val} validation)",
            f"  grid: {self.chips_in_grid} chips of {self.tile_size_m:g} m; dropped {self.chips_dropped_nodata} "
            f"with too many invalid pixels and {self.chips_dropped_buffer} buffer chips between train and validation "
            f"(split blocks of {self.split_block_chips}x{self.split_block_chips} chips)",
            f"  footprint: {x0:.1f}, {y0:.1f} .. {x1:.1f}, {y1:.1f} ({(x1 - x0) / 1000:.2f} x {(y1 - y0) / 1000:.2f} km) "
            f"in {self.crs}",
        ]
        for m in self.gsd:
            lines.append(
                f"  {m}: {len(self.bands[m])} band(s) [{', '.join(self.bands[m])}] at {self.gsd[m]:g} m/px, "
                f"{self.chip_px[m]}x{self.chip_px[m]} px per chip"
            )
        lines.append(f"  {self.seconds:.1f} s, {self.chips_per_second:.0f} chips/s")
        return "\n".join(lines)


@dataclass
class _Input:
    """One input file and how it is read."""

    modality: str
    path: Path
    dataset: Any  # rasterio DatasetReader
    indexes: list[int]  # selected 1-based bands of this file, in file order
    band_names: list[str]
    is_complex: bool
    direct: bool  # on the target CRS and north-up: windowed reads, no warp
    native_gsd: float  # metres per pixel on the target CRS
    bounds: tuple[float, float, float, float]  # envelope on the target CRS
    target: Any = None  # the target CRS

    @property
    def flag(self) -> str:
        return f"--{self.modality} {self.path}"


@dataclass
class _Modality:
    name: str
    inputs: list[_Input]
    band_names: list[str]  # in output order
    channel_order: np.ndarray | None  # output channel -> position in the per-file concatenation
    gsd: float = 0.0
    size_px: int = 0


@dataclass
class _Stats:
    """Per-band running mean and variance (Chan et al.), NaN ignored."""

    channels: int
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.count = np.zeros(self.channels)
        self.mean = np.zeros(self.channels)
        self.m2 = np.zeros(self.channels)

    def add(self, chips: np.ndarray) -> None:
        x = np.moveaxis(chips, 1, 0).reshape(self.channels, -1).astype(np.float64)
        finite = np.isfinite(x)
        n_b = finite.sum(axis=1).astype(np.float64)
        if not n_b.any():
            return
        x = np.where(finite, x, 0.0)
        mean_b = x.sum(axis=1) / np.maximum(n_b, 1)
        m2_b = (np.where(finite, x - mean_b[:, None], 0.0) ** 2).sum(axis=1)
        n = self.count + n_b
        delta = mean_b - self.mean
        safe_n = np.maximum(n, 1)
        self.mean = self.mean + delta * n_b / safe_n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe_n
        self.count = n

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        return self.mean.astype(np.float32), std.astype(np.float32)


def align(
    hires: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
    lores: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
    sar: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
    *,
    output: str | os.PathLike[str],
    tile_size_m: float = 960.0,
    gsd: Mapping[str, float] | None = None,
    bands: Mapping[str, Sequence[int]] | None = None,
    band_names: Mapping[str, Sequence[str]] | None = None,
    crs: str | None = None,
    max_nodata: float = 0.05,
    val_fraction: float = 0.1,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> AlignSummary:
    """Cut co-registered chips of every given modality into one HDF5 training set.

    ``hires``/``lores``/``sar``: a path or a list of paths per modality (at least two
    modalities). ``gsd``: metres per pixel per modality (default: the native GSD of the
    modality's finest file rounded to three significant digits, e.g. 0.49999 -> 0.5; to two
    for files that must be reprojected, whose GSD on the target CRS is an estimate).
    ``bands``: 1-based band positions over the concatenated bands of a modality's files.
    ``band_names``: names for a modality's kept bands, in order (default: the files' band
    descriptions, else ``<file stem>:<band>``); name them when the files do not (``red``,
    ``VV``, ``B04``, ...) so evaluation and embedding can match bands by name.
    ``val_fraction``: share of the kept chips (before buffer chips are dropped) that goes to
    validation. Raises :class:`salibi.errors.SalibiError` subclasses for anything the user can
    fix; no output is left behind on failure.
    """
    started = time.perf_counter()
    files = {"hires": _as_paths(hires), "lores": _as_paths(lores), "sar": _as_paths(sar)}
    gsd = dict(gsd or {})
    picked: dict[str, list[int]] = {k: [int(b) for b in v] for k, v in (bands or {}).items()}
    present = [m for m in MODALITIES if files[m]]
    _check_arguments(present, gsd, picked, tile_size_m, max_nodata, val_fraction)
    output = Path(output)
    _check_output(output, overwrite)

    import rasterio

    with ExitStack() as stack, rasterio.Env():
        modalities = [_open_modality(m, files[m], picked.get(m), stack) for m in present]
        _rename_bands(modalities, band_names or {})
        target = _target_crs(crs, modalities)
        for mod in modalities:
            for inp in mod.inputs:
                _place_on_target(inp, target)
        footprint = _common_footprint(modalities, target)
        for mod in modalities:
            mod.gsd = float(gsd.get(mod.name, min(inp.native_gsd for inp in mod.inputs)))
        grid = _plan_grid(modalities, footprint, tile_size_m)
        for mod in modalities:
            mod.size_px = int(round(tile_size_m / mod.gsd))
        return _write(
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


# ----------------------------------------------------------------------------------------
# Arguments and inputs


def _as_paths(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def _check_arguments(
    present: list[str],
    gsd: dict[str, float],
    bands: dict[str, list[int]],
    tile_size_m: float,
    max_nodata: float,
    val_fraction: float,
) -> None:
    if len(present) < 2:
        given = f"only --{present[0]}" if present else "none"
        raise InputError(
            f"need input files for at least two modalities (--hires, --lores, --sar), got {given}; "
            "add files of another modality"
        )
    if not (isinstance(tile_size_m, (int, float)) and math.isfinite(tile_size_m) and tile_size_m > 0):
        raise InputError(f"--tile-size-m must be a number of metres > 0, got {tile_size_m}")
    for option, values in (("--gsd", gsd), ("--bands", bands)):
        for m in values:
            if m not in MODALITIES:
                raise InputError(f"{option} {m}=...: unknown modality; use one of {', '.join(MODALITIES)}")
            if m not in present:
                raise InputError(f"{option} {m}=... is given but there are no --{m} files")
    for m, value in gsd.items():
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"--gsd {m}={value:g}: the ground sample distance must be > 0 metres per pixel")
    for m, picked in bands.items():
        if not picked:
            raise InputError(f"--bands {m}=: give at least one band number")
    if not (0.0 <= max_nodata <= 1.0):
        raise InputError(f"--max-nodata must be a fraction between 0 and 1, got {max_nodata:g}")
    if not (0.0 <= val_fraction < 1.0):
        raise InputError(f"--val-fraction must be at least 0 and below 1, got {val_fraction:g}")


def _check_output(output: Path, overwrite: bool) -> None:
    if output.is_dir():
        raise InputError(f"-o {output}: is a directory; give a file name such as {output / 'aligned.h5'}")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"-o {output}: already exists; pass --overwrite to replace it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"-o {output}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {output}: folder {parent} is not writable; choose another output path")


def _gdal_reason(err: BaseException) -> str:
    """The most specific message in a rasterio exception chain."""
    messages = []
    while err is not None:
        text = str(err).strip()
        if text and "See previous exception" not in text:
            messages.append(text)
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return messages[-1] if messages else "unknown GDAL error"


def _open_modality(name: str, paths: list[Path], picked: list[int] | None, stack: ExitStack) -> _Modality:
    import rasterio
    from rasterio.errors import RasterioIOError

    opened: list[tuple[Path, Any]] = []
    for path in paths:
        flag = f"--{name} {path}"
        if not path.exists():
            raise MissingInputError(f"{flag}: no such file")
        if path.is_dir():
            raise InputError(f"{flag}: is a directory, not a raster file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{flag}: permission denied; make the file readable")
        try:
            dataset = stack.enter_context(rasterio.open(path))
        except RasterioIOError as err:
            raise DataFormatError(f"{flag}: not a readable raster ({_gdal_reason(err)})") from None
        if dataset.crs is None:
            raise DataFormatError(
                f"{flag}: has no coordinate reference system; georeference it first (e.g. gdal_translate -a_srs)"
            )
        opened.append((path, dataset))

    # (file position, band in file) for every band of the modality, in order.
    everything = [(i, b) for i, (_, ds) in enumerate(opened) for b in range(1, ds.count + 1)]
    if picked is None:
        chosen = everything
    else:
        chosen = []
        for number in picked:
            if not 1 <= number <= len(everything):
                counts = ", ".join(f"{p.name}: {ds.count}" for p, ds in opened)
                raise InputError(
                    f"--bands {name}: band {number} is out of range; {name} has {len(everything)} band(s) "
                    f"numbered from 1 ({counts})"
                )
            chosen.append(everything[number - 1])

    inputs: list[_Input] = []
    file_slots: dict[int, int] = {}
    for i, (path, ds) in enumerate(opened):
        indexes = sorted({b for f, b in chosen if f == i})
        if not indexes:
            continue  # no band of this file is used: it does not constrain the footprint either
        file_slots[i] = len(inputs)
        names = [_band_name(path, ds, b) for b in indexes]
        inputs.append(
            _Input(
                modality=name,
                path=path,
                dataset=ds,
                indexes=indexes,
                band_names=names,
                is_complex=np.dtype(ds.dtypes[0]).kind == "c",
                direct=False,
                native_gsd=0.0,
                bounds=(0.0, 0.0, 0.0, 0.0),
            )
        )
    # Position of each chosen band in the concatenation the core returns (files in order,
    # each file's selected bands in file order).
    offsets, position = {}, 0
    for i in sorted(file_slots):
        offsets[i] = position
        position += len(inputs[file_slots[i]].indexes)
    order = [offsets[f] + inputs[file_slots[f]].indexes.index(b) for f, b in chosen]
    channel_order = None if order == list(range(position)) else np.asarray(order)
    band_names = [_band_name(opened[f][0], opened[f][1], b) for f, b in chosen]
    return _Modality(name=name, inputs=inputs, band_names=band_names, channel_order=channel_order)


def _rename_bands(modalities: list[_Modality], names: Mapping[str, Sequence[str]]) -> None:
    by_name = {mod.name: mod for mod in modalities}
    for modality, given in names.items():
        if modality not in by_name:
            raise InputError(f"--band-names {modality}: no {modality} input was given")
        mod, given = by_name[modality], [str(n).strip() for n in given]
        if len(given) != len(mod.band_names) or not all(given):
            raise InputError(
                f"--band-names {modality}: {len(given)} name(s) for {len(mod.band_names)} band(s) "
                f"({', '.join(mod.band_names)}); give one non-empty name per kept band, in order"
            )
        mod.band_names = given


def _band_name(path: Path, dataset: Any, band: int) -> str:
    description = dataset.descriptions[band - 1]
    return description if description else f"{path.stem}:{band}"


def _is_metric_projected(crs: CRS) -> bool:
    units = (crs.linear_units or "").lower()
    return bool(crs.is_projected) and units in ("metre", "meter", "m", "metres", "meters")


def _target_crs(requested: str | None, modalities: list[_Modality]) -> CRS:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if requested is not None:
        try:
            target = CRS.from_user_input(requested)
        except CRSError as err:
            raise InputError(f"--crs {requested}: not a coordinate reference system GDAL knows ({err})") from None
        if target.is_geographic:
            raise InputError(
                f"--crs {requested}: is geographic (degrees); chips need a projected CRS in metres, "
                "e.g. a UTM zone such as EPSG:32631, or leave --crs out to pick one"
            )
        if not _is_metric_projected(target):
            raise InputError(f"--crs {requested}: its unit is not the metre; choose a projected CRS in metres")
        return target
    reference = modalities[0].inputs[0].dataset.crs  # hires first when given
    if _is_metric_projected(reference):
        return reference
    return _utm_of_centre(modalities)


def _utm_of_centre(modalities: list[_Modality]) -> CRS:
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    boxes = [
        transform_bounds(inp.dataset.crs, "EPSG:4326", *_envelope(inp.dataset), densify_pts=21)
        for mod in modalities
        for inp in mod.inputs
    ]
    west, south = max(b[0] for b in boxes), max(b[1] for b in boxes)
    east, north = min(b[2] for b in boxes), min(b[3] for b in boxes)
    if west >= east or south >= north:
        west, south, east, north = boxes[0]  # no overlap: reported later with the files named
    lon, lat = (west + east) / 2, (south + north) / 2
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _envelope(dataset: Any) -> tuple[float, float, float, float]:
    """Bounds of a raster in its own CRS, also for rotated transforms."""
    t, w, h = dataset.transform, dataset.width, dataset.height
    xs, ys = zip(*(_apply(t, c, r) for c, r in ((0, 0), (w, 0), (0, h), (w, h))))
    return min(xs), min(ys), max(xs), max(ys)


def _apply(t: Any, x: float, y: float) -> tuple[float, float]:
    """Affine ``t`` applied to the point ``(x, y)`` (spelled out: affine 3 deprecates ``*``)."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def _round_significant(value: float, digits: int) -> float:
    if value <= 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(value))))


def _place_on_target(inp: _Input, target: CRS) -> None:
    """Bounds and native GSD on the target CRS; whether it can be read without warping."""
    from rasterio.warp import calculate_default_transform, transform_bounds

    ds = inp.dataset
    inp.target = target
    t = ds.transform
    same_crs = ds.crs == target
    north_up = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
    inp.direct = same_crs and north_up
    if same_crs:
        inp.bounds = _envelope(ds)
        # Real files carry pixel sizes such as 0.49999345 m: the default GSD is rounded, and
        # the tiny rescale is left to the resampler.
        digits = 3 if north_up else 2
        inp.native_gsd = _round_significant(math.sqrt(abs(t.a * t.e - t.b * t.d)), digits)
    else:
        inp.bounds = transform_bounds(ds.crs, target, *_envelope(ds), densify_pts=21)
        left, bottom, right, top = _envelope(ds)
        transform, _, _ = calculate_default_transform(ds.crs, target, ds.width, ds.height, left, bottom, right, top)
        inp.native_gsd = _round_significant(math.sqrt(abs(transform.a * transform.e)), 2)


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _common_footprint(modalities: list[_Modality], target: CRS) -> tuple[float, float, float, float]:
    inputs = [inp for mod in modalities for inp in mod.inputs]
    for i, a in enumerate(inputs):
        for b in inputs[i + 1 :]:
            if (
                a.bounds[0] >= b.bounds[2]
                or b.bounds[0] >= a.bounds[2]
                or a.bounds[1] >= b.bounds[3]
                or b.bounds[1] >= a.bounds[3]
            ):
                raise InputError(
                    f"the inputs do not overlap: {a.flag} covers {_box(a.bounds)} and {b.flag} covers "
                    f"{_box(b.bounds)} in {_crs_name(target)}; give rasters of the same place"
                )
    return (
        max(inp.bounds[0] for inp in inputs),
        max(inp.bounds[1] for inp in inputs),
        min(inp.bounds[2] for inp in inputs),
        min(inp.bounds[3] for inp in inputs),
    )


def _box(b: Iterable[float]) -> str:
    x0, y0, x1, y1 = b
    return f"x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f}"


def _plan_grid(modalities: list[_Modality], footprint: tuple[float, float, float, float], tile_size_m: float) -> Any:
    from salibi import _core

    # Anchor on the finest raster that is read as is: its chips at native GSD are copies.
    direct = [inp for mod in modalities for inp in mod.inputs if inp.direct]
    if direct:
        finest = min(direct, key=lambda inp: inp.native_gsd)
        anchor = (finest.dataset.transform.c, finest.dataset.transform.f)
    else:
        anchor = (0.0, 0.0)
    try:
        return _core.plan_tile_grid(footprint, float(tile_size_m), [(m.name, m.gsd) for m in modalities], anchor)
    except ValueError as err:
        message = str(err)
        if message.startswith("tile_size_m: "):
            rest = message[len("tile_size_m: ") :]
            message = f"--tile-size-m {rest}" if rest[:1].isdigit() else f"--tile-size-m {tile_size_m:g}: {rest}"
        raise InputError(message + " (or change --gsd)" if "whole number" in message else message) from None


# ----------------------------------------------------------------------------------------
# Reading sources onto the chip grid


def _read_source(
    inp: _Input, extent: tuple[float, float, float, float], gsd: float
) -> tuple[np.ndarray, tuple[float, float, float, float], float | None, bool]:
    """Pixels of ``inp`` covering ``extent`` on the target CRS: (array, transform, nodata,
    zero_fill) as the core wants them."""
    from rasterio.errors import RasterioError

    try:
        if inp.direct:
            return _read_window(inp, extent)
        return _warp(inp, extent, gsd)
    except RasterioError as err:
        raise DataFormatError(
            f"{inp.flag}: cannot read its pixels ({_gdal_reason(err)}); the file may be truncated or corrupt"
        ) from None


def _intensity(values: np.ndarray) -> np.ndarray:
    return (values.real.astype(np.float32) ** 2 + values.imag.astype(np.float32) ** 2).astype(np.float32)


def _empty(
    inp: _Input, extent: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float, float], float | None, bool]:
    return np.full((len(inp.indexes), 1, 1), np.nan, np.float32), (extent[0], extent[3], 1.0, 1.0), None, False


def _read_window(
    inp: _Input, extent: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float, float], float | None, bool]:
    from rasterio.windows import Window

    ds = inp.dataset
    t = ds.transform
    col0 = max(0, math.floor((extent[0] - t.c) / t.a + 1e-9) - _READ_MARGIN_PX)
    col1 = min(ds.width, math.ceil((extent[2] - t.c) / t.a - 1e-9) + _READ_MARGIN_PX)
    row0 = max(0, math.floor((t.f - extent[3]) / -t.e + 1e-9) - _READ_MARGIN_PX)
    row1 = min(ds.height, math.ceil((t.f - extent[1]) / -t.e - 1e-9) + _READ_MARGIN_PX)
    if col1 <= col0 or row1 <= row0:
        return _empty(inp, extent)
    window = Window(col0, row0, col1 - col0, row1 - row0)
    if inp.is_complex:
        values = _intensity(ds.read(inp.indexes, window=window))
        nodata = None
    else:
        values = ds.read(inp.indexes, window=window, out_dtype=np.float32)
        nodata = None if ds.nodata is None else float(ds.nodata)
    transform = (t.c + col0 * t.a, t.f + row0 * t.e, t.a, -t.e)
    return np.ascontiguousarray(values), transform, nodata, ds.nodata is None


def _warp(
    inp: _Input, extent: tuple[float, float, float, float], gsd: float
) -> tuple[np.ndarray, tuple[float, float, float, float], float | None, bool]:
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
            return _empty(inp, extent)
        values = _intensity(ds.read(inp.indexes, window=window))
        values[:, (values == 0).all(axis=0)] = np.nan  # zero fill of the SLC
        reproject(values, src_transform=ds.window_transform(window), src_crs=ds.crs, src_nodata=np.nan, **common)
    else:
        reproject(rasterio.band(ds, inp.indexes), src_nodata=ds.nodata, **common)
    return destination, (extent[0], extent[3], gsd, gsd), None, ds.nodata is None


def _source_window(inp: _Input, extent: tuple[float, float, float, float]) -> Any:
    """The source pixel window (plus margin) that covers ``extent`` on the target CRS."""
    from rasterio.warp import transform as transform_points
    from rasterio.windows import Window

    ds = inp.dataset
    xs = [extent[0], extent[2], extent[0], extent[2], (extent[0] + extent[2]) / 2]
    ys = [extent[1], extent[1], extent[3], extent[3], (extent[1] + extent[3]) / 2]
    sx, sy = transform_points(inp.target, ds.crs, xs, ys)
    inverse = ~ds.transform
    cols, rows = zip(*(_apply(inverse, x, y) for x, y in zip(sx, sy)))
    col0 = max(0, math.floor(min(cols)) - _READ_MARGIN_PX)
    col1 = min(ds.width, math.ceil(max(cols)) + _READ_MARGIN_PX)
    row0 = max(0, math.floor(min(rows)) - _READ_MARGIN_PX)
    row1 = min(ds.height, math.ceil(max(rows)) + _READ_MARGIN_PX)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


# ----------------------------------------------------------------------------------------
# Spatially blocked split


def _split_block(rows: int, cols: int, val_fraction: float, bytes_per_row: float) -> int:
    """Chips a side of a split block: as large as possible (fewer buffer chips per validation
    chip) while leaving about two validation blocks or more, and small enough that the chip rows
    held back until their neighbours' split is known fit in memory."""
    block = 1
    for candidate in range(1, _MAX_BLOCK + 1):
        if rows * cols * val_fraction / candidate**2 >= 2:
            block = candidate
    fits = max(1, int(_HOLD_BYTES // max(bytes_per_row, 1.0)) - 1)
    return max(1, min(block, fits))


class _SpatialSplit:
    """Decides, one strip of ``block`` chip rows at a time, which blocks go to validation.

    Blocks are visited in a seeded random order and taken while the validation share of the
    kept chips seen so far is below ``val_fraction`` (with a random threshold, so choices
    spread over the scene). A training chip is labelled only once the rows on both sides of
    it are decided: those touching a validation chip become buffer (dropped)."""

    TRAIN, VAL = 0, 1

    def __init__(self, rows: int, cols: int, block: int, val_fraction: float, seed: int) -> None:
        self.block, self.val_fraction = block, val_fraction
        self.kept = np.zeros((rows, cols), bool)
        self.val = np.zeros((rows, cols), bool)
        self.rng = np.random.default_rng(seed)
        self.total_kept = 0
        self.total_val = 0

    def decide(self, row0: int, kept_rows: np.ndarray) -> None:
        row1 = row0 + kept_rows.shape[0]
        self.kept[row0:row1] = kept_rows
        self.total_kept += int(kept_rows.sum())
        if self.val_fraction <= 0:
            return
        target = self.val_fraction * self.total_kept
        n_blocks = -(-kept_rows.shape[1] // self.block)
        for b in self.rng.permutation(n_blocks):
            c0, c1 = b * self.block, (b + 1) * self.block
            count = int(kept_rows[:, c0:c1].sum())
            if count and self.total_val + count * self.rng.random() <= target:
                self.val[row0:row1, c0:c1] = kept_rows[:, c0:c1]
                self.total_val += count

    def label(self, row: int, col: int) -> int | None:
        """TRAIN, VAL, or None for a buffer chip; rows ``row - 1 .. row + 1`` must be decided."""
        if self.val[row, col]:
            return self.VAL
        if self.val[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2].any():
            return None
        return self.TRAIN


# ----------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Appends chips to the HDF5 datasets (one sample per chunk) and keeps train statistics."""

    def __init__(self, f: h5py.File, modalities: list[_Modality]) -> None:
        self.count = 0
        self.bounds = f.create_dataset("bounds", shape=(0, 4), maxshape=(None, 4), dtype="f8", chunks=(4096, 4))
        self.split = f.create_dataset("split", shape=(0,), maxshape=(None,), dtype="u1", chunks=(65536,))
        self.data: dict[str, Any] = {}
        self.stats: dict[str, _Stats] = {}
        for mod in modalities:
            shape = (len(mod.band_names), mod.size_px, mod.size_px)
            self.data[mod.name] = f.create_group(mod.name).create_dataset(
                "data", shape=(0, *shape), maxshape=(None, *shape), dtype="f4", chunks=(1, *shape)
            )
            self.stats[mod.name] = _Stats(shape[0])
        self.train = 0
        self.val = 0

    def append(self, bounds: np.ndarray, labels: np.ndarray, chips: dict[str, np.ndarray]) -> None:
        n0, n1 = self.count, self.count + len(labels)
        if n1 == n0:
            return
        for dataset, values in [(self.bounds, bounds), (self.split, labels)] + [
            (self.data[m], chips[m]) for m in self.data
        ]:
            dataset.resize(n1, axis=0)
            dataset[n0:n1] = values
        train = labels == _SpatialSplit.TRAIN
        if train.any():
            for m, values in chips.items():
                self.stats[m].add(values[train])
        self.train += int(train.sum())
        self.val += int((~train).sum())
        self.count = n1


def _column_batches(modalities: list[_Modality], tile: float, block_rows: int, cols: int) -> list[tuple[int, int]]:
    """Column ranges of a strip whose source reads stay under ``_BATCH_BYTES``."""
    per_column = 0.0
    for mod in modalities:
        per_column += 2 * block_rows * len(mod.band_names) * mod.size_px**2 * 4  # core output (+ reorder)
        for inp in mod.inputs:
            px = inp.native_gsd if inp.direct else mod.gsd
            per_pixel = 12 if inp.is_complex else 4
            per_column += (block_rows * tile / px + 2 * _READ_MARGIN_PX) * (tile / px) * len(inp.indexes) * per_pixel
    step = max(1, int(_BATCH_BYTES // max(per_column, 1.0)))
    return [(c, min(cols, c + step)) for c in range(0, cols, step)]


def _write(
    *,
    output: Path,
    modalities: list[_Modality],
    grid: Any,
    target: CRS,
    footprint: tuple[float, float, float, float],
    tile_size_m: float,
    max_nodata: float,
    val_fraction: float,
    seed: int,
    progress: bool,
    started: float,
) -> AlignSummary:
    import h5py

    from salibi import __version__, _core

    rows, cols, tile = grid.rows, grid.cols, grid.tile_size
    chip_bounds = grid.bounds()
    bytes_per_row = cols * sum(len(m.band_names) * m.size_px**2 * 4 for m in modalities)
    block = _split_block(rows, cols, val_fraction, bytes_per_row)
    split = _SpatialSplit(rows, cols, block, val_fraction, seed)
    batches = _column_batches(modalities, tile, block, cols)
    over_limit = {m.name: 0 for m in modalities}

    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        f = h5py.File(partial, "w")
    except OSError as err:
        raise InputError(f"-o {output}: cannot write in {output.parent} ({err}); choose another output path") from None
    try:
        # On a terminal only, and gone when done (the summary follows): logs and error output
        # stay one clear line.
        with f, RateProgress("aligning", "chips", rows * cols, progress, plain_every=None, transient=True) as bar:
            writer = _Writer(f, modalities)
            # Kept chips per row, waiting until the split of the next row is known.
            pending: dict[int, list[tuple[int, dict[str, np.ndarray]]]] = {}

            def finish_row(r: int) -> None:
                entries = pending.pop(r, [])
                picked = [(c, chips, split.label(r, c)) for c, chips in entries]
                picked = [p for p in picked if p[2] is not None]
                if not picked:
                    return
                writer.append(
                    chip_bounds[[r * cols + c for c, _, _ in picked]],
                    np.array([label for _, _, label in picked], np.uint8),
                    {m.name: np.stack([chips[m.name] for _, chips, _ in picked]) for m in modalities},
                )

            for row0 in range(0, rows, block):
                row1 = min(rows, row0 + block)
                kept_rows = np.zeros((row1 - row0, cols), bool)
                for col0, col1 in batches:
                    cells = [(r, c) for r in range(row0, row1) for c in range(col0, col1)]
                    flat = np.array([r * cols + c for r, c in cells])
                    origins = np.ascontiguousarray(chip_bounds[flat][:, [0, 3]])
                    extent = (
                        grid.left + col0 * tile,
                        grid.top - row1 * tile,
                        grid.left + col1 * tile,
                        grid.top - row0 * tile,
                    )
                    too_invalid = np.zeros(len(cells), bool)
                    results: dict[str, np.ndarray] = {}
                    for mod in modalities:
                        sources = [_read_source(inp, extent, mod.gsd) for inp in mod.inputs]
                        data, invalid = _core.resample_chips(
                            [s[0] for s in sources],
                            [s[1] for s in sources],
                            origins,
                            mod.gsd,
                            mod.size_px,
                            nodata=[s[2] for s in sources],
                            zero_fill=[s[3] for s in sources],
                        )
                        if mod.channel_order is not None:
                            data = data[:, mod.channel_order]
                        over = invalid > max_nodata
                        over_limit[mod.name] += int(over.sum())
                        too_invalid |= over
                        results[mod.name] = data
                    for k, (r, c) in enumerate(cells):
                        if not too_invalid[k]:
                            kept_rows[r - row0, c] = True
                            pending.setdefault(r, []).append((c, {m: results[m][k] for m in results}))
                    bar.advance(len(cells))
                split.decide(row0, kept_rows)
                for r in sorted(pending):
                    if r < row1 - 1:
                        finish_row(r)
            for r in sorted(pending):
                finish_row(r)

            kept = int(split.kept.sum())
            if kept == 0:
                details = ", ".join(f"{m}: {n}" for m, n in over_limit.items())
                raise InputError(
                    f"all {rows * cols} chips have more than {max_nodata:.0%} invalid (nodata/NaN/zero) pixels in "
                    f"some modality (chips over the limit per modality: {details}); check that the inputs hold "
                    "valid data over the same area, or raise --max-nodata"
                )
            if writer.train == 0:
                raise InputError(
                    f"no training chips are left: all {kept} valid chips went to validation or its buffer; "
                    "lower --val-fraction or use a smaller --tile-size-m"
                )
            _write_attributes(
                f,
                writer,
                modalities,
                target,
                footprint,
                tile_size_m,
                block,
                seed,
                max_nodata,
                val_fraction,
                __version__,
            )
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

    return AlignSummary(
        path=output,
        chips_in_grid=rows * cols,
        chips_kept=writer.count,
        chips_train=writer.train,
        chips_val=writer.val,
        chips_dropped_nodata=rows * cols - kept,
        chips_dropped_buffer=kept - writer.count,
        footprint=tuple(float(v) for v in footprint),  # type: ignore[arg-type]
        grid_extent=tuple(float(v) for v in grid.extent()),  # type: ignore[arg-type]
        crs=_crs_name(target),
        tile_size_m=tile_size_m,
        gsd={m.name: m.gsd for m in modalities},
        chip_px={m.name: m.size_px for m in modalities},
        bands={m.name: list(m.band_names) for m in modalities},
        split_block_chips=block,
        seconds=time.perf_counter() - started,
    )


def _write_attributes(
    f: h5py.File,
    writer: _Writer,
    modalities: list[_Modality],
    target: CRS,
    footprint: tuple[float, float, float, float],
    tile_size_m: float,
    block: int,
    seed: int,
    max_nodata: float,
    val_fraction: float,
    version: str,
) -> None:
    import h5py

    text = h5py.string_dtype()
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["crs"] = target.to_wkt()
    f.attrs["tile_size_m"] = float(tile_size_m)
    # Provenance beyond the versioned schema.
    f.attrs["crs_name"] = _crs_name(target)
    f.attrs["footprint"] = np.asarray(footprint, np.float64)
    f.attrs["split_block_chips"] = block
    f.attrs["split_seed"] = seed
    f.attrs["max_nodata"] = max_nodata
    f.attrs["val_fraction"] = val_fraction
    f.attrs["created_by"] = f"salibi {version}"
    for mod in modalities:
        group = f[mod.name]
        group.attrs["gsd"] = float(mod.gsd)
        group.attrs["bands"] = np.array(mod.band_names, dtype=text)
        group.attrs["sources"] = np.array([inp.path.name for inp in mod.inputs], dtype=text)
        group.attrs["nodata"] = np.float32(np.nan)
        group.attrs["chip_px"] = mod.size_px
        if any(inp.is_complex for inp in mod.inputs):
            group.attrs["complex_as"] = "intensity |z|^2"
        mean, std = writer.stats[mod.name].result()
        group.create_dataset("mean", data=mean)
        group.create_dataset("std", data=std)
