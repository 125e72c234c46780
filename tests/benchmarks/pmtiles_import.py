"""The paper's released tile archives: salibi's imported set against the authors' way of reading
them, in the same process; and index start-up on a 100 000-tile archive.

    python tests/benchmarks/pmtiles_import.py [--copies 5] [--batch-size 16] [--num-workers 2]
                                              [--batches 30] [--repeats 3] [--index-tiles 100000]

Archives: the three of tests/align/pmtiles_archives.py (real Sen1Floods11 S1/S2 and placed NAIP
pixels in the released format, zoom 15, hires children at 16), their tiles repeated at
``--copies`` x ``--copies`` places side by side (the same images at other tile ids, each copy made
distinct by 8 bytes after the image's end: a larger set with the same decoding work per chip).

- ``salibi``: ``salibi align`` (:func:`salibi.align.pmtiles.import_archives`) once, then
  :class:`salibi.data.AlignedDataset` (normalised, per-chip GSD) in a ``DataLoader``.
- ``authors``: the authors' loader as the issue describes it: every tile's bytes of every archive
  read first (the ``pmtiles`` package's reader), then per sample each tile opened with PIL
  (``Image.open``, RGBA), the four hires children stitched, scaled to [0, 1], in the same
  ``DataLoader`` settings.

samples/s over ``--batches`` batches (after one warm-up batch), ``--repeats`` times alternating;
the median and the range are printed, with their ratio. Start-up: the time from nothing to a
dataset that can return sample 0 (the authors': reading every tile; salibi: opening the set), and
on a synthetic ``--index-tiles`` archive (distinct small tiles, written by the ``pmtiles``
package) salibi's index (header, root and leaf directories, every tile's offset) against the
package's traversal that reads every tile's bytes.
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "align"))

import pmtiles_archives  # noqa: E402

from salibi.align.pmtiles import import_archives  # noqa: E402
from salibi.align.pmtiles.archive import Archive  # noqa: E402
from salibi.align.pmtiles.sources import LocalSource  # noqa: E402
from salibi.data import AlignedDataset  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def repeated(archive: Path, out: Path, copies: int, span: int) -> Path:
    """``archive``'s tiles repeated ``copies`` x ``copies`` times, ``span`` tiles of its zoom apart."""
    from pmtiles.reader import MmapSource, all_tiles

    with archive.open("rb") as f:
        tiles = dict(all_tiles(MmapSource(f)))
    zoom = min(z for z, _, _ in tiles)
    placed = {}
    for (z, x, y), data in tiles.items():
        scale = 2 ** (z - zoom)
        for i in range(copies):
            for j in range(copies):
                # 8 bytes after the image's end keep the copies apart (the writer stores equal tiles once);
                # decoders stop at the end of the image.
                placed[z, x + i * span * scale, y + j * span * scale] = data + struct.pack("<Q", len(placed))
    return pmtiles_archives.write_archive(out, placed)


class AuthorsStyle(Dataset):
    """Every tile's bytes read first; per sample, PIL per tile, hires children stitched, / 255."""

    def __init__(self, archives: dict[str, Path], zoom: int) -> None:
        from pmtiles.reader import MmapSource, all_tiles

        self.tiles: dict[str, dict[tuple[int, int, int], bytes]] = {}
        for m, path in archives.items():
            with path.open("rb") as f:
                self.tiles[m] = {zxy: bytes(data) for zxy, data in all_tiles(MmapSource(f))}
        common = set.intersection(*({k for k in t if k[0] == zoom} for t in self.tiles.values()))
        self.keys = sorted(
            (z, x, y)
            for z, x, y in common
            if all((z + 1, 2 * x + dx, 2 * y + dy) in self.tiles["hires"] for dx in (0, 1) for dy in (0, 1))
        )

    def __len__(self) -> int:
        return len(self.keys)

    def _image(self, m: str, zxy: tuple[int, int, int]) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.tiles[m][zxy])).convert("RGBA"))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        z, x, y = self.keys[i]
        sar = self._image("sar", (z, x, y))[..., 1:3]
        lores = self._image("lores", (z, x, y))[..., :3]
        quads = [[self._image("hires", (z + 1, 2 * x + dx, 2 * y + dy))[..., :3] for dx in (0, 1)] for dy in (0, 1)]
        hires = np.concatenate([np.concatenate(row, axis=1) for row in quads], axis=0)
        return {
            m: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0))).float() / 255
            for m, a in (("sar", sar), ("lores", lores), ("hires", hires))
        }


def samples_per_second(dataset: Dataset, args: argparse.Namespace) -> float:
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers, drop_last=True,
        persistent_workers=False, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    batches = iter(loader)
    next(batches)  # warm-up: workers started, first files opened
    started, seen = time.perf_counter(), 0
    for _ in range(args.batches):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        seen += batch["lores"].shape[0]
    return seen / (time.perf_counter() - started)


def interval(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def index_startup(tmp: Path, count: int) -> tuple[float, float, int]:
    """(salibi's index seconds, the package's traversal seconds, tiles) on a synthetic archive."""
    from pmtiles.reader import MmapSource, all_tiles
    from pmtiles.tile import zxy_to_tileid

    side = int(np.ceil(np.sqrt(count)))
    tiles = {}
    for k in range(count):
        x, y = 8000 + k % side, 8000 + k // side
        tiles[15, x, y] = f"tile {zxy_to_tileid(15, x, y)}".encode()
    path = pmtiles_archives.write_archive(tmp / "index.pmtile", tiles)
    started = time.perf_counter()
    archive = Archive(LocalSource(path, "--lores"))
    index = archive.index(15)
    ours = time.perf_counter() - started
    assert len(index.ids) == count
    started = time.perf_counter()
    with path.open("rb") as f:
        theirs_count = sum(1 for _ in all_tiles(MmapSource(f)))
    theirs = time.perf_counter() - started
    assert theirs_count == count
    return ours, theirs, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--index-tiles", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="salibi-bench-pmtiles-") as folder:
        tmp = Path(folder)
        base = pmtiles_archives.build(SHARED, tmp)
        span = len(base.xs) + 1
        archives = {m: repeated(getattr(base, m), tmp / f"big_{m}.pmtile", args.copies, span)
                    for m in ("sar", "lores", "hires")}  # fmt: skip
        started = time.perf_counter()
        summary = import_archives(**archives, output=tmp / "set.h5", max_nodata=0.3, val_fraction=0.0, progress=False)
        import_s = time.perf_counter() - started
        tile_bytes = sum(p.stat().st_size for p in archives.values())
        print(f"archives: {', '.join(f'{m} {p.stat().st_size / 1e6:.1f} MB' for m, p in archives.items())}; "
              f"{summary.chips_kept} chips")  # fmt: skip
        print(f"import: {summary.chips_in_every_archive} chips in {import_s:.1f} s "
              f"({summary.chips_in_every_archive / import_s:.1f} chips/s); set {summary.file_bytes / 1e6:.1f} MB = "
              f"{summary.size_ratio:.2f}x the tiles it holds ({tile_bytes / 1e6:.1f} MB of archives)")  # fmt: skip

        started = time.perf_counter()
        ours = AlignedDataset(summary.path)
        ours[0]
        ours_start = time.perf_counter() - started
        started = time.perf_counter()
        theirs = AuthorsStyle(archives, pmtiles_archives.ZOOM)
        theirs[0]
        theirs_start = time.perf_counter() - started
        assert len(theirs) >= len(ours) > 0, (len(theirs), len(ours))
        held = sum(len(b) for tiles in theirs.tiles.values() for b in tiles.values())
        print(f"start-up to sample 0: salibi {ours_start:.3f} s, authors' way {theirs_start:.3f} s "
              f"({theirs_start / ours_start:.1f}x; {len(theirs)} samples; it reads every tile's bytes first and holds "
              f"them, {held / 1e6:.1f} MB, in every process: at its rate here, {theirs_start * 4.3e9 / held:.0f} s and "
              f"4.3 GB for the Small set; salibi reads the set's metadata and 16 bytes per tile)")  # fmt: skip

        rates: dict[str, list[float]] = {"salibi": [], "authors": []}
        for _ in range(args.repeats):
            rates["salibi"].append(samples_per_second(ours, args))
            rates["authors"].append(samples_per_second(theirs, args))
        ratio = [a / b for a, b in zip(rates["salibi"], rates["authors"])]
        print(f"DataLoader, batch {args.batch_size}, {args.num_workers} workers, {args.batches} batches x "
              f"{args.repeats}: salibi {interval(rates['salibi'])} samples/s, authors' way "
              f"{interval(rates['authors'])} samples/s; ratio {interval(ratio)} (median [min, max])")  # fmt: skip

        ours_index, theirs_index, count = index_startup(tmp, args.index_tiles)
        print(f"index of a {count}-tile archive: salibi {ours_index:.3f} s, the pmtiles package's traversal "
              f"reading every tile {theirs_index:.2f} s ({theirs_index / ours_index:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
