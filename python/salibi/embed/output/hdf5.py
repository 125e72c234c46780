"""The HDF5 embeddings file, ``salibi-embeddings`` version 2 (DESIGN.md "Data formats"); version 1
files are read too (their rows get ``source`` = ``path``, no ``bands`` and no ``chip`` window), and
version 2 files written before ``/datetime`` (every row's time unknown).

::

    /                attrs: format, format_version=2, checkpoint_sha256, variant, model (JSON),
                            chip_size_m, stride_m (NaN: whole tiles or aligned chips), created_by
    /embedding       (N, D) float32
    /path, /source, /modality, /bands   (N,) str
    /gsd             (N,) float64
    /bounds          (N, 4) float64     NaN without georeference
    /crs             (N,) str           WKT or empty (fixed-length, compressed)
    /chip            (N, 4) int64       col_off, row_off, width, height in the source's pixels; -1: none
    /datetime        (N,) str           acquisition time, ISO 8601 in UTC (2019-09-19T18:00:00Z); "": unknown
    /failed_path, /failed_reason     (K,) str
    /skipped_path, /skipped_reason   (S,) str   chips over --max-nodata, with their invalid share

Part files of a running output have the same layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.embed.output.embeddings import Embeddings
from salibi.embed.records import NO_TIME, NO_WINDOW, Columns, times_from_text, times_to_text
from salibi.errors import DataFormatError, MissingInputError
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import h5py

__all__ = [
    "READABLE_VERSIONS",
    "HDF5Writer",
    "hdf5_inventory",
    "hdf5_keys",
    "hdf5_notes",
    "iter_hdf5",
    "open_for_merge",
    "read_hdf5",
    "write_hdf5",
]

#: Versions of ``salibi-embeddings`` HDF5 files this salibi reads (it writes the newest).
READABLE_VERSIONS = (1, EMBEDDINGS_FORMAT_VERSION)
_TEXT = ("path", "source", "modality", "bands")
# The datasets with one entry per row.
_ROW_DATASETS = ("embedding", *_TEXT, "gsd", "bounds", "chip", "crs", "datetime")
# Rows read or copied at once.
CHUNK_ROWS = 16384
# Rows per compressed chunk of /crs.
CRS_CHUNK_ROWS = 4096


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
    """A new file with room for ``rows`` rows, filled by :meth:`append` (rows in memory) and
    :meth:`copy` (rows of another file of this layout); the notes written at once."""

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
        f.create_dataset("datetime", shape=(rows,), dtype=_string_dtype())
        # The same WKT repeats on most rows: fixed-length strings compress it to almost nothing
        # (variable-length ones live uncompressed in the global heap).
        options: dict[str, Any] = (
            dict(chunks=(min(rows, CRS_CHUNK_ROWS),), compression="gzip", shuffle=True) if rows else {}
        )
        f.create_dataset("crs", shape=(rows,), dtype=_string_dtype(self.crs_bytes), **options)
        for kind, notes in (("failed", failed), ("skipped", skipped)):
            for name, values in ((f"{kind}_path", list(notes)), (f"{kind}_reason", list(notes.values()))):
                dataset = f.create_dataset(name, shape=(len(values),), dtype=_string_dtype())
                if values:
                    dataset[:] = np.array(values, dtype=object)
        self.datasets = {name: f[name] for name in _ROW_DATASETS}

    def append(self, columns: Columns) -> None:
        """Add rows held in memory."""
        arrays = {name: getattr(columns, name) for name in _ROW_DATASETS if name not in ("crs", "datetime")}
        arrays["embedding"] = columns.embedding.astype(np.float32, copy=False)
        arrays["datetime"] = times_to_text(columns.datetime)
        self._write(arrays, _encode_fixed(columns.crs.tolist(), self.crs_bytes))

    def copy(self, source: h5py.File, keep: np.ndarray | None = None) -> None:
        """Add the rows of ``source`` (an open file of this layout, version 1 or 2, with or without
        ``/datetime``) that ``keep`` selects (all when None), :data:`CHUNK_ROWS` at a time, each
        dataset read and written as a whole array: strings never become one Python call each."""
        n = source["embedding"].shape[0]
        v2 = "source" in source
        times = _has_times(source, Path(source.filename))
        for start in range(0, n, CHUNK_ROWS):
            rows = slice(start, min(n, start + CHUNK_ROWS))
            chosen = None if keep is None or keep[rows].all() else keep[rows]
            if chosen is not None and not chosen.any():
                continue
            arrays = {name: _pick(source[name][rows], chosen) for name in ("embedding", "gsd", "bounds")}
            for name in _TEXT:
                if name in source:
                    arrays[name] = _pick(source[name].asstr()[rows], chosen)
            count = len(arrays["embedding"])
            if times:
                arrays["datetime"] = _pick(source["datetime"].asstr()[rows], chosen)
            else:  # written before /datetime: not known
                arrays["datetime"] = np.full(count, "", dtype=object)
            if not v2:  # version 1: each row its own source, no bands, no chip window
                arrays["source"] = arrays["path"]
                arrays["bands"] = np.full(count, "", dtype=object)
                arrays["chip"] = np.tile(np.array(NO_WINDOW, np.int64), (count, 1))
            else:
                arrays["chip"] = _pick(source["chip"][rows], chosen)
            crs = _pick(source["crs"][rows], chosen)  # fixed-length bytes (variable-length in files of other writers)
            if crs.dtype.kind != "S":
                crs = np.array([c if isinstance(c, bytes) else str(c).encode() for c in crs.tolist()], dtype="S")
            self._write(arrays, crs.astype(_string_dtype(self.crs_bytes)))

    def _write(self, arrays: dict[str, np.ndarray], crs: np.ndarray) -> None:
        n = len(crs)
        if not n:
            return
        rows = slice(self.at, self.at + n)
        for name, values in arrays.items():
            self.datasets[name][rows] = values
        self.datasets["crs"][rows] = crs
        self.at += n


def _has_times(f: h5py.File, path: Path) -> bool:
    """Whether ``f`` has ``/datetime`` (files written before it have not), one entry per row."""
    if "datetime" not in f:
        return False
    if f["datetime"].shape != f["embedding"].shape[:1]:
        raise DataFormatError(
            f"{path}: /datetime has {f['datetime'].shape} entries for {f['embedding'].shape[0]} rows; the file was "
            "altered or cut short"
        )
    return True


def _pick(values: np.ndarray, chosen: np.ndarray | None) -> np.ndarray:
    return values if chosen is None else values[chosen]


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


def open_for_merge(path: Path, chunk_cache_bytes: int = 0) -> h5py.File:
    """An embeddings file open for reading (or, with ``chunk_cache_bytes``, a new file for
    writing whose chunk cache holds that much: a merge writing its crs chunks piecewise keeps
    them cached and compresses each once)."""
    import h5py

    if chunk_cache_bytes:
        return h5py.File(path, "w", rdcc_nbytes=chunk_cache_bytes)
    return _open(path)


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
        return _notes(f)


def _notes(f: h5py.File) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    failed = list(zip(f["failed_path"].asstr()[:], f["failed_reason"].asstr()[:]))
    skipped = list(zip(f["skipped_path"].asstr()[:], f["skipped_reason"].asstr()[:])) if "skipped_path" in f else []
    return failed, skipped


def hdf5_inventory(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]], int]:
    """What a merge needs to know of a file, read at one opening: ``(path, modality)`` of every
    row, its failures and no-data skips (``(path, reason)``), and the width of its CRS strings."""
    with _open(path) as f:
        keys = list(zip(f["path"].asstr()[:], f["modality"].asstr()[:]))
        failed, skipped = _notes(f)
        crs = f["crs"]
        if crs.dtype.kind == "S":  # ours: fixed-length
            width = int(crs.dtype.itemsize)
        else:
            width = max((len(c.encode("utf-8")) for c in crs.asstr()[:].tolist()), default=1)
        return keys, failed, skipped, width


def iter_hdf5(path: Path, chunk: int = CHUNK_ROWS) -> Iterator[Columns]:
    """The rows of a file, ``chunk`` at a time (version 1 rows, and rows of files written before
    ``/datetime``, completed with their defaults)."""
    with _open(path) as f:
        n = f["embedding"].shape[0]
        v2 = "source" in f
        for start in range(0, n, chunk):
            rows = slice(start, min(n, start + chunk))
            paths = np.array(f["path"].asstr()[rows], dtype=object)
            count = len(paths)
            times = np.full(count, NO_TIME)
            if _has_times(f, path):
                try:
                    times = times_from_text(f["datetime"].asstr()[rows])
                except ValueError as err:
                    raise DataFormatError(f"{path}: /datetime: {err}; the file was altered") from None
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
                datetime=times,
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
        datetime=columns.datetime,
        failed_path=[p for p, _ in failed],
        failed_reason=[r for _, r in failed],
        skipped_path=[p for p, _ in skipped],
        skipped_reason=[r for _, r in skipped],
        attrs=attrs,
    )
