"""Import the Scale-ALiBi authors' released tile archives (PMTiles v3) as an aligned training set.

``salibi align --sar S.pmtile --lores V.pmtile --hires H.pmtile -o set.h5`` (any two or all three;
local paths or http(s) URLs) makes one chip per web-mercator tile of the chip zoom present in
every archive. The steps, and the module that does each:

1. Each archive is opened (:mod:`.sources`: ``pread`` or HTTP range requests with redirects) and
   indexed by salibi's own PMTiles reader (:mod:`.archive`: header, directories, leaves, runs;
   every offset checked, gzip bombs refused); tile ids and their geometry in :mod:`.web_mercator`.
2. The chips: the zoom, the tiles of each archive per chip (hires: four children stitched), the
   splits from ``--split-ids`` files (:mod:`.import_plan`); the archives' conventions in :mod:`.released`.
3. Every chip's tiles are read, decoded and checked in parallel, part by resumable part
   (:mod:`.convert`): chips with more than ``max_nodata`` invalid (alpha 0) pixels in any modality
   are dropped; SAR values wrapped to 0 are counted (and repaired to 255 when read, unless
   ``keep_sar_overflow``).
4. Without split files, salibi's spatial split (:func:`salibi.align.split.sparse_spatial_split`);
   band statistics over the training chips; the set is written with the tiles as they came
   (:mod:`.write`; format ``salibi-aligned`` version 2, read by :class:`salibi.data.AlignedDataset`),
   each chip with its own ground GSD: mercator resolution x cos(latitude of its centre).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from salibi.align.inputs import check_arguments
from salibi.align.pmtiles.archive import MAGIC, Archive
from salibi.align.pmtiles.convert import (
    archive_identity,
    convert_parts,
    locked,
    part_size,
    prepare,
    read_parts,
    work_folder,
)
from salibi.align.pmtiles.import_plan import ChipPlan, choose_zoom, label_from_files, plan_chips, read_split_ids
from salibi.align.pmtiles.import_summary import ImportSummary
from salibi.align.pmtiles.released import RELEASED
from salibi.align.pmtiles.sources import is_url, open_source
from salibi.align.pmtiles.write import write_imported_set
from salibi.align.settings import DEFAULTS
from salibi.align.split import BUFFER, TEST, TRAIN, VAL, sparse_spatial_split
from salibi.align.write import check_output
from salibi.errors import DataFormatError, InputError
from salibi.vocabulary import MODALITIES

__all__ = ["ImportSummary", "import_archives", "is_archive", "archive_inputs"]

#: File names that say "PMTiles archive" even when the bytes do not (then they are refused as such).
SUFFIXES = (".pmtile", ".pmtiles")
#: Options of `salibi align` that only apply to PMTiles archives.
ARCHIVE_OPTIONS = ("--zoom", "--split-ids", "--keep-sar-overflow")


def is_archive(spec: str) -> bool:
    """Whether an input names a PMTiles archive: an http(s) URL, a file that starts with the
    PMTiles magic bytes, or a file named ``*.pmtile(s)``."""
    if is_url(spec):
        return True
    if spec.lower().endswith(SUFFIXES):
        return True
    try:
        with open(spec, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def archive_inputs(files: Mapping[str, Sequence[str]]) -> bool:
    """True when the inputs (modality -> what was given) are PMTiles archives, False when they
    are rasters; InputError for a mix, or for several archives of one modality."""
    kinds = {(m, spec): is_archive(str(spec)) for m, specs in files.items() for spec in specs}
    if not any(kinds.values()):
        return False
    rasters = [f"--{m} {spec}" for (m, spec), archive in kinds.items() if not archive]
    if rasters:
        raise InputError(
            f"{rasters[0]} is a raster but other inputs are PMTiles archives; give archives for every modality "
            "(or rasters for every one)"
        )
    for m, specs in files.items():
        if len(specs) > 1:
            raise InputError(f"--{m} is given {len(specs)} archives; give one PMTiles archive per modality")
    return True


def import_archives(
    *,
    sar: str | os.PathLike[str] | None = None,
    lores: str | os.PathLike[str] | None = None,
    hires: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str],
    zoom: int | None = None,
    split_ids: Mapping[str, str | os.PathLike[str]] | None = None,
    max_nodata: float = DEFAULTS.max_nodata,
    val_fraction: float = DEFAULTS.val_fraction,
    seed: int = DEFAULTS.seed,
    keep_sar_overflow: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImportSummary:
    """Make an aligned set of the archives' chips (see the module docstring); resumable: a killed
    run's finished parts are kept beside ``output`` and the same call goes on from them.

    ``split_ids``: split name (``train``, ``validation``/``val``, ``test``) -> ``.npy`` file of tile
    ids; without it, the spatial split of ``val_fraction`` (``seed``). ``workers``: decoding
    threads (default: the CPUs this process may use). Raises :class:`salibi.errors.SalibiError`
    subclasses for what the user can fix; then no output is left behind.
    """
    started = time.perf_counter()
    given = {m: os.fspath(v) for m, v in (("sar", sar), ("lores", lores), ("hires", hires)) if v is not None}
    present = [m for m in MODALITIES if m in given]
    check_arguments(present, {}, {}, 1.0, max_nodata, val_fraction)
    output = Path(output)
    check_output(output, overwrite)
    splits = read_split_ids(split_ids or {})
    workers = workers or len(os.sched_getaffinity(0))
    with ExitStack() as stack:
        archives = {}
        for m in present:
            archives[m] = Archive(open_source(given[m], f"--{m}"))
            stack.callback(archives[m].close)
        chip_zoom = choose_zoom(archives, zoom)
        plan = plan_chips(archives, chip_zoom)
        in_every = len(plan.ids) + plan.dropped_missing_child
        if splits:
            label_from_files(plan, splits)
        layouts = {m: RELEASED[m].layout(plan.sides[m], keep_sar_overflow) for m in present}
        document = {
            "format": "salibi-pmtiles-import",
            "archives": {m: archive_identity(a) for m, a in archives.items()},
            "zoom": chip_zoom,
            "chips": len(plan.ids),
            "chip_ids_sha256": _digest(plan.ids),
            "max_nodata": max_nodata,
            "layouts": {m: layout.attrs()["tile_channels"].tolist() + [layout.side] for m, layout in layouts.items()},
            "part_chips": part_size(len(plan.ids)),  # (the chunk below)
        }
        chunk = part_size(len(plan.ids))
        folder = work_folder(output)
        fresh = not folder.exists()
        with locked(folder, output):
            try:
                done = prepare(folder, document)
                convert_parts(plan, archives, layouts, folder, done, max_nodata, workers, progress)
            except DataFormatError:
                shutil.rmtree(folder, ignore_errors=True)  # a damaged archive: going on cannot help
                raise
            except BaseException:
                if fresh and not any(folder.glob("part-*.h5")):
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            numbers = read_parts(folder, len(plan.ids), present)
            labels = _labels(plan, numbers.kept, val_fraction, seed)
            _check_chips_left(numbers.kept, labels, max_nodata, numbers.invalid)
            tile_bytes = int(sum(plan.lengths[m][numbers.kept & (labels >= 0)].sum() for m in present))
            gsds = write_imported_set(
                output,
                folder,
                plan,
                numbers,
                labels,
                layouts,
                {
                    "sources": {m: Path(given[m]).name if not is_url(given[m]) else given[m] for m in present},
                    "source_format": "pmtiles",
                    "split_source": "files" if splits else "spatial",
                    "split_seed": seed,
                    "val_fraction": val_fraction,
                    "max_nodata": max_nodata,
                    "created_by": _created_by(),
                },
            )
        shutil.rmtree(folder, ignore_errors=True)

    stored = labels[numbers.kept & (labels >= 0)]
    return ImportSummary(
        path=output,
        zoom=chip_zoom,
        tiles_at_zoom=plan.tiles_at_zoom,
        chips_in_every_archive=in_every,
        chips_kept=len(stored),
        chips_train=int((stored == TRAIN).sum()),
        chips_val=int((stored == VAL).sum()),
        chips_test=int((stored == TEST).sum()),
        dropped_missing_child=plan.dropped_missing_child,
        dropped_nodata=int((~numbers.kept).sum()),
        dropped_no_split=plan.dropped_no_split,
        dropped_buffer=int((numbers.kept & (labels == BUFFER)).sum()),
        split_from="files" if splits else "spatial",
        bands={m: list(RELEASED[m].bands) for m in present},
        chip_px={m: layouts[m].chip_px for m in present},
        tiles_per_chip={m: layouts[m].tiles for m in present},
        gsd_range={m: (float(g.min()), float(g.max())) for m, g in gsds.items()},
        gsd_median={m: float(np.median(g)) for m, g in gsds.items()},
        sar_saturated=int(numbers.saturated[numbers.kept & (labels >= 0)].sum()),
        sar_overflow=layouts["sar"].sar_overflow if "sar" in layouts else "none",
        tile_bytes=tile_bytes,
        file_bytes=output.stat().st_size,
        resumed_chips=sum(min(chunk, len(plan.ids) - k * chunk) for k in done),
        seconds=time.perf_counter() - started,
    )


def _labels(plan: ChipPlan, kept: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Split labels of every planned chip: from the files, or the spatial split of the kept chips
    (BUFFER for training chips beside validation ones, -2 for chips dropped already)."""
    if plan.labels is not None:
        return np.where(kept, plan.labels, -2)
    labels = np.full(len(plan.ids), -2, np.int64)
    spatial, _ = sparse_spatial_split(plan.x[kept], plan.y[kept], val_fraction, seed)
    labels[kept] = spatial
    return labels


def _check_chips_left(kept: np.ndarray, labels: np.ndarray, max_nodata: float, invalid: dict[str, np.ndarray]) -> None:
    if not kept.any():
        over = ", ".join(f"{m}: {int((v > max_nodata).sum())}" for m, v in invalid.items())
        raise InputError(
            f"all {len(kept)} chips have more than {max_nodata:.0%} invalid (alpha 0) pixels in some modality (chips over "
            f"the limit per modality: {over}); check that the archives cover the same places, or raise --max-nodata"
        )
    if not (labels == TRAIN).any():
        raise InputError(
            f"no training chips are left of the {int(kept.sum())} valid ones; give a train split file, or lower "
            "--val-fraction"
        )


def _digest(ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(ids, np.uint64).tobytes()).hexdigest()


def _created_by() -> str:
    from salibi import __version__

    return f"salibi {__version__}"
