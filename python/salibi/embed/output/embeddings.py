"""An embeddings output read into memory, whatever its format: :func:`read_embeddings` reads HDF5
``salibi-embeddings`` version 1 or 2 (``.h5``) and GeoParquet (``.parquet``: the file, or the
files of one output split by CRS, ``out.epsg-32614.parquet`` ...).

Meant for modest sizes (search, maps, tests); stream with h5py or pyarrow for huge outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import InputError

__all__ = ["HDF5_SUFFIXES", "PARQUET_SUFFIXES", "Embeddings", "output_format", "read_embeddings"]

HDF5_SUFFIXES = (".h5", ".hdf5")
PARQUET_SUFFIXES = (".parquet", ".geoparquet")


def output_format(path: Path) -> str:
    """``"hdf5"`` or ``"parquet"`` from the output's extension, or an :class:`InputError`."""
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(
        f"-o {path}: the extension says the format: {', '.join(HDF5_SUFFIXES)} (HDF5) or "
        f"{', '.join(PARQUET_SUFFIXES)} (GeoParquet); give a file name ending in one of them"
    )


@dataclass
class Embeddings:
    """Rows of an embeddings output: ``embedding`` (N, D) float32, ``gsd`` (N,), ``bounds`` (N, 4)
    (NaN without georeference; GeoParquet: on the file's CRS), ``chip`` (N, 4) window (-1 where the
    row is not one), ``datetime`` (N,) datetime64[us] acquisition times in UTC (NaT: unknown; e.g.
    ``table.datetime >= np.datetime64("2023-06-01")``), string lists ``path``, ``source``,
    ``modality``, ``bands``, ``crs`` (WKT), the failures and the chips skipped for no-data with
    their reasons, and the file's attributes."""

    embedding: np.ndarray
    path: list[str]
    source: list[str]
    modality: list[str]
    bands: list[str]
    gsd: np.ndarray
    bounds: np.ndarray
    crs: list[str]
    chip: np.ndarray
    datetime: np.ndarray
    failed_path: list[str]
    failed_reason: list[str]
    skipped_path: list[str]
    skipped_reason: list[str]
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return len(self.path)

    def row_of(self, path: str, modality: str | None = None) -> int:
        """The row of ``path`` (and ``modality``, needed when the path has several rows)."""
        rows = [i for i, p in enumerate(self.path) if p == path and (modality is None or self.modality[i] == modality)]
        if not rows:
            raise KeyError(f"no row {path!r}" + (f" with modality {modality!r}" if modality else ""))
        if len(rows) > 1:
            found = ", ".join(self.modality[i] for i in rows)
            raise KeyError(f"{path!r} has rows of several modalities ({found}): name one")
        return rows[0]


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read an embeddings output (HDF5 v1/v2 or GeoParquet) into memory."""
    path = Path(path)
    if output_format(path) == "hdf5":
        from salibi.embed.output.hdf5 import read_hdf5

        return read_hdf5(path)
    from salibi.embed.output.geoparquet import read_geoparquet

    return read_geoparquet(path)
