"""An embeddings output and its crash-safe writing: ``out.h5`` or ``out.parquet`` plus the part files of
a running (or killed) run in ``out.<ext>.parts/``, the lock that keeps one run per output, resume
and the final merge (see "Output" in :mod:`salibi.embed`).

Parts are small complete HDF5 files (:mod:`salibi.embed.output.hdf5` layout) named
``part-RUN-RANK-SEQ.h5``: the run number (one more than any part found), the rank that wrote it
and its sequence number, so ranks of one run never collide and parts of earlier runs (any number
of ranks) are merged in the order they were written. Only the coordinating process (rank 0)
checks, locks and merges; other ranks only write parts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salibi.embed.output.embeddings import output_format
from salibi.embed.records import Rows
from salibi.errors import DataFormatError, InputError, OutputExistsError
from salibi.fileio import replace_atomic, staging_file
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDING_SPACES, EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION

__all__ = ["PARTS_SUFFIX", "Done", "EmbeddingStore", "output_attrs"]

PARTS_SUFFIX = ".parts"
_PART_NAME = re.compile(r"^part-(\d{6,})(?:-(\d{4,})-(\d{6,}))?\.h5$")


def output_attrs(
    model: Any,
    checkpoint_folder: Path,
    chip_size_m: float | None,
    stride_m: float | None,
    geometry_crs: str,
    space: str = EMBEDDING_SPACES[0],
) -> dict[str, Any]:
    """The attributes of an output of ``model``; ``checkpoint`` (its folder) is for messages only.
    ``chip_size_m``/``stride_m``: the scene chip grid (None: whole tiles or aligned chips);
    ``geometry_crs``: the CRS GeoParquet footprints are reprojected to (``""``: each row's own);
    ``space``: the embedding space of the rows (:data:`salibi.vocabulary.EMBEDDING_SPACES`)."""
    from salibi import __version__
    from salibi.models.checkpoint import WEIGHTS

    chip = math.nan if chip_size_m is None else float(chip_size_m)
    return {
        "format": EMBEDDINGS_FORMAT,
        "format_version": EMBEDDINGS_FORMAT_VERSION,
        # Embeddings of different weights do not mix: resume checks this.
        "checkpoint_sha256": _sha256(checkpoint_folder / WEIGHTS),
        "variant": model.config.variant,
        "model": json.dumps(model.config.to_dict(), sort_keys=True),
        "chip_size_m": chip,
        "stride_m": chip if stride_m is None else float(stride_m),
        "geometry_crs": geometry_crs,
        "space": space,
        "created_by": f"salibi {__version__}",
        "checkpoint": str(checkpoint_folder),
    }


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Done:
    """What an output and its parts already hold: ``rows`` path -> modalities with a row; ``run``
    the number of this run's parts; ``notes`` about damaged parts that were dropped."""

    rows: dict[str, set[str]] = field(default_factory=dict)
    run: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, keys: list[tuple[str, str]]) -> None:
        for path, modality in keys:
            self.rows.setdefault(path, set()).add(modality)


class _DamagedPart(Exception):
    """A part file that cannot be used (cut short, not ours): its rows are embedded again."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


class EmbeddingStore:
    """``out.h5`` / ``out.parquet`` plus ``out.<ext>.parts/``: checks, the lock, parts and the merge."""

    def __init__(self, path: Path, attrs: dict[str, Any], dim: int) -> None:
        self.path, self.attrs, self.dim = path, attrs, dim
        self.format = output_format(path)
        self.parts = path.with_name(path.name + PARTS_SUFFIX)
        self._lock_fd: int | None = None

    # -- checking and locking ----------------------------------------------------------------------

    def prepare(self) -> Done:
        """Check the output and its parts, lock them, drop leftovers of killed writes; what is done."""
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
        done = Done()
        for output in self.output_files():
            done.add(self._check(output, is_part=False))
        runs = [-1]
        for part in self.part_files():
            try:
                done.add(self._check(part, is_part=True))
            except _DamagedPart as err:
                done.notes.append(str(err))
                part.unlink(missing_ok=True)
                continue
            runs.append(int(_PART_NAME.match(part.name)[1]))  # type: ignore[index]
        done.run = max(runs) + 1
        return done

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

    def output_files(self) -> list[Path]:
        """The existing files of the output (GeoParquet: one per CRS when it holds several)."""
        if self.format == "hdf5":
            return [self.path] if self.path.exists() else []
        from salibi.embed.output.geoparquet import output_files

        return output_files(self.path)

    def part_files(self) -> list[Path]:
        """Complete part files, in the order they were written (run, rank, sequence)."""
        if not self.parts.is_dir():
            return []
        found = [(m, p) for p in self.parts.iterdir() if (m := _PART_NAME.match(p.name))]
        return [p for m, p in sorted(found, key=lambda x: tuple(int(g or 0) for g in x[0].groups()))]

    def _check(self, path: Path, is_part: bool) -> list[tuple[str, str]]:
        """The ``(path, modality)`` rows of an existing output or part, after checking that it may be
        continued: format, checkpoint, embedding width, chip grid, embedding space and footprint CRS."""
        try:
            attrs, keys, found = self._read_keys(path, is_part)
        except (OSError, DataFormatError) as err:
            if is_part:
                raise _DamagedPart(
                    f"{path}: damaged part ({gdal_reason(err)}); ignored, its rows are embedded again"
                ) from None
            raise DataFormatError(
                f"-o {path}: exists but cannot be read ({gdal_reason(err)}); choose another -o or delete it"
            ) from None
        if attrs is None:
            if is_part:
                raise _DamagedPart(f"{path}: not a {EMBEDDINGS_FORMAT} part; ignored and deleted")
            if found is not None:  # someone's other file (an aligned set, ...): never suggest deleting it
                raise DataFormatError(f"-o {path}: not a salibi embeddings file ({found}); choose another -o")
            raise DataFormatError(
                f"-o {path}: exists but is not a {EMBEDDINGS_FORMAT} file this salibi reads (version 1 or 2); "
                "choose another -o or delete it"
            )
        where = f"{self.parts} holds rows" if is_part else f"-o {path} holds embeddings"
        sha = attrs.get("checkpoint_sha256")
        if sha != self.attrs["checkpoint_sha256"]:
            raise OutputExistsError(
                f"{where} of another checkpoint (sha256 {str(sha)[:12]}..., variant {attrs.get('variant')}) than "
                f"{self.attrs['checkpoint']} (sha256 {self.attrs['checkpoint_sha256'][:12]}...); embeddings of "
                "different checkpoints do not mix: choose another -o"
            )
        # absent (version 1) or null (GeoParquet's JSON): no chip grid
        chip, stride = (math.nan if attrs.get(k) is None else float(attrs[k]) for k in ("chip_size_m", "stride_m"))
        if not (_same(chip, self.attrs["chip_size_m"]) and _same(stride, self.attrs["stride_m"])):
            raise OutputExistsError(
                f"{where} of another chip grid ({_grid(chip, stride)}) than this run ("
                f"{_grid(self.attrs['chip_size_m'], self.attrs['stride_m'])}); give the same --chip-size-m and "
                "--stride-m to continue it, or choose another -o"
            )
        space = _text(attrs.get("space", EMBEDDING_SPACES[0]))  # outputs before --space: encoder space
        if space != self.attrs["space"]:
            raise OutputExistsError(
                f"{where} in the {space} space, this run embeds in the {self.attrs['space']} space; rows of two "
                f"spaces do not mix: give --space {space} to continue it, or choose another -o"
            )
        if self.format == "parquet" and attrs.get("geometry_crs", "") != self.attrs["geometry_crs"]:
            raise OutputExistsError(
                f"{where} with footprints on another CRS than this run's --crs; give the same --crs or choose another -o"
            )
        return keys

    def _read_keys(self, path: Path, is_part: bool) -> tuple[dict[str, Any] | None, list[tuple[str, str]], str | None]:
        """``(attributes, rows, None)`` of an embeddings file; ``(None, [], None)`` for one of our
        format this salibi does not read; ``(None, [], what it is)`` for a file of another format."""
        if is_part or self.format == "hdf5":
            from salibi.embed.output.hdf5 import hdf5_keys, header

            attrs, version, shape = header(path)
            kind = attrs.get("format")
            if not isinstance(kind, str) or kind != EMBEDDINGS_FORMAT:
                text = kind.decode(errors="replace") if isinstance(kind, bytes) else str(kind)
                return None, [], "no format attribute" if kind is None else f"format {text!r}"
            if version is None:
                return None, [], None
            if shape is None or shape[1:] != (self.dim,):
                if is_part:
                    raise _DamagedPart(f"{path}: incomplete part; ignored, its rows are embedded again")
                raise DataFormatError(f"-o {path}: embeddings of width {shape}, not {self.dim}; choose another -o")
            return attrs, hdf5_keys(path), None
        from salibi.embed.output.geoparquet import parquet_keys, parquet_meta

        meta = parquet_meta(path)
        if meta is None:
            return None, [], f"no {EMBEDDINGS_FORMAT} metadata"
        return meta, parquet_keys(path), None

    # -- writing -------------------------------------------------------------------------------------

    def attrs_for_file(self) -> dict[str, Any]:
        # The checkpoint's folder is where it was found this time, not what it is (the sha256 is).
        return {k: v for k, v in self.attrs.items() if k != "checkpoint"}

    def write_part(self, rows: Rows, run: int, rank: int, sequence: int) -> None:
        """Write ``rows`` as a complete part file (durably, under a temporary name, then renamed)."""
        from salibi.embed.output.hdf5 import write_hdf5

        if not len(rows):
            return
        with staging_file(self.parts / f"part-{run:06d}-{rank:04d}-{sequence:06d}.h5") as temporary:
            write_hdf5(temporary, self.attrs_for_file(), rows.columns(self.dim), rows.failed, rows.skipped)

    def merge(self) -> int:
        """Merge the output and the parts into a new output (:mod:`~salibi.embed.output.merge`: one row per
        path and modality, the first written; a failure or no-data skip only for paths without a
        row, the latest of each), rename it into place and delete the parts. Returns the number of rows."""
        parts = self.part_files()
        if not parts:
            self.remove_parts_folder_if_empty()
            return self.rows_in_output()
        if self.format == "hdf5":
            total = self._merge_hdf5(parts)
        else:
            total = self._merge_parquet(parts)
        for part in parts:
            part.unlink(missing_ok=True)
        self.remove_parts_folder_if_empty()
        return total

    def _merge_hdf5(self, parts: list[Path]) -> int:
        from salibi.embed.output.merge import merge_hdf5

        # Staged inside the parts folder, so the next run clears what a killed merge leaves (and not
        # with staging_file: its mkstemp would leave out.h5 readable by its owner only).
        temporary = self.parts / "merged.h5.tmp"
        try:
            total = merge_hdf5(self.output_files() + parts, temporary, self.attrs_for_file(), self.dim)
            replace_atomic(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return total

    def _merge_parquet(self, parts: list[Path]) -> int:
        from salibi.embed.output.geoparquet import tagged_path
        from salibi.embed.output.merge import merge_parquet

        existing = self.output_files()
        temporaries: list[Path] = []  # removed if the merge fails

        def staging(k: int) -> Path:
            temporaries.append(self.parts / f"merged-{k}.parquet.tmp")
            return temporaries[-1]

        def target_of(tag: str, files: int) -> Path:
            return self.path if files == 1 else tagged_path(self.path, tag)

        meta = {**self.attrs_for_file(), "output": self.path.name}
        try:
            staged, total = merge_parquet(
                existing, parts, staging, target_of, self.attrs["geometry_crs"], meta, self.dim
            )
            for temporary, target in staged:
                replace_atomic(temporary, target)
        except BaseException:
            for temporary in temporaries:
                temporary.unlink(missing_ok=True)
            raise
        targets = {target for _, target in staged}
        for file in existing:  # files of a layout that changed (one CRS became several)
            if file not in targets:
                file.unlink(missing_ok=True)
        return total

    def remove_parts_folder_if_empty(self) -> None:
        try:
            self.parts.rmdir()
        except OSError:
            pass  # not empty (someone's file) or already gone: left as it is

    def rows_in_output(self) -> int:
        files = self.output_files()
        if self.format == "hdf5":
            import h5py

            if not files:
                return 0
            with h5py.File(files[0], "r") as f:
                return int(f["embedding"].shape[0])
        from salibi.embed.output.geoparquet import parquet_keys

        return sum(len(parquet_keys(f)) for f in files)


def _grid(chip: Any, stride: Any) -> str:
    if isinstance(chip, float) and math.isnan(chip):
        return "whole tiles or aligned chips"
    return f"{chip:g} m chips every {stride:g} m"
