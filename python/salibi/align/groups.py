"""Several groups of inputs -- the places and times of a ``salibi fetch`` folder -- into one aligned set.

Each group is what one ``salibi align`` call would take (files per modality, of one place); the
groups differ in place and time but not in bands. Every group is cut as :func:`salibi.align.align`
cuts one (its own chip grid over its own footprint) into one file: one target CRS for all
(``crs``, else the one every group would pick, else the UTM zone of the centre of them all), one
GSD per modality (``gsd``, else the finest native GSD over all groups), band statistics over the
training chips of all groups. Groups are opened one at a time, twice: once to plan, once to cut.

Each group's chips record its own acquisition time (:func:`~salibi.align.inputs.chips_acquired`:
its low-res optical scene's, from the files' tags).

Groups of one fetch may overlap on the ground (the cover takes overlapping scenes when they add
ground, and a place recurs at other times): the train/validation split is decided on the ground
for all groups at once (:class:`~salibi.align.split.GroundSplit`), so one place is never in both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.align.grid import common_footprint, crs_name, place_on_target, plan_grid, target_crs, utm_crs
from salibi.align.inputs import (
    Modality,
    check_arguments,
    chips_acquired,
    fetch_folder_groups,
    open_modality,
    rename_bands,
)
from salibi.align.settings import DEFAULTS
from salibi.align.split import GroundSplit, split_block_size
from salibi.align.strips import ChipCutter, chip_row_bytes, cut_in_strips
from salibi.align.summary import AlignSummary
from salibi.align.write import ChipWriter, _write_attributes, check_output, checked, staged_hdf5
from salibi.errors import InputError
from salibi.progress import RateProgress
from salibi.vocabulary import MODALITIES

Group = Mapping[str, Sequence[str | os.PathLike[str]]]


@dataclass
class _Planned:
    footprint: tuple[float, float, float, float]
    grid: Any


def align_fetch_folder(folder: str | os.PathLike[str], **options: Any) -> AlignSummary:
    """Every group of a ``salibi fetch`` folder into one set (``options`` as :func:`align_groups`)."""
    return align_groups(fetch_folder_groups(folder), **options)


def _open(
    group: Group, present: list[str], picked: dict[str, list[int]], names: Mapping[str, Sequence[str]], stack: ExitStack
) -> list[Modality]:
    modalities = [open_modality(m, [Path(p) for p in group[m]], picked.get(m), stack) for m in present]
    rename_bands(modalities, names)
    return modalities


def align_groups(
    groups: Sequence[Group],
    *,
    output: str | os.PathLike[str],
    tile_size_m: float = DEFAULTS.tile_size_m,
    gsd: Mapping[str, float] | None = None,
    bands: Mapping[str, Sequence[int]] | None = None,
    band_names: Mapping[str, Sequence[str]] | None = None,
    crs: str | None = None,
    max_nodata: float = DEFAULTS.max_nodata,
    val_fraction: float = DEFAULTS.val_fraction,
    overwrite: bool = False,
    seed: int = DEFAULTS.seed,
    progress: bool = True,
) -> AlignSummary:
    """Cut every group's chips into one HDF5 training set (see the module docstring)."""
    import rasterio

    started = time.perf_counter()
    if not groups:
        raise InputError("no groups of inputs to align")
    present = [m for m in MODALITIES if groups[0].get(m)]
    for index, group in enumerate(groups):
        has = [m for m in MODALITIES if group.get(m)]
        if has != present:
            raise InputError(f"group {index + 1} has {', '.join(has)} but the first has {', '.join(present)}; "
                             "every group needs the same modalities")  # fmt: skip
    gsd = dict(gsd or {})
    picked = {k: [int(b) for b in v] for k, v in (bands or {}).items()}
    check_arguments(present, gsd, picked, tile_size_m, max_nodata, val_fraction)
    output = Path(output)
    check_output(output, overwrite)
    names = band_names or {}

    with rasterio.Env():
        target = _target(groups, present, picked, names, crs)
        # Pass 1: band names, native GSDs and footprints of every group.
        native: dict[str, float] = {}
        template: list[Modality] | None = None
        footprints = []
        for index, group in enumerate(groups):
            with ExitStack() as stack:
                modalities = _open(group, present, picked, names, stack)
                if template is None:
                    template = modalities
                for mod, first in zip(modalities, template):
                    if mod.band_names != first.band_names:
                        raise InputError(
                            f"group {index + 1}: {mod.name} bands {', '.join(mod.band_names)} differ from the first "
                            f"group's {', '.join(first.band_names)}; every group needs the same bands"
                        )
                    for inp in mod.inputs:
                        place_on_target(inp, target)
                    native[mod.name] = min([native.get(mod.name, np.inf), *(i.native_gsd for i in mod.inputs)])
                footprints.append(common_footprint(modalities, target))
        assert template is not None
        for mod in template:
            mod.gsd = float(gsd.get(mod.name, native[mod.name]))
            mod.size_px = int(round(tile_size_m / mod.gsd))
        planned = []
        for group, footprint in zip(groups, footprints):
            with ExitStack() as stack:
                modalities = _open(group, present, picked, names, stack)
                for mod, first in zip(modalities, template):
                    mod.gsd, mod.size_px = first.gsd, first.size_px
                    for inp in mod.inputs:
                        place_on_target(inp, target)
                planned.append(_Planned(footprint, plan_grid(modalities, footprint, tile_size_m)))
        return _write(groups, planned, template, present, picked, names, target, output, tile_size_m, max_nodata,
                      val_fraction, seed, progress, started)  # fmt: skip


def _target(
    groups: Sequence[Group],
    present: list[str],
    picked: dict[str, list[int]],
    names: Mapping[str, Sequence[str]],
    crs: str | None,
) -> Any:
    """The CRS every group is cut in (module docstring)."""
    from rasterio.warp import transform_bounds

    if crs is not None:
        with ExitStack() as stack:
            return target_crs(crs, _open(groups[0], present, picked, names, stack))
    chosen, boxes = [], []
    for group in groups:
        with ExitStack() as stack:
            modalities = _open(group, present, picked, names, stack)
            chosen.append(target_crs(None, modalities))
            first = modalities[0].inputs[0].dataset
            boxes.append(transform_bounds(first.crs, "EPSG:4326", *first.bounds, densify_pts=21))
    if all(c == chosen[0] for c in chosen):
        return chosen[0]
    west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
    east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return utm_crs((west + east) / 2, (south + north) / 2)


def _write(
    groups: Sequence[Group],
    planned: list[_Planned],
    template: list[Modality],
    present: list[str],
    picked: dict[str, list[int]],
    names: Mapping[str, Sequence[str]],
    target: Any,
    output: Path,
    tile_size_m: float,
    max_nodata: float,
    val_fraction: float,
    seed: int,
    progress: bool,
    started: float,
) -> AlignSummary:
    cells = sum(p.grid.rows * p.grid.cols for p in planned)
    kept = 0
    ground = GroundSplit([p.grid for p in planned], val_fraction, seed)
    sources: dict[str, list[str]] = {}
    over_limit = {m: 0 for m in present}
    with staged_hdf5(output) as staged:
        writer = ChipWriter(staged.file, template, lambda: checked(output, staged.check))
        with RateProgress("aligning", "chips", cells, progress, plain_every=None, transient=True) as bar:
            for group, plan in zip(groups, planned):
                with ExitStack() as stack:
                    modalities = _open(group, present, picked, names, stack)
                    for mod, first in zip(modalities, template):
                        mod.gsd, mod.size_px = first.gsd, first.size_px
                        for inp in mod.inputs:
                            place_on_target(inp, target)
                            sources.setdefault(mod.name, []).append(str(inp.path))
                    writer.record_time(chips_acquired(modalities))
                    grid = plan.grid
                    strip = split_block_size(grid.rows, grid.cols, val_fraction, chip_row_bytes(modalities, grid.cols))
                    split = ground.for_grid(grid, strip)
                    cutter = ChipCutter(modalities, grid, max_nodata)
                    cut_in_strips(cutter, split, writer, bar)
                    kept += int(split.kept.sum())
                    for m, n in cutter.over_limit.items():
                        over_limit[m] += n
        if kept == 0:
            details = ", ".join(f"{m}: {n}" for m, n in over_limit.items())
            raise InputError(
                f"all {cells} chips of the {len(groups)} groups have more than {max_nodata:.0%} invalid "
                f"(nodata/NaN/zero) pixels in some modality (chips over the limit per modality: {details}); "
                "raise --max-nodata or fetch other scenes"
            )
        if writer.train == 0:
            raise InputError(
                f"no training chips are left of {kept} valid chips; lower --val-fraction or use a smaller --tile-size-m"
            )
        union = _union([p.footprint for p in planned])
        _write_attributes(
            staged.file, writer, template, target, union, tile_size_m, ground.block, seed, max_nodata, val_fraction
        )
        _record_sources(staged.file, template, sources, output)
        staged.file.attrs["groups"] = len(groups)
        checked(output, staged.close)
    extents = [p.grid.extent() for p in planned]
    return AlignSummary(
        path=output,
        chips_in_grid=cells,
        chips_kept=writer.count,
        chips_train=writer.train,
        chips_val=writer.val,
        chips_dropped_nodata=cells - kept,
        chips_dropped_buffer=kept - writer.count,
        footprint=union,
        grid_extent=_union(extents),
        crs=crs_name(target),
        tile_size_m=float(tile_size_m),
        gsd={m.name: m.gsd for m in template},
        chip_px={m.name: m.size_px for m in template},
        bands={m.name: list(m.band_names) for m in template},
        split_block_chips=ground.block,
        seconds=time.perf_counter() - started,
    )


def _union(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    return (
        float(min(b[0] for b in boxes)),
        float(min(b[1] for b in boxes)),
        float(max(b[2] for b in boxes)),
        float(max(b[3] for b in boxes)),
    )


def _record_sources(f: Any, template: list[Modality], sources: dict[str, list[str]], output: Path) -> None:
    """Each modality's files of every group, as paths relative to the output's folder."""
    import h5py

    base = output.resolve().parent
    for mod in template:
        shown = [os.path.relpath(Path(s).resolve(), base) for s in sources.get(mod.name, [])]
        f[mod.name].attrs["sources"] = np.array(shown, dtype=h5py.string_dtype())
