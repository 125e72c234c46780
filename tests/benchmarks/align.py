"""``salibi align`` against a straightforward per-tile pipeline, whole process each.

    python tests/benchmarks/align.py [--tile-size-m 240] [--repeats 3]

Scene: the Sen1Floods11 sample (Sentinel-2, 13 bands, and Sentinel-1 VV/VH, EPSG:4326,
512 x 512 px) brought to UTM at 10 m, cut into chips of ``--tile-size-m`` (240 m: 357 chips
of 24 x 24 px). Both pipelines run as their own process (interpreter start, imports, reading,
writing the HDF5 file of the same layout), one after the other on this machine:

- ``salibi align`` (the command, as users run it);
- the baseline: for every chip and every band, one ``rasterio.warp.reproject`` straight from
  the source file onto the chip's pixel grid (average resampling, like salibi for a coarser
  target), validity and statistics with numpy, samples appended to the same HDF5 layout.

Prints each best-of time, chips/s, the speed-up (target >= 5x) and how closely the two
outputs agree (same chips, pixel differences).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCENE = REPO.parent / "shared" / "data" / "sen1floods11" / "Spain_7370579_"  # read in place, never copied
S2, S1 = SCENE.parent / f"{SCENE.name}S2Hand.tif", SCENE.parent / f"{SCENE.name}S1Hand.tif"
GSD = 10.0
MAX_NODATA = 0.05
SALIBI = str(Path(sys.executable).with_name("salibi"))


def baseline(output: Path, tile: float) -> None:
    """The straightforward pipeline: one GDAL warp per chip and band."""
    import h5py
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.warp import reproject, transform_bounds

    sources = {"lores": rasterio.open(S2), "sar": rasterio.open(S1)}
    west, south, east, north = sources["lores"].bounds
    zone = int((((west + east) / 2) + 180) // 6) + 1
    crs = CRS.from_epsg((32600 if (south + north) / 2 >= 0 else 32700) + zone)
    boxes = [transform_bounds(s.crs, crs, *s.bounds, densify_pts=21) for s in sources.values()]
    x0, y0 = max(b[0] for b in boxes), max(b[1] for b in boxes)
    x1, y1 = min(b[2] for b in boxes), min(b[3] for b in boxes)
    left, top = math.ceil(x0 / GSD) * GSD, math.floor(y1 / GSD) * GSD
    cols, rows = int((x1 - left) // tile), int((top - y0) // tile)
    size = int(round(tile / GSD))

    with h5py.File(output, "w") as f:
        f.attrs.update(format="salibi-aligned", format_version=1, crs=crs.to_wkt(), tile_size_m=tile)
        bounds_ds = f.create_dataset("bounds", (0, 4), maxshape=(None, 4), dtype="f8")
        data = {
            m: f.create_group(m).create_dataset(
                "data",
                (0, s.count, size, size),
                maxshape=(None, s.count, size, size),
                dtype="f4",
                chunks=(1, s.count, size, size),
            )
            for m, s in sources.items()
        }
        kept_bounds = []
        for r in range(rows):
            for c in range(cols):
                cx0, cy1 = left + c * tile, top - r * tile
                transform = Affine(GSD, 0, cx0, 0, -GSD, cy1)
                chips, ok = {}, True
                for m, src in sources.items():
                    chip = np.full((src.count, size, size), np.nan, np.float32)
                    for b in range(src.count):
                        reproject(
                            rasterio.band(src, b + 1),
                            chip[b],
                            dst_transform=transform,
                            dst_crs=crs,
                            src_nodata=src.nodata,
                            dst_nodata=np.nan,
                            resampling=Resampling.average,
                        )
                    invalid = np.isnan(chip).any(axis=0)
                    chip[:, invalid] = np.nan
                    ok &= bool(invalid.mean() <= MAX_NODATA)
                    chips[m] = chip
                if not ok:
                    continue
                n = len(kept_bounds)
                for m, chip in chips.items():
                    data[m].resize(n + 1, axis=0)
                    data[m][n] = chip
                kept_bounds.append((cx0, cy1 - tile, cx0 + tile, cy1))
        bounds_ds.resize(len(kept_bounds), axis=0)
        bounds_ds[:] = np.asarray(kept_bounds)
        f.create_dataset("split", data=np.zeros(len(kept_bounds), np.uint8))  # all train: no split logic
        for m, ds in data.items():
            values = ds[:]
            f[m].create_dataset("mean", data=np.nanmean(values, axis=(0, 2, 3)).astype(np.float32))
            f[m].create_dataset("std", data=np.nanstd(values, axis=(0, 2, 3)).astype(np.float32))
            f[m].attrs.update(
                gsd=GSD, bands=[str(i) for i in range(values.shape[1])], sources=[sources[m].name], nodata=np.nan
            )


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def compare(ours: Path, theirs: Path) -> str:
    import h5py

    with h5py.File(ours) as a, h5py.File(theirs) as b:
        ba, bb = a["bounds"][:], b["bounds"][:]
        index_b = {tuple(np.round(row, 3)): i for i, row in enumerate(bb)}
        pairs = [
            (i, index_b[tuple(np.round(row, 3))]) for i, row in enumerate(ba) if tuple(np.round(row, 3)) in index_b
        ]
        rel = []
        for m in ("lores", "sar"):
            for i, j in pairs[:: max(1, len(pairs) // 40)]:
                x, y = a[m]["data"][i], b[m]["data"][j]
                both = ~np.isnan(x) & ~np.isnan(y)
                rel.append(np.abs(x[both] - y[both]).mean() / max(np.abs(y[both]).mean(), 1e-6))
        return (
            f"chips: salibi {len(ba)}, baseline {len(bb)}, common {len(pairs)}; "
            f"mean relative pixel difference on common chips {np.mean(rel):.2%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile-size-m", type=float, default=240.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-output", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.baseline_output:
        baseline(args.baseline_output, args.tile_size_m)
        return

    tile = args.tile_size_m
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "salibi.h5", Path(tmp) / "baseline.h5"
        salibi_cmd = [
            SALIBI,
            "align",
            "--lores",
            str(S2),
            "--sar",
            str(S1),
            "--gsd",
            "lores=10",
            "--gsd",
            "sar=10",
            "--tile-size-m",
            f"{tile:g}",
            "--max-nodata",
            str(MAX_NODATA),
            "-o",
            str(ours),
            "--overwrite",
        ]
        baseline_cmd = [sys.executable, __file__, "--tile-size-m", f"{tile:g}", "--baseline-output", str(theirs)]
        t_salibi = min(timed(salibi_cmd) for _ in range(args.repeats))
        t_base = min(timed(baseline_cmd) for _ in range(max(1, args.repeats - 1)))

        import h5py

        with h5py.File(ours) as f:
            grid = int(round(f.attrs["footprint"][2] - f.attrs["footprint"][0]) // tile) * int(
                round(f.attrs["footprint"][3] - f.attrs["footprint"][1]) // tile
            )
        print(
            f"scene: Sen1Floods11 S2 (13 bands) + S1 (2 bands), EPSG:4326 -> UTM, {tile:g} m chips at {GSD:g} m "
            f"(about {grid} chips in the grid)"
        )
        print(f"salibi align        {t_salibi:7.2f} s   {grid / t_salibi:8.0f} chips/s   (whole process)")
        print(f"per-tile reproject  {t_base:7.2f} s   {grid / t_base:8.0f} chips/s   (whole process)")
        print(f"speed-up            {t_base / t_salibi:7.1f}x   (target >= 5x)")
        print(compare(ours, theirs))


if __name__ == "__main__":
    main()
