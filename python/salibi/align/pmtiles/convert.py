"""Reading the planned chips' tiles, checking and measuring them, part by resumable part.

The chips (in tile-id order, so each archive is read front to back) are cut into parts of
:func:`part_size` chips. For each part, every archive's tiles are fetched in few large reads
(neighbouring tiles' byte ranges merged, :func:`merged_spans`) while the previous part is decoded;
each chip is decoded by a pool of threads (:func:`salibi.data.web_tiles.decode_chip`: signature,
size, bomb checks), its invalid fraction and SAR saturation counted and its valid pixels summed
for the band statistics. A finished part -- the kept chips' encoded tiles as they came, and the
per-chip numbers -- is written as a small HDF5 file in the work folder beside the output
(``.NAME.import/part-000000.h5``, through :func:`salibi.fileio.staging_hdf5`: whole or absent).

A killed import leaves its finished parts; the same command finds them (the work folder's
``plan.json`` must describe the same archives, by size and a hash of their header and root
directory, and the same options) and goes on from the first missing part. A work folder of another
plan is replaced; one held by a running import (a lock) is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.align.pmtiles.archive import MAX_TILE_BYTES, Archive
from salibi.align.pmtiles.import_plan import ChipPlan
from salibi.data.web_tiles import ChipLayout, decode_chip
from salibi.errors import DataFormatError, InputError
from salibi.fileio import staging_hdf5, write_json
from salibi.progress import RateProgress

#: Bytes of one merged read.
MAX_SPAN_BYTES = 16 * 2**20
#: Gap between two tiles' bytes that is read through rather than split into two reads.
MAX_GAP_BYTES = 256 * 2**10
PLAN_FILE = "plan.json"

__all__ = ["ChipNumbers", "work_folder", "convert_parts", "part_size", "read_parts"]


def part_size(chips: int) -> int:
    """Chips per part: about 64 parts, between 8 and 256 chips each (at most ~60 MB of tiles)."""
    return int(min(256, max(8, -(-chips // 64))))


def work_folder(output: Path) -> Path:
    """Where an import into ``output`` keeps its finished parts."""
    return output.parent / f".{output.name}.import"


def archive_identity(archive: Archive) -> dict[str, Any]:
    """What tells one archive from another whatever its URL: size and a hash of header and root directory."""
    h = archive.header
    digest = hashlib.sha256(archive.read(0, h.root_offset + h.root_length, "the root directory")).hexdigest()
    return {"size": archive.source.size, "sha256_head": digest}


@contextmanager
def locked(folder: Path, output: Path) -> Iterator[None]:
    """Hold the work folder's lock (one import per output at a time)."""
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"-o {output}: another salibi align is importing into it now (work folder {folder.name}); wait for it"
            ) from None
        yield
    finally:
        os.close(fd)


def prepare(folder: Path, plan_document: dict[str, Any]) -> list[int]:
    """Keep the finished parts of a work folder of the same plan (their numbers); start it anew otherwise."""
    path = folder / PLAN_FILE
    try:
        same = json.loads(path.read_text()) == plan_document
    except (OSError, ValueError):
        same = False
    if not same:
        for entry in folder.iterdir():
            if entry.name != "lock":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        write_json(path, plan_document)
        return []
    return sorted(int(p.stem.split("-")[1]) for p in folder.glob("part-*.h5") if p.stem.split("-")[1].isdigit())


@dataclass
class ChipNumbers:
    """What one part (or all parts together) measured, per chip (see :func:`convert_parts`)."""

    kept: np.ndarray  # (n,) bool: no modality over max_nodata
    invalid: dict[str, np.ndarray]  # modality -> (n,) float32 invalid fraction
    count: dict[str, np.ndarray]  # modality -> (n,) float64 valid pixels
    sums: dict[str, np.ndarray]  # modality -> (n, C) float64 sums of valid values
    squares: dict[str, np.ndarray]  # modality -> (n, C) float64 sums of squares
    saturated: np.ndarray  # (n,) int64 SAR values that had wrapped to 0


def merged_spans(offsets: np.ndarray, lengths: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """Reads covering tiles ``offsets``/``lengths`` (flat arrays): (start, length, the tiles in it)."""
    order = np.argsort(offsets, kind="stable")
    spans: list[tuple[int, int, np.ndarray]] = []
    start = end = -1
    members: list[int] = []
    for i in order:
        o, n = int(offsets[i]), int(lengths[i])
        if members and o - end <= MAX_GAP_BYTES and max(end, o + n) - start <= MAX_SPAN_BYTES:
            end = max(end, o + n)
            members.append(int(i))
            continue
        if members:
            spans.append((start, end - start, np.asarray(members)))
        start, end, members = o, o + n, [int(i)]
    if members:
        spans.append((start, end - start, np.asarray(members)))
    return spans


def fetch_tiles(archive: Archive, offsets: np.ndarray, lengths: np.ndarray, pool: ThreadPoolExecutor) -> list[bytes]:
    """The bytes of every tile (flat arrays), read in merged spans on ``pool``."""
    too_big = np.flatnonzero(lengths > MAX_TILE_BYTES)
    if len(too_big):
        raise DataFormatError(
            f"{archive.name}: a tile of {int(lengths[too_big[0]])} bytes at byte {int(offsets[too_big[0]])}, more "
            "than a 256 x 256 px tile can need; the archive is damaged"
        )
    spans = merged_spans(offsets, lengths)
    reads = [pool.submit(archive.read, start, length, "tile data") for start, length, _ in spans]
    tiles: list[bytes] = [b""] * len(offsets)
    for (start, _, members), read in zip(spans, reads):
        data = read.result()
        for i in members:
            o = int(offsets[i]) - start
            tiles[i] = data[o : o + int(lengths[i])]
    return tiles


def convert_parts(
    plan: ChipPlan,
    archives: Mapping[str, Archive],
    layouts: Mapping[str, ChipLayout],
    folder: Path,
    done: list[int],
    max_nodata: float,
    workers: int,
    progress: bool,
) -> None:
    """Write every part of ``plan`` not in ``done`` into ``folder``."""
    size = part_size(len(plan.ids))
    parts = -(-len(plan.ids) // size)
    todo = [k for k in range(parts) if k not in set(done)]
    completed = len(plan.ids) - sum(min(size, len(plan.ids) - k * size) for k in todo)
    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="salibi-import") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="salibi-fetch") as fetcher,
        RateProgress("importing", "chips", len(plan.ids), progress, transient=True, completed=completed) as bar,
    ):

        def fetch(k: int) -> dict[str, list[bytes]]:
            rows = slice(k * size, (k + 1) * size)
            return {
                m: fetch_tiles(a, plan.offsets[m][rows].reshape(-1), plan.lengths[m][rows].reshape(-1), pool)
                for m, a in archives.items()
            }

        upcoming: Future | None = fetcher.submit(fetch, todo[0]) if todo else None
        for i, k in enumerate(todo):
            assert upcoming is not None
            tiles = upcoming.result()
            upcoming = fetcher.submit(fetch, todo[i + 1]) if i + 1 < len(todo) else None
            chips = min(size, len(plan.ids) - k * size)
            names = {m: a.name for m, a in archives.items()}
            numbers = _measure(plan, k * size, chips, tiles, layouts, names, max_nodata, pool)
            _write_part(folder / f"part-{k:06d}.h5", numbers, tiles, layouts)
            bar.advance(chips)


def _measure(
    plan: ChipPlan,
    first: int,
    chips: int,
    tiles: dict[str, list[bytes]],
    layouts: Mapping[str, ChipLayout],
    archive_names: Mapping[str, str],
    max_nodata: float,
    pool: ThreadPoolExecutor,
) -> ChipNumbers:
    def one(j: int) -> dict[str, tuple[float, float, np.ndarray, np.ndarray, int]]:
        z, x, y = plan.zoom, int(plan.x[first + j]), int(plan.y[first + j])
        out = {}
        for m, layout in layouts.items():
            t, side = layout.tiles, layout.side
            if side == 1:
                names = [f"{archive_names[m]}: tile {z}/{x}/{y}"]
            else:  # the children of zoom z + 1, row-major
                names = [f"{archive_names[m]}: tile {z + 1}/{2 * x + k % 2}/{2 * y + k // 2}" for k in range(t)]
            bands, valid, saturated = decode_chip(tiles[m][j * t : (j + 1) * t], layout, names[0], names)
            values = bands.reshape(bands.shape[0], -1)[:, valid.reshape(-1)].astype(np.float64)
            out[m] = (1.0 - valid.mean(), float(valid.sum()), values.sum(axis=1), (values**2).sum(axis=1), saturated)
        return out

    measured = list(pool.map(one, range(chips)))
    names = list(layouts)
    invalid = {m: np.array([r[m][0] for r in measured], np.float32) for m in names}
    return ChipNumbers(
        kept=np.all([invalid[m] <= max_nodata for m in names], axis=0),
        invalid=invalid,
        count={m: np.array([r[m][1] for r in measured]) for m in names},
        sums={m: np.stack([r[m][2] for r in measured]) for m in names},
        squares={m: np.stack([r[m][3] for r in measured]) for m in names},
        saturated=np.array([sum(r[m][4] for m in names) for r in measured], np.int64),
    )


def _write_part(
    path: Path, numbers: ChipNumbers, tiles: dict[str, list[bytes]], layouts: Mapping[str, ChipLayout]
) -> None:
    with staging_hdf5(path) as staged:
        f = staged.file
        f.create_dataset("kept", data=numbers.kept)
        f.create_dataset("saturated", data=numbers.saturated)
        for m, layout in layouts.items():
            group = f.create_group(m)
            t = layout.tiles
            kept_tiles = [tiles[m][j * t + i] for j in np.flatnonzero(numbers.kept) for i in range(t)]
            lengths = np.array([len(b) for b in kept_tiles], np.uint64).reshape(-1, t)
            group.create_dataset("tile_bytes", data=np.frombuffer(b"".join(kept_tiles), np.uint8))
            group.create_dataset("tile_lengths", data=lengths)
            for name in ("invalid", "count", "sums", "squares"):
                group.create_dataset(name, data=getattr(numbers, name)[m])
        staged.check()


def read_parts(folder: Path, chips: int, modalities: list[str]) -> ChipNumbers:
    """The per-chip numbers of every part, concatenated (tiles stay in the parts)."""
    import h5py

    size = part_size(chips)
    parts: list[ChipNumbers] = []
    for k in range(-(-chips // size)):
        with h5py.File(folder / f"part-{k:06d}.h5", "r") as f:
            parts.append(
                ChipNumbers(
                    kept=f["kept"][:],
                    invalid={m: f[m]["invalid"][:] for m in modalities},
                    count={m: f[m]["count"][:] for m in modalities},
                    sums={m: f[m]["sums"][:] for m in modalities},
                    squares={m: f[m]["squares"][:] for m in modalities},
                    saturated=f["saturated"][:],
                )
            )
    return ChipNumbers(
        kept=np.concatenate([p.kept for p in parts]),
        invalid={m: np.concatenate([p.invalid[m] for p in parts]) for m in modalities},
        count={m: np.concatenate([p.count[m] for p in parts]) for m in modalities},
        sums={m: np.concatenate([p.sums[m] for p in parts]) for m in modalities},
        squares={m: np.concatenate([p.squares[m] for p in parts]) for m in modalities},
        saturated=np.concatenate([p.saturated for p in parts]),
    )
