"""The embeddings file (HDF5 ``salibi-embeddings`` v1, DESIGN.md "Data formats") and its crash-safe
writing: ``out.h5`` plus the part files of a running or killed run in ``out.h5.parts/``, the lock
that keeps one run per output, resume and the final merge (see "Output" in :mod:`salibi.embed`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.fileio import replace_atomic, staging_file
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    import h5py

__all__ = ["PARTS_SUFFIX", "EmbeddingStore", "Embeddings", "Rows", "output_attrs", "read_embeddings"]

PARTS_SUFFIX = ".parts"
_PART_NAME = re.compile(r"^part-(\d{6,})\.h5$")
# Rows copied at once when merging parts into the output.
_MERGE_CHUNK_ROWS = 16384


@dataclass
class Embeddings:
    """An embeddings file read into memory (:func:`read_embeddings`)."""

    embedding: np.ndarray  # (N, D) float32
    path: list[str]
    modality: list[str]
    gsd: np.ndarray  # (N,) float64
    bounds: np.ndarray  # (N, 4) float64
    crs: list[str]
    failed_path: list[str]
    failed_reason: list[str]
    attrs: dict[str, Any]

    def row_of(self, path: str) -> int:
        return self.path.index(path)


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read a ``salibi-embeddings`` file into memory (for modest sizes; use h5py for huge ones)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such embeddings file")
    try:
        with h5py.File(path, "r") as f:
            if not _is_embeddings_file(f):
                raise DataFormatError(f"{path}: not a {EMBEDDINGS_FORMAT} version {EMBEDDINGS_FORMAT_VERSION} file")
            return Embeddings(
                embedding=f["embedding"][:],
                path=list(f["path"].asstr()[:]),
                modality=list(f["modality"].asstr()[:]),
                gsd=f["gsd"][:],
                bounds=f["bounds"][:],
                crs=list(f["crs"].asstr()[:]),
                failed_path=list(f["failed_path"].asstr()[:]),
                failed_reason=list(f["failed_reason"].asstr()[:]),
                attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
            )
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read as HDF5 ({gdal_reason(err)})") from None


def _is_embeddings_file(f: h5py.File) -> bool:
    return f.attrs.get("format") == EMBEDDINGS_FORMAT and f.attrs.get("format_version") == EMBEDDINGS_FORMAT_VERSION


def output_attrs(model: Any, checkpoint_folder: Path) -> dict[str, Any]:
    """The attributes of an output of ``model``; ``checkpoint`` (its folder) is for messages only."""
    from salibi.models.checkpoint import WEIGHTS

    return {
        "format": EMBEDDINGS_FORMAT,
        "format_version": EMBEDDINGS_FORMAT_VERSION,
        # Embeddings of different weights do not mix: resume checks this.
        "checkpoint_sha256": _sha256(checkpoint_folder / WEIGHTS),
        "variant": model.config.variant,
        "model": json.dumps(model.config.to_dict(), sort_keys=True),
        "checkpoint": str(checkpoint_folder),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Rows:
    """Columns of some rows (a part's worth)."""

    embedding: list[np.ndarray] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    modality: list[str] = field(default_factory=list)
    gsd: list[float] = field(default_factory=list)
    bounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    crs: list[str] = field(default_factory=list)
    failed_path: list[str] = field(default_factory=list)
    failed_reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.path) + len(self.failed_path)


# -- the HDF5 layout -----------------------------------------------------------------------------


def _string_dtype(length: int | None = None) -> Any:
    import h5py

    return h5py.string_dtype("utf-8", length)


def _create_layout(f: h5py.File, attrs: dict[str, Any], rows: int, failed: int, dim: int, crs_bytes: int) -> None:
    for key, value in attrs.items():
        f.attrs[key] = value
    f.create_dataset("embedding", shape=(rows, dim), dtype=np.float32)
    for name in ("path", "modality"):
        f.create_dataset(name, shape=(rows,), dtype=_string_dtype())
    f.create_dataset("gsd", shape=(rows,), dtype=np.float64)
    f.create_dataset("bounds", shape=(rows, 4), dtype=np.float64)
    # The same WKT repeats on most rows: fixed-length strings compress it to almost nothing
    # (variable-length ones live uncompressed in the global heap).
    crs_options: dict[str, Any] = {}
    if rows:
        crs_options = dict(chunks=(min(rows, 4096),), compression="gzip", shuffle=True)
    f.create_dataset("crs", shape=(rows,), dtype=_string_dtype(max(1, crs_bytes)), **crs_options)
    for name in ("failed_path", "failed_reason"):
        f.create_dataset(name, shape=(failed,), dtype=_string_dtype())


def _encode_fixed(values: Sequence[str], length: int) -> np.ndarray:
    # h5py converts only to a numpy dtype carrying the same utf-8 tag as the dataset
    return np.array([v.encode("utf-8") for v in values], dtype=_string_dtype(max(1, length)))


class _DamagedPart(Exception):
    """A part file that cannot be used (cut short, not ours): its tiles are embedded again."""


# -- out.h5 and its parts ------------------------------------------------------------------------


class EmbeddingStore:
    """``out.h5`` plus ``out.h5.parts/``: checks, the lock, the part writer and the final merge."""

    def __init__(self, path: Path, attrs: dict[str, Any], dim: int) -> None:
        self.path = path
        self.parts = path.with_name(path.name + PARTS_SUFFIX)
        self.attrs = attrs
        self.dim = dim
        self._lock_fd: int | None = None
        self._next_part = 0

    # checking and locking
    def prepare(self) -> tuple[set[str], list[str]]:
        """Check the output and its parts, lock them, drop leftovers of killed writes.
        Returns the paths already embedded and warnings about damaged parts."""
        if self.path.exists() and not self.path.is_file():
            raise InputError(f"-o {self.path}: is a folder; give a file name such as {self.path / 'embeddings.h5'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.parts.mkdir(exist_ok=True)
            probe = self.parts / f".probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise InputError(
                f"-o {self.path}: cannot write there ({err.strerror or err}); choose a writable location"
            ) from None
        self._lock()
        # Half-written parts and merges of a killed run (staging names end in .tmp); ours alone: we hold the lock.
        for leftover in self.parts.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        done: set[str] = set()
        if self.path.exists():
            done.update(self._check(self.path, is_part=False))
        problems = []
        numbers = [-1]
        for part in self._part_files():
            try:
                done.update(self._check(part, is_part=True))
            except _DamagedPart as err:
                problems.append(str(err))
                part.unlink(missing_ok=True)
                continue
            numbers.append(int(_PART_NAME.match(part.name)[1]))  # type: ignore[index]
        self._next_part = max(numbers) + 1
        return done, problems

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no lock
            return
        for _ in range(3):
            self.parts.mkdir(exist_ok=True)
            fd = os.open(self.parts, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputExistsError(
                    f"-o {self.path}: another salibi embed is writing this output right now; "
                    "wait for it to finish or choose another -o"
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.parts))
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)  # the folder was removed by a run that just finished: lock the new one
        raise OutputExistsError(f"-o {self.path}: another salibi embed keeps replacing {self.parts}; choose another -o")

    def close(self) -> None:
        """Remove the parts folder when empty (only if this run holds it), release the lock."""
        if self._lock_fd is not None:
            self.remove_parts_folder_if_empty()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted((p for p in self.parts.iterdir() if _PART_NAME.match(p.name)), key=lambda p: p.name)

    def _check(self, path: Path, is_part: bool) -> list[str]:
        """The embedded paths of an existing output or part, after checking its format and checkpoint."""
        import h5py

        try:
            with h5py.File(path, "r") as f:
                fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
                ours = _is_embeddings_file(f)
                sha, variant = f.attrs.get("checkpoint_sha256"), f.attrs.get("variant")
                width = f["embedding"].shape[1:] if "embedding" in f else None
                paths = list(f["path"].asstr()[:]) if "path" in f else None
        except OSError as err:
            if is_part:
                raise _DamagedPart(
                    f"{path}: damaged part ({gdal_reason(err)}); ignored, its tiles are embedded again"
                ) from None
            raise DataFormatError(
                f"-o {path}: exists but cannot be read as HDF5 ({gdal_reason(err)}); choose another -o or delete it"
            ) from None
        if not ours:
            if is_part:
                raise _DamagedPart(f"{path}: not a {EMBEDDINGS_FORMAT} part; ignored and deleted")
            raise DataFormatError(
                f"-o {path}: exists but is not a {EMBEDDINGS_FORMAT} version {EMBEDDINGS_FORMAT_VERSION} file "
                f"(format {fmt!r}, version {version!r}); choose another -o or delete it"
            )
        if sha != self.attrs["checkpoint_sha256"]:
            where = f"{self.parts} holds rows" if is_part else f"-o {path} holds embeddings"
            raise OutputExistsError(
                f"{where} of another checkpoint (sha256 {str(sha)[:12]}..., variant {variant}) than "
                f"{self.attrs['checkpoint']} (sha256 {self.attrs['checkpoint_sha256'][:12]}...); embeddings of "
                "different checkpoints do not mix: choose another -o"
            )
        if paths is None or width != (self.dim,):
            if is_part:
                raise _DamagedPart(f"{path}: incomplete part; ignored, its tiles are embedded again")
            raise DataFormatError(
                f"-o {path}: a damaged {EMBEDDINGS_FORMAT} file (no /path or /embedding); choose another -o"
            )
        return paths

    # writing
    def attrs_for_file(self) -> dict[str, Any]:
        # The checkpoint's folder is where it was found this time, not what it is (the sha256 is).
        return {k: v for k, v in self.attrs.items() if k != "checkpoint"}

    def write_part(self, rows: Rows) -> None:
        """Write ``rows`` as the next complete part file (durably, under a temporary name, then renamed)."""
        import h5py

        if not len(rows):
            return
        crs_bytes = max((len(c.encode("utf-8")) for c in rows.crs), default=1)
        with staging_file(self.parts / f"part-{self._next_part:06d}.h5") as temporary:
            with h5py.File(temporary, "w") as f:
                _create_layout(f, self.attrs_for_file(), len(rows.path), len(rows.failed_path), self.dim, crs_bytes)
                if rows.path:
                    f["embedding"][:] = np.stack(rows.embedding).astype(np.float32)
                    f["path"][:] = rows.path
                    f["modality"][:] = rows.modality
                    f["gsd"][:] = np.asarray(rows.gsd, np.float64)
                    f["bounds"][:] = np.asarray(rows.bounds, np.float64).reshape(-1, 4)
                    f["crs"][:] = _encode_fixed(rows.crs, crs_bytes)
                if rows.failed_path:
                    f["failed_path"][:] = rows.failed_path
                    f["failed_reason"][:] = rows.failed_reason
        self._next_part += 1

    def merge(self) -> int:
        """Merge ``out.h5`` and the parts into a new ``out.h5`` (one row per path, a failure
        only for paths without a row, the latest failure of a path); delete the parts.
        Returns the number of rows."""
        import h5py

        parts = self._part_files()
        if not parts:
            self.remove_parts_folder_if_empty()
            return self.rows_in_output()
        sources = ([self.path] if self.path.exists() else []) + parts
        seen: set[str] = set()
        keep: list[np.ndarray] = []
        failures: dict[str, str] = {}
        crs_bytes = 1
        for source in sources:
            with h5py.File(source, "r") as f:
                paths = f["path"].asstr()[:]
                mask = np.zeros(len(paths), bool)
                for i, p in enumerate(paths):
                    if p not in seen:
                        seen.add(p)
                        mask[i] = True
                keep.append(mask)
                if mask.any():  # our files store fixed-length CRS strings: their width is enough
                    crs_bytes = max(crs_bytes, f["crs"].dtype.itemsize)
                for p, reason in zip(f["failed_path"].asstr()[:], f["failed_reason"].asstr()[:]):
                    failures.pop(p, None)  # the latest failure of a path, in the order found
                    failures[p] = reason
        failures = {p: r for p, r in failures.items() if p not in seen}
        total = int(sum(int(m.sum()) for m in keep))
        # Staged inside the parts folder, so the next run clears what a killed merge leaves (and not
        # with staging_file: its mkstemp would leave out.h5 readable by its owner only).
        temporary = self.parts / "merged.h5.tmp"
        try:
            with h5py.File(temporary, "w") as out:
                _create_layout(out, self.attrs_for_file(), total, len(failures), self.dim, crs_bytes)
                at = 0
                for source, mask in zip(sources, keep):
                    at = _copy_rows(source, mask, out, at, crs_bytes)
                if failures:
                    out["failed_path"][:] = list(failures)
                    out["failed_reason"][:] = list(failures.values())
            replace_atomic(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        for part in parts:
            part.unlink(missing_ok=True)
        self.remove_parts_folder_if_empty()
        return total

    def remove_parts_folder_if_empty(self) -> None:
        try:
            self.parts.rmdir()
        except OSError:
            pass  # not empty (someone's file) or already gone: left as it is

    def rows_in_output(self) -> int:
        import h5py

        if not self.path.exists():
            return 0
        with h5py.File(self.path, "r") as f:
            return int(f["embedding"].shape[0])


def _copy_rows(source: Path, mask: np.ndarray, out: h5py.File, at: int, crs_bytes: int) -> int:
    """Copy the rows of ``source`` selected by ``mask`` to ``out`` from row ``at``; returns the next row."""
    import h5py

    with h5py.File(source, "r") as f:
        for start in range(0, len(mask), _MERGE_CHUNK_ROWS):
            sel = mask[start : start + _MERGE_CHUNK_ROWS]
            n = int(sel.sum())
            if n == 0:
                continue
            stop = start + len(sel)
            out["embedding"][at : at + n] = f["embedding"][start:stop][sel]
            out["path"][at : at + n] = f["path"].asstr()[start:stop][sel]
            out["modality"][at : at + n] = f["modality"].asstr()[start:stop][sel]
            out["gsd"][at : at + n] = f["gsd"][start:stop][sel]
            out["bounds"][at : at + n] = f["bounds"][start:stop][sel]
            out["crs"][at : at + n] = _encode_fixed(list(f["crs"].asstr()[start:stop][sel]), crs_bytes)
            at += n
    return at
