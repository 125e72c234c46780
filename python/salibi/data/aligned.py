"""A torch ``Dataset`` over aligned training sets (format ``salibi-aligned``, versions 1 and 2).

Layout (DESIGN.md "Data formats"): ``/bounds (N, 4)``, ``/split (N,)`` (0 train, 1 validation,
2 test), and per modality its chips (:mod:`salibi.data.chips`: float32 rasters
``/<modality>/data (N, C, H, W)``, or -- version 2, imported from web-tile archives -- the
encoded tiles, decoded here) with attributes ``gsd``, ``bands``, ``sources``, ``nodata``,
datasets ``mean``/``std`` over the training split and, optionally, ``chip_gsd (N,)``: each
chip's own ground GSD. Optionally ``/datetime (N,)``: each chip's acquisition time, ISO 8601 text
in UTC, ``""`` unknown (``salibi align`` writes it; sets without it: every time unknown; read by
:func:`chip_times`).

Sample ``ds[i]``::

    {"sar": FloatTensor(C, H, W), "lores": ..., "hires": ...,   # the modalities asked for
     "gsd": {"sar": 10.0, ...},                                  # the chip's metres per pixel (floats;
                                                                 #  collated: (B,) tensors, see salibi.models)
     "bounds": float64 tensor (4,),                              # min_x, min_y, max_x, max_y
     "index": row in its file, "file": which file}

With ``normalize=True`` every band is ``(x - mean) / std`` with the statistics of the sample's
own file. Invalid pixels (stored as NaN) are filled with the band mean, i.e. 0 after
normalisation, so tensors are always finite.

Worker safety: no HDF5 handle is opened in ``__init__`` (metadata is read and the file
closed) and handles are opened lazily per process, so the dataset pickles into DataLoader
workers (fork or spawn) and each worker reads through its own handles.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from salibi.data.chips import ChipReader, chip_shape, missing_datasets
from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.rasters import parse_iso_utc
from salibi.vocabulary import ALIGNED_FORMAT, ALIGNED_FORMAT_VERSION, MODALITIES

#: The aligned-set versions this salibi reads (2 added encoded tiles, chip_gsd and the test split).
READABLE_VERSIONS = (1, ALIGNED_FORMAT_VERSION)
#: Split names and the label /split stores for each.
SPLITS = {"train": 0, "val": 1, "validation": 1, "test": 2}
_RECREATE = "re-create it with `salibi align`"
#: The optional per-chip dataset of acquisition times (ISO 8601 in UTC, "" unknown).
TIME_DATASET = "datetime"


def open_aligned(path: str | os.PathLike[str]) -> Any:
    """Open an aligned training set read-only and check it: an ``h5py.File`` (use it as a
    context manager). Raises :class:`DataFormatError` naming the file, with the fix, for
    anything that is not a complete ``salibi-aligned`` file of a version it reads."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such file; create it with `salibi align`")
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory, not an aligned HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({err}); {_RECREATE}") from None
    try:
        _check_layout(path, f)
    except BaseException:
        f.close()
        raise
    return f


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_layout(path: Path, f: Any) -> None:
    kind = f.attrs.get("format")
    if kind is None or _text(kind) != ALIGNED_FORMAT:
        found = "no format attribute" if kind is None else f"format {_text(kind)!r}"
        raise DataFormatError(f"{path}: not a salibi aligned training set ({found}); {_RECREATE}")
    version = f.attrs.get("format_version")
    if version is None or int(version) not in READABLE_VERSIONS:
        raise DataFormatError(
            f"{path}: aligned-set format version {version} is not one this salibi reads "
            f"({' or '.join(str(v) for v in READABLE_VERSIONS)}); {_RECREATE}"
        )
    missing = [name for name in ("bounds", "split") if name not in f]
    modalities = [m for m in MODALITIES if m in f]
    if not modalities:
        missing.append(f"any modality group ({', '.join(MODALITIES)})")
    for m in modalities:
        missing += [f"{m}/{name}" for name in missing_datasets(f[m])]
        missing += [f"{m} attribute {a!r}" for a in ("gsd", "bands") if a not in f[m].attrs]
    if missing:
        raise DataFormatError(f"{path}: incomplete or damaged aligned set (missing {', '.join(missing)}); {_RECREATE}")
    n = f["split"].shape[0]
    shapes = {m: chip_shape(f[m], f"{path}: /{m}") for m in modalities}
    counted = [("bounds", f["bounds"].shape)] + [(f"{m} chips", shapes[m]) for m in modalities]
    if TIME_DATASET in f:
        counted.append((TIME_DATASET, f[TIME_DATASET].shape))
    for name, shape in counted:
        if shape[:1] != (n,) or (name == "bounds" and shape[1:] != (4,)) or (name == TIME_DATASET and shape != (n,)):
            raise DataFormatError(f"{path}: {name} has shape {shape}, inconsistent with {n} samples; {_RECREATE}")
    for m in modalities:
        channels = shapes[m][1]
        if (
            f[m]["mean"].shape != (channels,)
            or f[m]["std"].shape != (channels,)
            or len(f[m].attrs["bands"]) != channels
        ):
            raise DataFormatError(
                f"{path}: {m} statistics or band names do not match its {channels} channels; {_RECREATE}"
            )


def chip_times(f: Any, rows: Sequence[int], path: str | os.PathLike[str]) -> list[datetime | None]:
    """The acquisition times (UTC) of chips ``rows`` (increasing) of the open set ``f`` at ``path``:
    None where unknown, every one for a set without :data:`TIME_DATASET`; :class:`DataFormatError`
    naming the file for a text that is not a time."""
    if TIME_DATASET not in f:
        return [None] * len(rows)
    texts = [_text(t) for t in f[TIME_DATASET][list(rows)]]
    parsed: dict[str, datetime | None] = {"": None}
    for text in texts:
        if text not in parsed:
            try:
                parsed[text] = parse_iso_utc(text)
            except ValueError:
                raise DataFormatError(
                    f"{path}: /{TIME_DATASET} holds {text[:40]!r}, not an ISO 8601 time; {_RECREATE}"
                ) from None
    return [parsed[t] for t in texts]


class _FileInfo:
    """What the dataset needs of one file, read once with the file closed afterwards."""

    def __init__(self, path: Path, split: int | None) -> None:
        with open_aligned(path) as f:
            labels = f["split"][:]
            self.rows = np.arange(len(labels), dtype=np.int64) if split is None else np.flatnonzero(labels == split)
            self.modalities = tuple(m for m in MODALITIES if m in f)
            self.info: dict[str, dict[str, Any]] = {}
            for m in self.modalities:
                group = f[m]
                shape = chip_shape(group, f"{path}: /{m}")
                self.info[m] = {
                    "channels": shape[1],
                    "bands": [_text(b) for b in group.attrs["bands"]],
                    "gsd": float(group.attrs["gsd"]),
                    "mean": [float(v) for v in group["mean"][:]],
                    "std": [float(v) for v in group["std"][:]],
                    "chip_px": shape[-1],
                }
        self.path = path


class AlignedDataset(Dataset):
    """One or several aligned training sets as one dataset (files concatenated in order).

    ``split``: ``"train"``, ``"val"`` (``"validation"``), ``"test"`` or ``None`` (all samples). ``modalities``: the ones to
    return (default: those present in every file), always in the shared order of
    :data:`salibi.vocabulary.MODALITIES`. ``normalize``: per-band standardisation with each
    file's training statistics.
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        split: str | None = None,
        modalities: Sequence[str] | None = None,
        normalize: bool = True,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("AlignedDataset: give at least one aligned HDF5 file")
        if split is not None and split not in SPLITS:
            raise InputError(f"split={split!r}: use 'train', 'val', 'test' or None")
        self.split = split
        self.normalize = normalize
        self._files = [_FileInfo(p, None if split is None else SPLITS[split]) for p in self.paths]

        common = [m for m in MODALITIES if all(m in fi.modalities for fi in self._files)]
        if modalities is None:
            chosen = common
        else:
            chosen = list(dict.fromkeys(modalities))
            for m in chosen:
                lacking = [str(fi.path) for fi in self._files if m not in fi.modalities]
                if m not in MODALITIES:
                    raise InputError(f"modalities: {m!r} is not one of {', '.join(MODALITIES)}")
                if lacking:
                    raise InputError(
                        f"modality {m!r} is not in {', '.join(lacking)}; leave it out or re-align those files"
                    )
            chosen = [m for m in MODALITIES if m in chosen]
        self.modalities: tuple[str, ...] = tuple(chosen)
        first = self._files[0]
        for fi in self._files[1:]:
            for m in self.modalities:
                if fi.info[m]["channels"] != first.info[m]["channels"]:
                    raise InputError(
                        f"{fi.path}: {m} has {fi.info[m]['channels']} bands but {first.path} has "
                        f"{first.info[m]['channels']}; align every file with the same bands"
                    )
        self._offsets = np.cumsum([0] + [len(fi.rows) for fi in self._files]).tolist()
        # Per file and modality: mean and std shaped (C, 1, 1) for broadcasting.
        self._stats = [
            {
                m: (
                    np.asarray(fi.info[m]["mean"], np.float32)[:, None, None],
                    np.where(
                        np.asarray(fi.info[m]["std"], np.float32) > 0, np.asarray(fi.info[m]["std"], np.float32), 1.0
                    ).astype(np.float32)[:, None, None],
                )
                for m in self.modalities
            }
            for fi in self._files
        ]
        self._handles: dict[int, Any] = {}
        self._pid: int | None = None
        self._inverse: dict[tuple[int, str], np.ndarray] = {}  # (file, modality) -> 1 / std, (C, 1, 1)

    # -- facts -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def modality_info(self) -> dict[str, dict[str, Any]]:
        """Per modality (from the first file): channels, bands, gsd, mean, std (lists)."""
        first = self._files[0].info
        return {m: {k: first[m][k] for k in ("channels", "bands", "gsd", "mean", "std")} for m in self.modalities}

    def file_indices(self) -> list[range]:
        """For each file, the dataset indices of its samples (chip shapes may differ between files)."""
        return [range(self._offsets[k], self._offsets[k + 1]) for k in range(len(self._files))]

    def locate(self, index: int) -> tuple[int, int]:
        """``(file, row in that file)`` of dataset index ``index``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
        k = bisect.bisect_right(self._offsets, index) - 1
        return k, int(self._files[k].rows[index - self._offsets[k]])

    # -- reading ---------------------------------------------------------------------------

    def _handle(self, k: int) -> Any:
        import h5py

        if self._pid != os.getpid():
            # A forked worker must not use its parent's HDF5 handles.
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(k)
        if handle is None:
            f = h5py.File(self._files[k].path, "r")
            # Datasets looked up once per file and process, not per sample.
            readers = {m: ChipReader(f[m], f"{self._files[k].path}: /{m}") for m in self.modalities}
            handle = self._handles[k] = {"file": f, "bounds": f["bounds"], **readers}
        return handle

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, row = self.locate(int(index))
        datasets = self._handle(k)
        sample: dict[str, Any] = {}
        for m in self.modalities:
            if datasets[m].encoded:  # uint8 bands, normalised straight into float32
                sample[m] = torch.from_numpy(self._normalised(k, m, *datasets[m].read_encoded(row)))
                continue
            x, invalid = datasets[m].read(row)
            mean, std = self._stats[k][m]
            if self.normalize:
                x = (x - mean) / std
                if invalid.any():
                    x[np.broadcast_to(invalid, x.shape)] = 0.0
            elif invalid.any():
                x = np.where(invalid, mean, x)
            sample[m] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        sample["gsd"] = {m: float(datasets[m].gsd([row])[0]) for m in self.modalities}
        sample["bounds"] = torch.from_numpy(np.asarray(datasets["bounds"][row], dtype=np.float64))
        sample["index"] = row
        sample["file"] = k
        return sample

    def _normalised(self, k: int, m: str, bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(C, H, W) float32 of uint8 ``bands``, ``(v - mean) / std`` (or ``v``) in two passes over
        the output; invalid pixels 0 (or the band mean)."""
        mean, std = self._stats[k][m]
        out = np.subtract(bands, mean if self.normalize else 0.0, dtype=np.float32)
        if self.normalize:
            out *= self._inverse_std(k, m)
        if not valid.all():
            invalid = ~valid
            for c in range(bands.shape[0]):
                out[c][invalid] = 0.0 if self.normalize else mean[c, 0, 0]
        return out

    def _inverse_std(self, k: int, m: str) -> np.ndarray:
        found = self._inverse.get((k, m))
        if found is None:
            found = self._inverse[k, m] = (1.0 / self._stats[k][m][1]).astype(np.float32)
        return found

    def close(self) -> None:
        """Close the HDF5 handles this process opened."""
        if self._pid == os.getpid():
            for handle in self._handles.values():
                try:
                    handle["file"].close()
                except Exception:
                    pass
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        names = ", ".join(str(p) for p in self.paths)
        return f"AlignedDataset([{names}], split={self.split!r}, modalities={self.modalities}, samples={len(self)})"
