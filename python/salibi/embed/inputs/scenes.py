"""Scenes: a raster of any size cut into a chip grid (``--chip-size-m``, ``--stride-m``) and read
window by window, so memory does not grow with the raster.

1. The *view*: the pixel grid chips are cut from. A raster on a projected CRS in metres, north-up
   with square pixels, is its own view (its GSD rounded to 3 significant digits). Any other
   (geographic such as Sen1Floods11's EPSG:4326, rotated) is reprojected on the fly by a GDAL
   ``WarpedVRT`` (bilinear) onto the UTM zone of its centre (as ``salibi align`` does), at its
   GSD in metres (the coarser pixel axis, as for a tile) rounded to 2 significant digits. A raster without georeference is its own
   view at ``--gsd`` (rows without bounds).
2. The grid: :func:`salibi.align.grid.plan_chip_grid`, the one chip grid of salibi (the Rust
   core's ``plan_tile_grid``, plus the stride), over the view's extent, anchored on its pixel
   lattice: every chip is a whole-pixel window of the view. Chip ``(r, c)`` is the row
   ``FILE#r{r}c{c}``; ``chip`` is its window (col_off, row_off, width, height) in view pixels.
3. The band contract (:mod:`salibi.embed.inputs.routing`) is applied once per scene, and its
   acquisition time read once from its tags (:func:`salibi.rasters.acquisition_time`): every chip's ``datetime``.
4. Work items are runs of up to :data:`MAX_CHIPS_PER_ITEM` consecutive chips of one grid row,
   fewer when their window would exceed :data:`READ_BYTES`; each is one windowed read. A chip
   with more than ``max_nodata`` invalid pixels (nodata, NaN, outside the source) is skipped and
   recorded with the share it had.

Memory: a reader holds one item's window (at most :data:`READ_BYTES` of float32 pixels, or one
chip when a single chip is larger) and its chips, whatever the raster's size; GDAL's block cache
(``GDAL_CACHEMAX``) comes on top.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salibi.embed.inputs.pixels import invalid_fraction, normalise, read_routed, to_windows
from salibi.embed.inputs.routing import BandRoute, Router
from salibi.embed.inputs.tiles import TileFailure, georeference, open_raster, route_raster, router_for
from salibi.embed.records import Chip, ReadSettings, chip_id
from salibi.errors import InputError
from salibi.rasters import acquisition_time, gdal_reason, pixel_size_m, round_significant

__all__ = ["MAX_CHIPS_PER_ITEM", "READ_BYTES", "ScenePlan", "SceneView", "SceneWork", "plan_scene", "read_scene_work"]

#: Bytes of float32 pixels one read may hold (a run of chips of one grid row).
READ_BYTES = 64 * 2**20
#: Chips per work item at most: items are the unit of sharding between ranks and of reading.
MAX_CHIPS_PER_ITEM = 32


@dataclass(frozen=True)
class SceneView:
    """The pixel grid chips are cut from: ``transform`` (affine a, b, c, d, e, f) and size on
    ``crs`` (WKT; ``""`` without georeference); ``warped``: read through a WarpedVRT."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    warped: bool


@dataclass(frozen=True)
class ScenePlan:
    """One raster's chip grid and how its chips are read (picklable: sent to workers and ranks)."""

    rel: str
    path: str
    view: SceneView
    gsd: float
    grid: Any  # salibi.align.grid.ChipGrid
    route: BandRoute
    is_complex: bool
    chip_px: int
    stride_px: int
    col0: int  # view column and row of the grid's top-left corner
    row0: int
    datetime: dt.datetime | None = None  # the raster's acquisition time (its tags), every chip's

    def window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(col_off, row_off, width, height)`` of chip ``(row, col)`` in view pixels."""
        return (self.col0 + col * self.stride_px, self.row0 + row * self.stride_px, self.chip_px, self.chip_px)

    def bounds(self, row: int, col: int) -> tuple[float, float, float, float]:
        """The chip's footprint on the view's CRS, as ``rasterio.windows.bounds`` gives it (NaN without one)."""
        if not self.view.crs:
            return (math.nan,) * 4
        a, _, c, _, e, f = self.view.transform
        col_off, row_off, width, height = self.window(row, col)
        left, top = c + col_off * a, f + row_off * e
        return (left, top + height * e, left + width * a, top)

    @property
    def chips(self) -> int:
        return len(self.grid)


@dataclass(frozen=True)
class SceneWork:
    """Consecutive chips ``cols`` of grid row ``row`` of a scene: one windowed read."""

    plan: ScenePlan
    row: int
    cols: tuple[int, ...]


# -- planning ------------------------------------------------------------------------------------


def plan_scene(
    rel: str,
    path: Path,
    settings: ReadSettings,
    chip_size_m: float,
    stride_m: float | None,
    router: Router | None = None,
) -> ScenePlan | Chip:
    """The chip grid of the raster at ``path``, or a failed :class:`Chip` (for the scene) saying why.
    ``router``: the run's (a folder of scenes of one layout is routed once), else a new one."""
    try:
        with open_raster(path) as ds:
            return _plan(rel, path, ds, settings, chip_size_m, stride_m, router or router_for(settings))
    except TileFailure as err:
        return Chip(path=rel, source=rel, failure=str(err))
    except InputError as err:  # a chip size or stride that does not fit this raster
        return Chip(path=rel, source=rel, failure=str(err))
    except Exception as err:  # one bad file must not stop the others
        return Chip(
            path=rel, source=rel, failure=f"cannot read: {gdal_reason(err)}; the file may be truncated or corrupt"
        )


def _plan(
    rel: str, path: Path, ds: Any, settings: ReadSettings, chip_size_m: float, stride_m: float | None, router: Router
) -> ScenePlan:
    from salibi.align.grid import plan_chip_grid

    view, gsd = _view(ds, settings.default_gsd)
    chosen, is_complex = route_raster(ds, path.name, gsd, router)
    a, _, c, _, e, f = view.transform
    footprint = (c, f + view.height * e, c + view.width * a, f)
    grid = plan_chip_grid(footprint, chip_size_m, [(Path(rel).name, gsd)], (c, f), stride_m)
    return ScenePlan(
        rel=rel,
        path=str(path),
        view=view,
        gsd=gsd,
        grid=grid,
        route=chosen,
        is_complex=is_complex,
        chip_px=int(round(grid.chip_size / gsd)),
        stride_px=int(round(grid.stride / gsd)),
        col0=int(round((grid.left - c) / a)),
        row0=int(round((grid.top - f) / e)),
        datetime=acquisition_time(ds.tags()),
    )


def _view(ds: Any, default_gsd: float | None) -> tuple[SceneView, float]:
    """The pixel grid chips are cut from, and its GSD (see the module docstring, step 1)."""
    from rasterio.warp import transform_bounds

    from salibi.align.grid import is_metric_projected, utm_crs

    t = ds.transform
    if ds.crs is None or t.is_identity:
        if ds.gcps[0]:
            raise TileFailure(
                "is georeferenced by ground control points only; warp it onto a grid first (e.g. gdalwarp) "
                "to cut it into chips"
            )
        where = georeference(ds, default_gsd)  # no georeference: --gsd, else a TileFailure
        return SceneView("", (where.gsd, 0.0, 0.0, 0.0, -where.gsd, 0.0), ds.width, ds.height, False), where.gsd
    square = t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0 and math.isclose(t.a, -t.e, rel_tol=1e-6)
    if is_metric_projected(ds.crs) and square:
        gsd = round_significant(t.a, 3)
        return SceneView(ds.crs.to_wkt(), (t.a, t.b, t.c, t.d, t.e, t.f), ds.width, ds.height, False), gsd
    left, bottom, right, top = ds.bounds
    lon0, lat0, lon1, lat1 = transform_bounds(ds.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    target = utm_crs((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    # The coarser pixel axis in metres, as for a tile (Sen1Floods11's 8.98e-5 degrees: 9.97 m -> 10 m).
    gsd = round_significant(pixel_size_m(ds.crs, t, ds.width, ds.height), 2)
    x0, y0, x1, y1 = transform_bounds(ds.crs, target, left, bottom, right, top, densify_pts=21)
    x0, y1 = math.floor(x0 / gsd) * gsd, math.ceil(y1 / gsd) * gsd
    width, height = int(math.ceil((x1 - x0) / gsd)), int(math.ceil((y1 - y0) / gsd))
    return SceneView(target.to_wkt(), (gsd, 0.0, x0, 0.0, -gsd, y1), width, height, True), gsd


def scene_work(plan: ScenePlan, done: set[str] | dict[str, Any]) -> list[SceneWork]:
    """The work items of the chips of ``plan`` not in ``done`` (row ids), in grid order."""
    bands = max(1, sum(1 for i in plan.route.indexes if i > 0))
    column_bytes = plan.chip_px * plan.stride_px * bands * 4
    per_item = max(1, min(MAX_CHIPS_PER_ITEM, (READ_BYTES - plan.chip_px**2 * bands * 4) // column_bytes + 1))
    items = []
    for row in range(plan.grid.rows):
        run: list[int] = []
        for col in range(plan.grid.cols):
            if chip_id(plan.rel, row, col) in done:
                continue
            if run and (col != run[-1] + 1 or len(run) == per_item):
                items.append(SceneWork(plan, row, tuple(run)))
                run = []
            run.append(col)
        if run:
            items.append(SceneWork(plan, row, tuple(run)))
    return items


# -- reading -------------------------------------------------------------------------------------

# Scenes open in this thread (a reader thread, a DataLoader worker), the latest few kept: a
# dataset is read by one thread at a time.
_THREAD = threading.local()
_KEEP_OPEN = 4


def _open_view(plan: ScenePlan) -> Any:
    """The dataset to read ``plan``'s chips from (the raster, or its WarpedVRT), kept open."""
    if not hasattr(_THREAD, "open"):
        _THREAD.open = OrderedDict()
    opened: OrderedDict[tuple[str, SceneView], tuple[Any, Any]] = _THREAD.open
    key = (plan.path, plan.view)
    if key in opened:
        opened.move_to_end(key)
        return opened[key][1]
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    ds = rasterio.open(plan.path)
    view = ds
    if plan.view.warped:
        view = WarpedVRT(
            ds,
            crs=plan.view.crs,
            transform=Affine(*plan.view.transform),
            width=plan.view.width,
            height=plan.view.height,
            resampling=Resampling.bilinear,
            add_alpha=ds.nodata is None and not any(c.name == "alpha" for c in ds.colorinterp),
        )
    opened[key] = (ds, view)
    while len(opened) > _KEEP_OPEN:
        _, (old, old_view) = opened.popitem(last=False)
        if old_view is not old:
            old_view.close()
        old.close()
    return view


def read_scene_work(work: SceneWork, settings: ReadSettings) -> list[Chip]:
    """The chips of ``work``: read in one window, each normalised and cut into windows, or skipped
    for no-data; a read error fails every chip of the item with the reason."""
    plan = work.plan
    chips = [_chip(plan, work.row, col) for col in work.cols]
    try:
        from rasterio.windows import Window

        first = plan.window(work.row, work.cols[0])
        width = (work.cols[-1] - work.cols[0]) * plan.stride_px + plan.chip_px
        window = Window(first[0], first[1], width, plan.chip_px)
        values, invalid = read_routed(_open_view(plan), plan.route, plan.is_complex, window)
    except Exception as err:
        reason = f"cannot read its pixels: {gdal_reason(err)}; the file may be truncated or corrupt"
        for chip in chips:
            chip.failure = reason
        return chips
    spec = settings.specs[plan.route.modality]
    for k, chip in enumerate(chips):
        x = (work.cols[k] - work.cols[0]) * plan.stride_px
        part = (slice(None), slice(None), slice(x, x + plan.chip_px))
        share = invalid_fraction(invalid[part], plan.route.filled)
        if share >= 1.0 or share > settings.max_nodata:
            chip.skipped = f"{share:.1%} of its pixels are invalid (nodata, NaN or outside the raster), over --max-nodata {settings.max_nodata:g}"
            continue
        image, chip.per_tile_normalised = normalise(values[part], invalid[part], spec, plan.route.filled)
        chip.windows, chip.token_masks = to_windows(image, settings.patch_size, settings.window_patches)
    return chips


def _chip(plan: ScenePlan, row: int, col: int) -> Chip:
    return Chip(
        path=chip_id(plan.rel, row, col),
        source=plan.rel,
        modality=plan.route.modality,
        bands=plan.route.label,
        gsd=plan.gsd,
        bounds=plan.bounds(row, col),
        crs=plan.view.crs,
        window=plan.window(row, col),
        datetime=plan.datetime,
        assumption=plan.route.assumption,
    )
