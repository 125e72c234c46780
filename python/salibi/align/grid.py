"""Where the chips go: the target CRS, every input placed on it, the common footprint and the
chip grid over it (planned by the Rust core, ``rust/salibi-core/src/align/tiles.rs``).

The target CRS is the one asked for, else the reference input's own when it is projected in
metres, else the UTM zone of the footprint centre. Each input then gets its bounds and native
GSD on that CRS, and is marked for windowed reads when it already lies on it north-up (the
others are warped by GDAL, see :mod:`salibi.align.reading`). The chip grid covers the
intersection of all inputs and is anchored on the pixel lattice of the finest windowed input,
so chips at its native GSD are exact copies of its pixels.

:class:`ChipGrid` and :func:`plan_chip_grid` are the one chip grid of salibi: ``salibi align``
cuts its chips on it, ``salibi embed --chip-size-m`` its scene chips (with an optional stride).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.align.inputs import InputFile, Modality
from salibi.errors import InputError
from salibi.rasters import envelope, round_significant

if TYPE_CHECKING:  # pragma: no cover
    from rasterio.crs import CRS

#: Which modality's input decides when several could: the target CRS (the first high-res file,
#: else the first low-res one; at least two modalities are given, so one of these is) and, among
#: equally fine windowed inputs, the grid anchor. Optical before SAR, finest first: changing it
#: would move the chip grid that existing commands produce.
PRECEDENCE: tuple[str, ...] = ("hires", "lores", "sar")


def by_precedence(modalities: list[Modality]) -> list[InputFile]:
    """Every input, modalities in :data:`PRECEDENCE` order, files in the order given."""
    rank = {name: i for i, name in enumerate(PRECEDENCE)}
    return [inp for mod in sorted(modalities, key=lambda m: rank[m.name]) for inp in mod.inputs]


def _dataset_envelope(dataset: Any) -> tuple[float, float, float, float]:
    return envelope(dataset.transform, dataset.width, dataset.height)


def is_metric_projected(crs: CRS) -> bool:
    """Whether ``crs`` is projected with the metre as unit (chips can be cut on it as it is)."""
    units = (crs.linear_units or "").lower()
    return bool(crs.is_projected) and units in ("metre", "meter", "m", "metres", "meters")


def crs_name(crs: CRS) -> str:
    """``EPSG:<code>`` when there is one, else the CRS's own string."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def target_crs(requested: str | None, modalities: list[Modality]) -> CRS:
    """The CRS every chip is cut in (see the module docstring)."""
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
        if not is_metric_projected(target):
            raise InputError(f"--crs {requested}: its unit is not the metre; choose a projected CRS in metres")
        return target
    reference = by_precedence(modalities)[0].dataset.crs
    if is_metric_projected(reference):
        return reference
    return _utm_of_centre(modalities)


def _utm_of_centre(modalities: list[Modality]) -> CRS:
    """The UTM zone of the centre of the inputs' common box in longitude and latitude."""
    from rasterio.warp import transform_bounds

    boxes = [
        transform_bounds(inp.dataset.crs, "EPSG:4326", *_dataset_envelope(inp.dataset), densify_pts=21)
        for inp in by_precedence(modalities)
    ]
    west, south = max(b[0] for b in boxes), max(b[1] for b in boxes)
    east, north = min(b[2] for b in boxes), min(b[3] for b in boxes)
    if west >= east or south >= north:
        west, south, east, north = boxes[0]  # no overlap: reported later with the files named
    return utm_crs((west + east) / 2, (south + north) / 2)


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone (EPSG:326xx north, 327xx south) of a point given in degrees."""
    from rasterio.crs import CRS

    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def place_on_target(inp: InputFile, target: CRS) -> None:
    """Bounds and native GSD on the target CRS; whether it can be read without warping."""
    from rasterio.warp import calculate_default_transform, transform_bounds

    ds = inp.dataset
    inp.target = target
    t = ds.transform
    same_crs = ds.crs == target
    north_up = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0
    inp.windowed = same_crs and north_up
    if same_crs:
        inp.bounds = _dataset_envelope(ds)
        # Real files carry pixel sizes such as 0.49999345 m: the default GSD is rounded, and
        # the tiny rescale is left to the resampler.
        digits = 3 if north_up else 2
        inp.native_gsd = round_significant(math.sqrt(abs(t.a * t.e - t.b * t.d)), digits)
    else:
        # On another CRS the native GSD is GDAL's estimate: two significant digits.
        left, bottom, right, top = _dataset_envelope(ds)
        inp.bounds = transform_bounds(ds.crs, target, left, bottom, right, top, densify_pts=21)
        transform, _, _ = calculate_default_transform(ds.crs, target, ds.width, ds.height, left, bottom, right, top)
        inp.native_gsd = round_significant(math.sqrt(abs(transform.a * transform.e)), 2)


def common_footprint(modalities: list[Modality], target: CRS) -> tuple[float, float, float, float]:
    """The intersection of all inputs' bounds on the target CRS; an error naming two inputs
    that do not overlap."""
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
                    f"{_box(b.bounds)} in {crs_name(target)}; give rasters of the same place"
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


def plan_grid(modalities: list[Modality], footprint: tuple[float, float, float, float], tile_size_m: float) -> ChipGrid:
    """The chip grid of ``salibi align`` over ``footprint``: anchored on the finest raster that is
    read as is (its chips at native GSD are exact copies of its pixels), chips side by side."""
    windowed = [inp for inp in by_precedence(modalities) if inp.windowed]
    if windowed:
        finest = min(windowed, key=lambda inp: inp.native_gsd)  # ties: the first by precedence
        anchor = (finest.dataset.transform.c, finest.dataset.transform.f)
    else:
        anchor = (0.0, 0.0)
    return plan_chip_grid(
        footprint,
        tile_size_m,
        [(m.name, m.gsd) for m in modalities],
        anchor,
        size_option="--tile-size-m",
        whole_pixels_hint=" (or change --gsd)",
    )


# -- the chip grid (shared by salibi align and salibi embed) -------------------------------------

_WHOLE_TOLERANCE = 1e-6  # as the core's tiles.rs


@dataclass(frozen=True)
class ChipGrid:
    """Square chips of ``chip_size`` metres in ``rows`` x ``cols`` positions: chip ``(r, c)`` (index
    ``r * cols + c``, row-major) has its top-left corner at ``(left + c * stride, top - r * stride)``.
    ``stride == chip_size`` (``salibi align``) puts chips side by side; a smaller stride overlaps them.
    ``unit`` is the core's snapping step: a ground length that is whole pixels at every GSD."""

    left: float
    top: float
    rows: int
    cols: int
    chip_size: float
    stride: float
    unit: float

    @property
    def tile_size(self) -> float:
        """The chip side (``salibi align``'s name for it)."""
        return self.chip_size

    def __len__(self) -> int:
        return self.rows * self.cols

    def bounds(self) -> np.ndarray:
        """``(rows * cols, 4)`` float64 ``min_x, min_y, max_x, max_y`` of every chip, row-major
        (bit for bit the core's ``TileGrid.bounds()`` for side-by-side chips)."""
        x = self.left + np.arange(self.cols, dtype=np.float64) * self.stride
        y = self.top - np.arange(self.rows, dtype=np.float64) * self.stride
        grid_x, grid_y = np.meshgrid(x, y)
        xs, ys = grid_x.reshape(-1), grid_y.reshape(-1)
        return np.stack([xs, ys - self.chip_size, xs + self.chip_size, ys], axis=1)

    def extent(self) -> tuple[float, float, float, float]:
        """``min_x, min_y, max_x, max_y`` covered by the chips."""
        reach_x = (self.cols - 1) * self.stride + self.chip_size
        reach_y = (self.rows - 1) * self.stride + self.chip_size
        if self.stride == self.chip_size:  # the core's arithmetic, for identical numbers
            reach_x, reach_y = self.cols * self.chip_size, self.rows * self.chip_size
        return (self.left, self.top - reach_y, self.left + reach_x, self.top)


def plan_chip_grid(
    footprint: tuple[float, float, float, float],
    chip_size_m: float,
    gsds: Sequence[tuple[str, float]],
    anchor: tuple[float, float],
    stride_m: float | None = None,
    size_option: str = "--chip-size-m",
    stride_option: str = "--stride-m",
    whole_pixels_hint: str = "",
) -> ChipGrid:
    """The largest grid of ``chip_size_m`` chips inside ``footprint`` whose corners lie on
    ``anchor + k * unit`` (the Rust core's ``plan_tile_grid``, ``tiles.rs``: chips a whole number of
    pixels at every ``(name, GSD)`` of ``gsds``), stepping by ``stride_m`` (default: the chip size),
    which must be whole pixels at every GSD too. Errors name ``size_option`` / ``stride_option``;
    ``whole_pixels_hint`` is added to the one about chips that are not whole pixels."""
    from salibi import _core

    try:
        core = _core.plan_tile_grid(footprint, float(chip_size_m), [(n, float(g)) for n, g in gsds], anchor)
    except ValueError as err:
        message = str(err)
        if message.startswith("tile_size_m: "):
            rest = message[len("tile_size_m: ") :]
            message = f"{size_option} {rest}" if rest[:1].isdigit() else f"{size_option} {chip_size_m:g}: {rest}"
            if size_option != "--tile-size-m":  # one raster: no modalities, no inputs to intersect
                message = message.replace("tile sizes that fit every modality", "chip sizes that fit")
                message = message.replace("the common footprint of the inputs is", "the raster covers")
                message = message.replace("a tile size", "a chip size")
        raise InputError(message + whole_pixels_hint if "whole number" in message else message) from None
    chip = float(chip_size_m)
    stride = chip if stride_m is None else float(stride_m)
    if stride == chip:
        return ChipGrid(core.left, core.top, core.rows, core.cols, chip, chip, core.unit)
    if not (math.isfinite(stride) and 0 < stride <= chip):
        raise InputError(f"{stride_option} {stride_m:g}: must be above 0 and at most the chip size ({chip:g} m)")
    for name, gsd in gsds:
        ratio = stride / gsd
        if abs(ratio - round(ratio)) > _WHOLE_TOLERANCE * max(ratio, 1.0):
            raise InputError(
                f"{stride_option} {stride:g} m is not a whole number of {name} pixels at {gsd:g} m/px "
                f"({ratio:.3f} px); use a multiple of {gsd:g} m"
            )
    cols = int(math.floor((footprint[2] - core.left - chip) / stride + _WHOLE_TOLERANCE)) + 1
    rows = int(math.floor((core.top - footprint[1] - chip) / stride + _WHOLE_TOLERANCE)) + 1
    return ChipGrid(core.left, core.top, rows, cols, chip, stride, core.unit)
