"""Read GEO-Bench-2 datasets from the layout the official reader finds after download.

Layout (``shared/geobench2_samples/README.md``)::

    ROOT/<dataset>/geobench_<dataset>.tortilla                     one file, or
    ROOT/<dataset>/geobench_<dataset>.0000.part.tortilla ...        several parts

A :class:`GeoBench2Task` answers like a GEO-Bench v1 :class:`~salibi.eval.geobench.tasks.Task`
(``name``, ``kind``, ``specs``, ``partitions()``, ``partition()``, ``read_sample()``), so the
features and protocols of ``salibi eval geobench`` take either. Samples are the outer rows of the
dataset's files, sorted by ``tortilla:id`` as strings as ``tacoreader.load([...])`` sorts them,
split by ``tortilla:data_split`` (``train``, ``validation``, ``test``); there is one partition,
``default``. One sample is a dict::

    {"name": "sample_0",
     "bands": {"s2:B04": ndarray (H, W), ...},       # key = "<source>:<band>" (see geobench2.datasets)
     "band_info": {key: BandInfo}, "gsd": {key: metres per pixel}, "dates": {key: None},
     "source": {key: "s2"},                          # the GEO-Bench-2 modality it belongs to
     "label": int | ndarray (n_classes,) int8 | ndarray (H, W) int64 (official remap applied)}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.eval.geobench.tasks import BandInfo, LabelType, TaskSpecs
from salibi.eval.geobench2.conventions import Convention, ItemRef, Label, Source
from salibi.eval.geobench2.datasets import CONVENTIONS, SKIPPED
from salibi.eval.geobench2.payloads import read_geotiff, read_hdf5
from salibi.eval.geobench2.tortilla import Entry, Tortilla

__all__ = [
    "BENCHMARK",
    "GeoBench2Task",
    "band_key",
    "discover_datasets",
    "is_geobench2_root",
]

BENCHMARK = "geobench2"
#: tortilla:data_split value -> the split name of a partition.
SPLITS = {"train": "train", "validation": "valid", "val": "valid", "test": "test"}
_FILE_NAME = re.compile(r"^geobench_(?P<name>.+?)(?:\.\d{4}\.part)?\.tortilla$")
_FIX = "re-download the dataset"


def band_key(source: Source, band_name: str) -> str:
    """The key of one band in a sample: ``"<source>:<band>"`` (unique within a dataset)."""
    return f"{source.name}:{band_name}"


def _tortillas(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.tortilla") if p.is_file())


def is_geobench2_root(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` or a folder in it holds ``.tortilla`` files."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return False
    return bool(_tortillas(root)) or any(p.is_dir() and _tortillas(p) for p in root.iterdir())


def discover_datasets(root: str | os.PathLike[str]) -> tuple[dict[str, GeoBench2Task], dict[str, str]]:
    """``(tasks, skipped)`` under ``root``: the datasets salibi evaluates, by name, and those it
    does not, with the reason. ``root`` is the collection folder (``<root>/<dataset>/*.tortilla``)
    or one dataset's folder; a folder's dataset is its name, else the one its files are named for."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MissingInputError(f"GEO-Bench-2 root {root} is not a folder: pass --root with the folder of datasets")
    folders = [root] if _tortillas(root) else sorted(p for p in root.iterdir() if p.is_dir() and _tortillas(p))
    tasks: dict[str, GeoBench2Task] = {}
    skipped: dict[str, str] = {}
    for folder in folders:
        name = _dataset_name(folder)
        if name in CONVENTIONS:
            tasks[name] = GeoBench2Task(folder, CONVENTIONS[name])
        elif name in SKIPPED:
            skipped[name] = SKIPPED[name]
        else:
            known = ", ".join(sorted(CONVENTIONS))
            skipped[name] = f"not a GEO-Bench-2 dataset salibi knows (folder {folder}); known: {known}"
    if not tasks and not skipped:
        raise MissingInputError(
            f"no GEO-Bench-2 datasets under {root}: expected <dataset>/geobench_<dataset>.tortilla files"
        )
    return tasks, skipped


def _dataset_name(folder: Path) -> str:
    if folder.name in CONVENTIONS or folder.name in SKIPPED:
        return folder.name
    names = {m["name"] for m in (_FILE_NAME.match(p.name) for p in _tortillas(folder)) if m}
    return names.pop() if len(names) == 1 else folder.name


@dataclass
class GeoBench2Task:
    """One GEO-Bench-2 dataset folder read with its :class:`Convention`.

    ``sources``: the names of the sources :meth:`read_sample` reads (default: every source an
    encoder takes); :meth:`with_sources` narrows them to what a checkpoint uses.
    """

    path: Path
    convention: Convention
    sources: tuple[str, ...] | None = None
    _index: dict[str, tuple[str, Entry]] | None = field(default=None, repr=False)
    _specs: TaskSpecs | None = field(default=None, repr=False)
    _first: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.convention.name

    @property
    def benchmark(self) -> str:
        return BENCHMARK

    @property
    def kind(self) -> str:
        return self.convention.label.kind

    @property
    def routed_sources(self) -> tuple[Source, ...]:
        """The sources an encoder takes (sensor with a salibi modality), narrowed to ``sources``."""
        routed = [s for s in self.convention.sources if s.modality is not None]
        return tuple(s for s in routed if self.sources is None or s.name in self.sources)

    def with_sources(self, names: Iterable[str]) -> GeoBench2Task:
        """This task reading only the sources ``names`` (shares the sample index)."""
        wanted = tuple(names)
        unknown = [n for n in wanted if n not in {s.name for s in self.convention.sources}]
        if unknown:
            raise InputError(f"dataset {self.name} has no source(s) {', '.join(unknown)}")
        return replace(self, sources=wanted)

    # -- files and samples -------------------------------------------------------------------

    def files(self) -> list[Path]:
        """The dataset's tortilla files, in the official reader's order."""
        paths = [self.path / f for f in self.convention.files]
        missing = [p.name for p in paths if not p.exists()]
        if missing:
            raise MissingInputError(
                f"dataset {self.name}: {', '.join(missing)} missing in {self.path} (the official reader loads "
                f"{', '.join(self.convention.files)}); {_FIX}"
            )
        return paths

    def _samples(self) -> dict[str, tuple[str, Entry]]:
        if self._index is None:
            rows: list[tuple[str, int, int, Entry]] = []
            for part, path in enumerate(self.files()):
                for row, entry in enumerate(Tortilla.open(path).entries):
                    rows.append((entry.id, part, row, entry))
            rows.sort(key=lambda r: (r[0], r[1], r[2]))  # tacoreader: by tortilla:id as strings
            index: dict[str, tuple[str, Entry]] = {}
            for sample_id, part, _, entry in rows:
                split = SPLITS.get(entry.split or "")
                if split is None:
                    continue  # extra test splits and the like: not part of the benchmark's partition
                name = sample_id if sample_id not in index else f"{sample_id}@{part}"
                if name in index:
                    raise DataFormatError(f"{entry.path}: sample id {sample_id!r} occurs twice in one file; {_FIX}")
                index[name] = (split, entry)
            self._index = index
        return self._index

    def partitions(self) -> list[str]:
        """GEO-Bench-2 has one partition, the files' own splits."""
        return ["default"]

    def partition(self, name: str = "default") -> dict[str, list[str]]:
        """``{"train": [...], "valid": [...], "test": [...]}`` sample names, in tacoreader's order."""
        if name != "default":
            raise InputError(
                f"dataset {self.name}: GEO-Bench-2 has one partition ('default': the train/validation/test "
                f"splits of its files), not {name!r}"
            )
        splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
        for sample_name, (split, _) in self._samples().items():
            splits[split].append(sample_name)
        return splits

    def read_sample(self, sample_name: str) -> dict[str, Any]:
        """One sample as a dict (see the module docstring)."""
        try:
            _, entry = self._samples()[sample_name]
        except KeyError:
            raise InputError(f"dataset {self.name} has no sample {sample_name!r}") from None
        table = Tortilla.nested(entry)
        sample: dict[str, Any] = {"name": sample_name, "bands": {}, "band_info": {}, "gsd": {}, "dates": {}}
        sample["source"] = {}
        for source in self.routed_sources:
            arrays, gsd = _read_source(table, source)
            for band, array in zip(source.bands, arrays):
                key = band_key(source, band.name)
                sample["bands"][key] = array
                sample["band_info"][key] = _band_info(source, band.name)
                sample["gsd"][key] = gsd
                sample["dates"][key] = None
                sample["source"][key] = source.name
        sample["label"] = _read_label(table, self.convention.label)
        return sample

    def iter_samples(self, names: list[str]) -> Iterator[dict[str, Any]]:
        for sample_name in names:
            yield self.read_sample(sample_name)

    def band_stat(self, key: str) -> dict[str, float] | None:
        """None: GEO-Bench-2 ships no statistics file; features estimate them from training samples."""
        return None

    # -- what the evaluation needs to know -----------------------------------------------------

    @property
    def specs(self) -> TaskSpecs:
        """Bands of the routed sources, the label, and the size and GSD of the first sample."""
        if self._specs is None:
            label = self.convention.label
            bands = tuple(_band_info(s, b.name) for s in self.routed_sources for b in s.bands)
            splits = self.partition()
            names = splits["train"] or splits["test"]
            if not names:
                raise DataFormatError(f"dataset {self.name}: no train or test samples in {self.path}; {_FIX}")
            sample = self.read_sample(names[0])
            sizes = {sample["source"][k]: tuple(a.shape) for k, a in sample["bands"].items()}
            gsds = {sample["source"][k]: float(g) for k, g in sample["gsd"].items()}
            self._first = {"sizes": sizes, "gsds": gsds}
            if label.kind == "segmentation":
                patch = tuple(np.asarray(sample["label"]).shape[-2:])
            else:
                patch = max(sizes.values(), default=(0, 0))
            nominal = [s.gsd for s in self.routed_sources] or [s.gsd for s in self.convention.sources]
            self._specs = TaskSpecs(
                dataset_name=self.name,
                patch_size=(int(patch[0]), int(patch[1])),
                bands=bands,
                label=LabelType(label.kind, len(label.classes), label.classes),
                spatial_resolution=min(gsds.values(), default=min(nominal)),
                benchmark_name=BENCHMARK,
            )
        return self._specs

    def source_sizes(self) -> dict[str, tuple[int, ...]]:
        """Source name -> (H, W) of its bands in the first sample."""
        self.specs  # noqa: B018  # reads the first sample
        return dict(self._first.get("sizes", {}))

    def source_gsds(self) -> dict[str, float]:
        """Source name -> metres per pixel in the first sample."""
        self.specs  # noqa: B018
        return dict(self._first.get("gsds", {}))


def _band_info(source: Source, band_name: str) -> BandInfo:
    band = next(b for b in source.bands if b.name == band_name)
    return BandInfo(
        name=band_key(source, band.name),
        kind=band.kind,
        alt_names=(band.name, *band.aliases),
        spatial_resolution=source.gsd,
        wavelength=band.wavelength,
    )


def _item(table: Tortilla, ref: ItemRef) -> Entry:
    entries = table.entries
    if isinstance(ref, int):
        if -len(entries) <= ref < len(entries):
            return entries[ref]
    elif ref.endswith("*"):
        found = next((e for e in entries if e.id.startswith(ref[:-1])), None)
        if found is not None:
            return found
    else:
        found = next((e for e in entries if e.id == ref), None)
        if found is not None:
            return found
    ids = ", ".join(e.id for e in entries)
    raise DataFormatError(f"{table.path}: the sample at byte {table.start} has no item {ref!r} (items: {ids}); {_FIX}")


def _read_source(table: Tortilla, source: Source) -> tuple[list[np.ndarray], float]:
    entry = _item(table, source.item)
    count = len(source.bands)
    if entry.file_format == "HDF5":
        data = read_hdf5(entry, index=source.step)
        if source.step is None and data.ndim == 4:
            data = data[0]
        gsd = None
    else:
        raster = read_geotiff(entry, list(range(1, count + 1)))
        data, gsd = raster.data, raster.gsd
    if data.ndim != 3 or data.shape[0] < count:
        raise DataFormatError(f"{entry.where}: array of shape {data.shape}, expected {count} bands (C, H, W); {_FIX}")
    arrays = [data[i] for i in range(count)]
    if source.valid_item is not None:
        valid_entry = _item(table, source.valid_item)
        valid = read_geotiff(valid_entry, [1]).data[0]
        if valid.shape != arrays[0].shape:
            raise DataFormatError(f"{valid_entry.where}: mask of shape {valid.shape}, image {arrays[0].shape}")
        arrays = [np.where(valid == 0, np.nan, a.astype(np.float32)) for a in arrays]
    use_georeference = source.gsd_from_georeference and gsd is not None
    return arrays, float(gsd) if use_georeference and gsd else source.gsd


def _read_label(table: Tortilla, label: Label) -> Any:
    n_classes = len(label.classes)
    if label.kind == "segmentation":
        assert label.item is not None
        entry = _item(table, label.item)
        if entry.file_format == "HDF5":
            mask = read_hdf5(entry, index=label.hdf5_index)
        else:
            mask = read_geotiff(entry, [1]).data[0]
        mask = np.squeeze(mask)
        if mask.ndim != 2:
            raise DataFormatError(f"{entry.where}: label of shape {mask.shape}, expected (H, W); {_FIX}")
        return label.remap(mask) if label.remap else mask.astype(np.int64)
    assert label.column is not None
    first = table.entries[0] if table.entries else None
    if first is None or label.column not in first.fields:
        raise DataFormatError(f"{table.path}: the sample at byte {table.start} has no {label.column!r} column; {_FIX}")
    value = first.fields[label.column]
    where = f"{table.path} (sample at byte {table.start}, column {label.column!r})"
    if label.kind == "multilabel":
        names = value if isinstance(value, (list, tuple)) else [value]
        vector = np.zeros(n_classes, dtype=np.int8)
        for class_name in names:
            if class_name not in label.classes:
                raise DataFormatError(f"{where}: unknown class {class_name!r}; {_FIX}")
            vector[label.classes.index(class_name)] = 1
        return vector
    if label.by_name or isinstance(value, str):
        if value not in label.classes:
            raise DataFormatError(f"{where}: unknown class {value!r}; {_FIX}")
        return label.classes.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n_classes:
        raise DataFormatError(f"{where}: class {value!r} is not an index below {n_classes}; {_FIX}")
    return int(value)
