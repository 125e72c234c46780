"""The HDF5 embeddings file, ``salibi-embeddings`` version 2 (DESIGN.md "Data formats"); version 1
files are read too (their rows get ``source`` = ``path``, no ``bands`` and no ``chip`` window).

::

    /                attrs: format, format_version=2, checkpoint_sha256, variant, model (JSON),
                            chip_size_m, stride_m (NaN: whole tiles or aligned chips), created_by
    /embedding       (N, D) float32
    /path, /source, /modality, /bands   (N,) str
    /gsd             (N,) float64
    /bounds          (N, 4) float64     NaN without georeference
    /crs             (N,) str           WKT or empty (fixed-length, compressed)
    /chip            (N, 4) int64       col_off, row_off, width, height in the source's pixels; -1: none
    /failed_path, /failed_reason     (K,) str
    /skipped_path, /skipped_reason   (S,) str   chips over --max-nodata, with their invalid share

Part files of a running output have the same layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.embed.embeddings import Embeddings
from salibi.embed.records import NO_WINDOW, Columns
from salibi.errors import DataFormatError, MissingInputError
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import h5py

__all__ = ["READABLE_VERSIONS", "HDF5Writer", "hdf5_keys", "hdf5_notes", "iter_hdf5", "read_hdf5", "write_hdf5"]

#: Versions of ``salibi-embeddings`` HDF5 files this salibi reads (it writes the newest).
READABLE_VERSIONS = (1, EMBEDDINGS_FORMAT_VERSION)
_TEXT = ("path", "source", "modality", "bands")
# Rows read or copied at once.
CHUNK_ROWS = 16384


def _string_dtype(length: int | None = None) -> Any:
    import h5py

    return h5py.string_dtype("utf-8", length)


def _encode_fixed(values: Sequence[str], length: int) -> np.ndarray:
    # h5py converts only to a numpy dtype carrying the same utf-8 tag as the dataset
    return np.array([v.encode("utf-8") for v in values], dtype=_string_dtype(max(1, length)))


def version_of(f: h5py.File) -> int | None:
    """The ``salibi-embeddings`` version of an open file, or None when it is not one we read."""
    if f.attrs.get("format") != EMBEDDINGS_FORMAT:
        return None
    version = f.attrs.get("format_version")
    return int(version) if version in READABLE_VERSIONS else None


class HDF5Writer:
    """A new file with room for ``rows`` rows, filled by :meth:`append`; the notes written at once."""

    def __init__(
        self,
        f: h5py.File,
        attrs: dict[str, Any],
        rows: int,
        dim: int,
        crs_bytes: int,
        failed: dict[str, str],
        skipped: dict[str, str],
    ) -> None:
        self.f, self.at, self.crs_bytes = f, 0, max(1, crs_bytes)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.create_dataset("embedding", shape=(rows, dim), dtype=np.float32)
        for name in _TEXT:
            f.create_dataset(name, shape=(rows,), dtype=_string_dtype())
        f.create_dataset("gsd", shape=(rows,), dtype=np.float64)
        f.create_dataset("bounds", shape=(rows, 4), dtype=np.float64)
        f.create_dataset("chip", shape=(rows, 4), dtype=np.int64)
        # The same WKT repeats on most rows: fixed-length strings compress it to almost nothing
        # (variable-length ones live uncompressed in the global heap).
        options: dict[str, Any] = dict(chunks=(min(rows, 4096),), compression="gzip", shuffle=True) if rows else {}
        f.create_dataset("crs", shape=(rows,), dtype=_string_dtype(self.crs_bytes), **options)
        for kind, notes in (("failed", failed), ("skipped", skipped)):
            for name, values in ((f"{kind}_path", list(notes)), (f"{kind}_reason", list(notes.values()))):
                dataset = f.create_dataset(name, shape=(len(values),), dtype=_string_dtype())
                if values:
                    dataset[:] = values

    def append(self, columns: Columns) -> None:
        n = len(columns)
        if not n:
            return
        rows = slice(self.at, self.at + n)
        f = self.f
        f["embedding"][rows] = columns.embedding.astype(np.float32, copy=False)
        for name in _TEXT:
            f[name][rows] = getattr(columns, name).tolist()
        f["gsd"][rows] = columns.gsd
        f["bounds"][rows] = columns.bounds
        f["chip"][rows] = columns.chip
        f["crs"][rows] = _encode_fixed(columns.crs.tolist(), self.crs_bytes)
        self.at += n


def crs_bytes_of(columns: Columns) -> int:
    return max((len(c.encode("utf-8")) for c in columns.crs.tolist()), default=1)


def write_hdf5(
    path: Path, attrs: dict[str, Any], columns: Columns, failed: dict[str, str], skipped: dict[str, str]
) -> None:
    """A complete file of ``columns`` (a part), written at ``path`` (the caller stages it)."""
    import h5py

    with h5py.File(path, "w") as f:
        dim = columns.embedding.shape[1]
        HDF5Writer(f, attrs, len(columns), dim, crs_bytes_of(columns), failed, skipped).append(columns)


def _open(path: Path) -> h5py.File:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read as HDF5 ({gdal_reason(err)})") from None


def header(path: Path) -> tuple[dict[str, Any], int | None, tuple[int, ...] | None]:
    """``(attributes, version or None when not ours, embedding shape)`` of a file; of a file of
    another format (no ``format`` attribute, or another one) only ``format`` is read."""
    with _open(path) as f:
        kind = f.attrs.get("format")
        if not isinstance(kind, str) or kind != EMBEDDINGS_FORMAT:  # another kind: its attributes may be anything
            return {"format": kind}, None, None
        attrs = {k: (v.item() if np.ndim(v) == 0 and hasattr(v, "item") else v) for k, v in f.attrs.items()}
        shape = tuple(f["embedding"].shape) if "embedding" in f else None
        ok = "path" in f and "modality" in f
        return attrs, version_of(f) if ok else None, shape


def hdf5_keys(path: Path) -> list[tuple[str, str]]:
    """``(path, modality)`` of every row."""
    with _open(path) as f:
        return list(zip(f["path"].asstr()[:], f["modality"].asstr()[:]))


def hdf5_notes(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(failed, skipped)`` as ``(path, reason)`` lists (version 1 files skip nothing)."""
    with _open(path) as f:
        failed = list(zip(f["failed_path"].asstr()[:], f["failed_reason"].asstr()[:]))
        skipped = list(zip(f["skipped_path"].asstr()[:], f["skipped_reason"].asstr()[:])) if "skipped_path" in f else []
        return failed, skipped


def iter_hdf5(path: Path, chunk: int = CHUNK_ROWS) -> Iterator[Columns]:
    """The rows of a file, ``chunk`` at a time (version 1 rows completed with their defaults)."""
    with _open(path) as f:
        n = f["embedding"].shape[0]
        v2 = "source" in f
        for start in range(0, n, chunk):
            rows = slice(start, min(n, start + chunk))
            paths = np.array(f["path"].asstr()[rows], dtype=object)
            count = len(paths)
            yield Columns(
                embedding=f["embedding"][rows],
                path=paths,
                source=np.array(f["source"].asstr()[rows], dtype=object) if v2 else paths.copy(),
                modality=np.array(f["modality"].asstr()[rows], dtype=object),
                bands=np.array(f["bands"].asstr()[rows], dtype=object) if v2 else np.full(count, "", dtype=object),
                gsd=f["gsd"][rows],
                bounds=f["bounds"][rows],
                crs=np.array(f["crs"].asstr()[rows], dtype=object),
                chip=f["chip"][rows] if v2 else np.tile(np.array(NO_WINDOW, np.int64), (count, 1)),
            )


def read_hdf5(path: Path) -> Embeddings:
    """Read a ``salibi-embeddings`` HDF5 file (version 1 or 2) into memory."""
    if not path.is_file():
        raise MissingInputError(f"{path}: no such embeddings file")
    attrs, version, shape = header(path)
    if version is None or shape is None:
        versions = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise DataFormatError(f"{path}: not a {EMBEDDINGS_FORMAT} version {versions} file")
    columns = Columns.concat(list(iter_hdf5(path)), shape[1])
    failed, skipped = hdf5_notes(path)
    return Embeddings(
        embedding=columns.embedding,
        path=columns.path.tolist(),
        source=columns.source.tolist(),
        modality=columns.modality.tolist(),
        bands=columns.bands.tolist(),
        gsd=columns.gsd,
        bounds=columns.bounds,
        crs=columns.crs.tolist(),
        chip=columns.chip,
        failed_path=[p for p, _ in failed],
        failed_reason=[r for _, r in failed],
        skipped_path=[p for p, _ in skipped],
        skipped_reason=[r for _, r in skipped],
        attrs=attrs,
    )
