"""The inputs of ``salibi align``: arguments checked, raster files opened, bands picked and named.

Each modality's files are opened with rasterio and their bands concatenated in the order the
files were given; ``bands`` picks from that concatenation by 1-based position (in any order)
and ``band_names`` renames what was picked. Unnamed bands of one-band files named as Sentinel-2,
Sentinel-1 or Landsat band files are named from the file name (``..._B04.jp2`` -> ``B04``). What comes out is one :class:`Modality` per
modality, holding the :class:`InputFile` objects the reader uses and the channel order the
output wants. Where each file lies on the target CRS is filled in later by
:mod:`salibi.align.grid`.

Each file's acquisition time is read from its tags (:func:`salibi.rasters.acquisition_time`;
``salibi fetch`` writes them); :func:`chips_acquired` says which one the chips record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from salibi.bands import band_from_file_name
from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.rasters import acquisition_time, gdal_reason
from salibi.vocabulary import MODALITIES


@dataclass
class InputFile:
    """One input raster file and how it is read."""

    modality: str
    path: Path
    dataset: Any  # rasterio DatasetReader, open for the whole run
    indexes: list[int]  # selected 1-based bands of this file, in file order
    band_names: list[str]
    is_complex: bool
    acquired: datetime | None = None  # acquisition time (UTC) from its tags, when they record one
    # The fields below are set by grid.place_on_target once the target CRS is known.
    windowed: bool = False  # on the target CRS and north-up: read in windows, never warped
    native_gsd: float = 0.0  # metres per pixel on the target CRS
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # envelope on the target CRS
    target: Any = None  # the target CRS (rasterio CRS)

    @property
    def flag(self) -> str:
        """How the user gave this file, for error messages."""
        return f"--{self.modality} {self.path}"


@dataclass
class Modality:
    """One modality's files and the chips cut for it."""

    name: str
    inputs: list[InputFile]
    band_names: list[str]  # in output order
    # Output channel -> position in the per-file concatenation the core returns; None when
    # that concatenation is already the output order.
    channel_order: np.ndarray | None
    gsd: float = 0.0  # metres per pixel of its chips
    size_px: int = 0  # chip side in pixels


#: The modality whose acquisition time the chips record: the low-res optical scene (a fetch's
#: pairs are chosen around it); without one, the first modality of MODALITIES that has a time.
TIME_MODALITY = "lores"


def chips_acquired(modalities: list[Modality]) -> datetime | None:
    """When the chips cut from ``modalities`` were acquired (see :data:`TIME_MODALITY`). A modality
    has a time when every file it reads records the same one (its files are its bands, and every
    chip takes pixels from all of them); None when no modality has one."""
    by_name = {mod.name: mod for mod in modalities}
    for name in (TIME_MODALITY, *(m for m in MODALITIES if m != TIME_MODALITY)):
        mod = by_name.get(name)
        times = {inp.acquired for inp in mod.inputs} if mod is not None else set()
        if len(times) == 1 and None not in times:
            return times.pop()
    return None


def as_paths(value: Any) -> list[Path]:
    """A path, a list of paths or None as a list of paths."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def check_arguments(
    present: list[str],
    gsd: dict[str, float],
    bands: dict[str, list[int]],
    tile_size_m: float,
    max_nodata: float,
    val_fraction: float,
) -> None:
    """Raise :class:`InputError` for arguments that cannot work, before any file is opened."""
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


def open_modality(name: str, paths: list[Path], picked: list[int] | None, stack: ExitStack) -> Modality:
    """Open a modality's files (closed when ``stack`` closes) and pick its bands."""
    opened = [(path, _open_raster(f"--{name} {path}", path, stack)) for path in paths]
    # (file position, band in file) for every band of the modality, in order.
    every_band = [(i, b) for i, (_, ds) in enumerate(opened) for b in range(1, ds.count + 1)]
    chosen = every_band if picked is None else [_pick(name, number, every_band, opened) for number in picked]

    inputs: list[InputFile] = []
    slot_of_file: dict[int, int] = {}  # file position -> index in inputs
    for i, (path, ds) in enumerate(opened):
        indexes = sorted({b for f, b in chosen if f == i})
        if not indexes:
            continue  # no band of this file is used: it does not constrain the footprint either
        slot_of_file[i] = len(inputs)
        inputs.append(
            InputFile(
                modality=name,
                path=path,
                dataset=ds,
                indexes=indexes,
                band_names=[band_name(path, ds, b) for b in indexes],
                is_complex=np.dtype(ds.dtypes[0]).kind == "c",
                acquired=acquisition_time(ds.tags()),
            )
        )
    # Position of each chosen band in the concatenation the core returns (files in order,
    # each file's selected bands in file order).
    offsets, position = {}, 0
    for i in sorted(slot_of_file):
        offsets[i] = position
        position += len(inputs[slot_of_file[i]].indexes)
    order = [offsets[f] + inputs[slot_of_file[f]].indexes.index(b) for f, b in chosen]
    return Modality(
        name=name,
        inputs=inputs,
        band_names=[band_name(opened[f][0], opened[f][1], b) for f, b in chosen],
        channel_order=None if order == list(range(position)) else np.asarray(order),
    )


def _open_raster(flag: str, path: Path, stack: ExitStack) -> Any:
    """The opened rasterio dataset, or the error that says what is wrong with the file."""
    import rasterio
    from rasterio.errors import RasterioIOError

    if not path.exists():
        raise MissingInputError(f"{flag}: no such file")
    if path.is_dir():
        raise InputError(f"{flag}: is a directory, not a raster file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{flag}: permission denied; make the file readable")
    try:
        dataset = stack.enter_context(rasterio.open(path))
    except RasterioIOError as err:
        raise DataFormatError(f"{flag}: not a readable raster ({gdal_reason(err)})") from None
    if dataset.crs is None:
        raise DataFormatError(
            f"{flag}: has no coordinate reference system; georeference it first (e.g. gdal_translate -a_srs)"
        )
    return dataset


def _pick(name: str, number: int, every_band: list[tuple[int, int]], opened: list[tuple[Path, Any]]) -> tuple[int, int]:
    """The (file position, band in file) of 1-based band ``number`` of the concatenation."""
    if not 1 <= number <= len(every_band):
        counts = ", ".join(f"{p.name}: {ds.count}" for p, ds in opened)
        raise InputError(
            f"--bands {name}: band {number} is out of range; {name} has {len(every_band)} band(s) "
            f"numbered from 1 ({counts})"
        )
    return every_band[number - 1]


def band_name(path: Path, dataset: Any, band: int) -> str:
    """The file's description of the band; else, for a one-band file, the band its name states
    (Sentinel-2 ``..._B04.jp2`` -> ``B04``, ``..._VV.tif`` -> ``VV``, Landsat ``LC08_..._SR_B5.TIF``
    -> ``LC08_B5``; :func:`salibi.bands.band_from_file_name`); else ``<file stem>:<band>``."""
    description = dataset.descriptions[band - 1]
    if description:
        return description
    named = band_from_file_name(path.name) if dataset.count == 1 else None
    return named or f"{path.stem}:{band}"


def fetch_folder_groups(folder: str | os.PathLike[str]) -> list[dict[str, list[Path]]]:
    """The groups of a ``salibi fetch`` folder (``salibi align DIR``): ``{modality: [files]}`` per
    place and time, from its ``manifest.json`` (:func:`salibi.fetch.manifest.fetch_groups`)."""
    from salibi.fetch.manifest import fetch_groups

    return fetch_groups(folder)


def rename_bands(modalities: list[Modality], names: Mapping[str, Sequence[str]]) -> None:
    """Apply ``band_names``: one non-empty name per kept band of the modality, in order."""
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
