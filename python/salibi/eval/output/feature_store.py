"""``--save-features DIR``: the frozen features of each task and split as HDF5, for own probes.

``DIR/TASK/SPLIT.h5`` (SPLIT: ``train``, ``valid``, ``test``; train is the largest train split
evaluated, the union over ``--partitions``), format ``salibi-eval-features`` version 1::

    /features  (N, D) float32    mean-pooled encoder tokens (modalities concatenated)
    /labels    (N,) int64 | (N, C) int8 multi-hot | (N, H, W) int16 (-1 = ignored pixel)
    /ids       (N,) str          sample names as in the partition files
    attrs: format, format_version, task, split, kind, n_classes, checkpoint, bands

Each file is written under a temporary name, flushed and renamed (:mod:`salibi.fileio`).
::

    import h5py
    with h5py.File("features/m-eurosat/train.h5") as f:
        x, y = f["features"][:], f["labels"][:]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from salibi.errors import DataFormatError
from salibi.fileio import staging_file
from salibi.vocabulary import EVAL_FEATURES_FORMAT, EVAL_FEATURES_FORMAT_VERSION

__all__ = ["features_path", "read_features", "write_features"]


def features_path(folder: str | os.PathLike[str], task: str, split: str) -> Path:
    return Path(folder) / task / f"{split}.h5"


def write_features(
    folder: str | os.PathLike[str],
    task: str,
    split: str,
    features: np.ndarray,
    labels: np.ndarray,
    ids: list[str],
    attributes: dict[str, str | int],
) -> Path:
    """Write one split's features (see the module docstring); returns the file written."""
    import h5py

    path = features_path(folder, task, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staging_file(path) as staging:
        with h5py.File(staging, "w") as f:
            f.attrs["format"] = EVAL_FEATURES_FORMAT
            f.attrs["format_version"] = EVAL_FEATURES_FORMAT_VERSION
            f.attrs["task"] = task
            f.attrs["split"] = split
            for key, value in attributes.items():
                f.attrs[key] = value
            f.create_dataset("features", data=np.asarray(features, dtype=np.float32))
            f.create_dataset("labels", data=np.asarray(labels), compression="gzip" if labels.ndim > 2 else None)
            f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
            f.flush()
    return path


def read_features(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(features, labels, ids)`` of a file written by :func:`write_features`."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != EVAL_FEATURES_FORMAT:
            raise DataFormatError(f"{path} is not a {EVAL_FEATURES_FORMAT} file; write one with --save-features")
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][:]]
        return f["features"][:], f["labels"][:], ids
