"""Writing the aligned training set: one HDF5 file, complete or not at all.

:func:`write_aligned_set` opens the output under a temporary name beside it, cuts the grid
strip by strip (:mod:`salibi.align.strips`) into a :class:`ChipWriter` that appends chips (with
their bounds, split label and acquisition time, ``/datetime``) and keeps per-band statistics over
the training chips, checks that something usable is left,
writes the attributes of format ``salibi-aligned`` (DESIGN.md "Data formats"), and renames the
file onto the output once it is flushed to disk. On any failure the temporary file is removed; a
write that fails (a full disk) is one :class:`salibi.errors.OutputError` naming the output, raised
after the batch of chips it belonged to (:func:`salibi.fileio.staging_hdf5` keeps it from HDF5).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.align.grid import crs_name
from salibi.align.inputs import Modality, chips_acquired
from salibi.align.split import TRAIN, SpatialSplit, split_block_size
from salibi.align.strips import ChipCutter, chip_row_bytes, cut_in_strips
from salibi.align.summary import AlignSummary
from salibi.errors import InputError, OutputError, OutputExistsError, SalibiError
from salibi.fileio import StagedHDF5, staging_hdf5
from salibi.progress import RateProgress
from salibi.rasters import iso_utc
from salibi.vocabulary import ALIGNED_FORMAT, ALIGNED_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import h5py
    from rasterio.crs import CRS


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an output that cannot or may not be written, before any work is done."""
    if output.is_dir():
        raise InputError(f"-o {output}: is a directory; give a file name such as {output / 'aligned.h5'}")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"-o {output}: already exists; pass --overwrite to replace it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"-o {output}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {output}: folder {parent} is not writable; choose another output path")


@dataclass
class BandStats:
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
        """Fold in chips shaped (n, channels, rows, cols)."""
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
        """(mean, standard deviation) per band, float32."""
        std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        return self.mean.astype(np.float32), std.astype(np.float32)


class ChipWriter:
    """Appends chips to the HDF5 datasets (one sample per chunk) and keeps train statistics;
    ``check`` after each append raises a write that failed. Each chip's ``/datetime`` is the time
    given to :meth:`record_time` before it was appended (ISO 8601 in UTC, ``""`` unknown)."""

    def __init__(self, f: h5py.File, modalities: list[Modality], check: Callable[[], None] = lambda: None) -> None:
        import h5py

        self.check = check
        self.count = 0
        self.train = 0
        self.val = 0
        self.bounds = f.create_dataset("bounds", shape=(0, 4), maxshape=(None, 4), dtype="f8", chunks=(4096, 4))
        self.split = f.create_dataset("split", shape=(0,), maxshape=(None,), dtype="u1", chunks=(65536,))
        self.datetime = f.create_dataset(
            "datetime", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(65536,)
        )
        self.acquired = ""
        self.data: dict[str, Any] = {}
        self.stats: dict[str, BandStats] = {}
        for mod in modalities:
            shape = (len(mod.band_names), mod.size_px, mod.size_px)
            self.data[mod.name] = f.create_group(mod.name).create_dataset(
                "data", shape=(0, *shape), maxshape=(None, *shape), dtype="f4", chunks=(1, *shape)
            )
            self.stats[mod.name] = BandStats(shape[0])

    def record_time(self, moment: datetime | None) -> None:
        """The acquisition time of the chips appended from now on (None: unknown)."""
        self.acquired = "" if moment is None else iso_utc(moment)

    def append(self, bounds: np.ndarray, labels: np.ndarray, chips: dict[str, np.ndarray]) -> None:
        """Append chips with their bounds and split labels; chips: {modality: (n, C, H, W)}."""
        n0, n1 = self.count, self.count + len(labels)
        if n1 == n0:
            return
        times = np.full(n1 - n0, self.acquired, dtype=object)
        columns = [(self.bounds, bounds), (self.split, labels), (self.datetime, times)]
        columns += [(self.data[m], chips[m]) for m in self.data]
        for dataset, values in columns:
            dataset.resize(n1, axis=0)
            dataset[n0:n1] = values
        self.check()
        train = labels == TRAIN
        if train.any():
            for m, values in chips.items():
                self.stats[m].add(values[train])
        self.train += int(train.sum())
        self.val += int((~train).sum())
        self.count = n1


@contextmanager
def staged_hdf5(output: Path) -> Iterator[StagedHDF5]:
    """An HDF5 file open for writing under a temporary name beside ``output`` (:func:`staging_hdf5`):
    closed, flushed to disk and renamed onto ``output`` when the block succeeds, removed when it
    fails. Call :func:`checked` around its ``check()`` and ``close()``."""
    with ExitStack() as stack:
        try:
            staged = stack.enter_context(staging_hdf5(output))
        except OSError as err:
            raise InputError(
                f"-o {output}: cannot write in {output.parent} ({err.strerror or err}); choose another output path"
            ) from None
        yield staged


def checked(output: Path, step: Callable[[], None]) -> None:
    """``step`` (a check or the close of the staged file), a failed write as the error that names
    the output and what to do."""
    try:
        step()
    except SalibiError:
        raise
    except OSError as err:
        raise OutputError(_write_failed(output, err)) from None


def _write_failed(output: Path, err: OSError) -> str:
    folder = output.parent if str(output.parent) else Path(".")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if err.errno == errno.ENOSPC else "disk quota exceeded"
        return (
            f"-o {output}: {what} in {folder}; nothing was written: free some space there or choose another output path"
        )
    reason = os.strerror(err.errno) if err.errno else str(err)
    return f"-o {output}: could not be written ({reason}); nothing was written: choose another output path"


def write_aligned_set(
    *,
    output: Path,
    modalities: list[Modality],
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
    """Cut, split and write every chip of ``grid`` to ``output``; what was written."""
    cells = grid.rows * grid.cols
    block = split_block_size(grid.rows, grid.cols, val_fraction, chip_row_bytes(modalities, grid.cols))
    split = SpatialSplit(grid.rows, grid.cols, block, val_fraction, seed)
    cutter = ChipCutter(modalities, grid, max_nodata)
    with staged_hdf5(output) as staged:
        f = staged.file
        writer = ChipWriter(f, modalities, lambda: checked(output, staged.check))
        writer.record_time(chips_acquired(modalities))
        # On a terminal only, and gone when done (the summary follows): logs and error output
        # stay one clear line.
        with RateProgress("aligning", "chips", cells, progress, plain_every=None, transient=True) as bar:
            cut_in_strips(cutter, split, writer, bar)
        _check_chips_left(split, writer, cutter.over_limit, max_nodata)
        _write_attributes(f, writer, modalities, target, footprint, tile_size_m, block, seed, max_nodata, val_fraction)
        checked(output, staged.close)  # the chips still in HDF5's caches are written here

    kept = int(split.kept.sum())
    return AlignSummary(
        path=output,
        chips_in_grid=cells,
        chips_kept=writer.count,
        chips_train=writer.train,
        chips_val=writer.val,
        chips_dropped_nodata=cells - kept,
        chips_dropped_buffer=kept - writer.count,
        footprint=tuple(float(v) for v in footprint),  # type: ignore[arg-type]
        grid_extent=tuple(float(v) for v in grid.extent()),  # type: ignore[arg-type]
        crs=crs_name(target),
        tile_size_m=tile_size_m,
        gsd={m.name: m.gsd for m in modalities},
        chip_px={m.name: m.size_px for m in modalities},
        bands={m.name: list(m.band_names) for m in modalities},
        split_block_chips=block,
        seconds=time.perf_counter() - started,
    )


def _check_chips_left(split: SpatialSplit, writer: ChipWriter, over_limit: dict[str, int], max_nodata: float) -> None:
    """Refuse a set without valid chips, or without training chips."""
    kept = int(split.kept.sum())
    if kept == 0:
        details = ", ".join(f"{m}: {n}" for m, n in over_limit.items())
        raise InputError(
            f"all {split.kept.size} chips have more than {max_nodata:.0%} invalid (nodata/NaN/zero) pixels in "
            f"some modality (chips over the limit per modality: {details}); check that the inputs hold "
            "valid data over the same area, or raise --max-nodata"
        )
    if writer.train == 0:
        raise InputError(
            f"no training chips are left: all {kept} valid chips went to validation or its buffer; "
            "lower --val-fraction or use a smaller --tile-size-m"
        )


def _write_attributes(
    f: h5py.File,
    writer: ChipWriter,
    modalities: list[Modality],
    target: CRS,
    footprint: tuple[float, float, float, float],
    tile_size_m: float,
    block: int,
    seed: int,
    max_nodata: float,
    val_fraction: float,
) -> None:
    """The format's attributes, provenance, and per modality its metadata and statistics."""
    import h5py

    from salibi import __version__

    text = h5py.string_dtype()
    f.attrs["format"] = ALIGNED_FORMAT
    f.attrs["format_version"] = ALIGNED_FORMAT_VERSION
    f.attrs["crs"] = target.to_wkt()
    f.attrs["tile_size_m"] = float(tile_size_m)
    # Provenance beyond the versioned schema.
    f.attrs["crs_name"] = crs_name(target)
    f.attrs["footprint"] = np.asarray(footprint, np.float64)
    f.attrs["split_block_chips"] = block
    f.attrs["split_seed"] = seed
    f.attrs["max_nodata"] = max_nodata
    f.attrs["val_fraction"] = val_fraction
    f.attrs["created_by"] = f"salibi {__version__}"
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
