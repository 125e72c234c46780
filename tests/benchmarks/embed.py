"""``salibi embed`` throughput (tiles/s) against a naive loop, in the same process.

    python tests/benchmarks/embed.py [--tiles 48] [--base-tiles 16] [--size 128] [--batch-size 16]
                                     [--device auto] [--models tiny,base] [--repeats 2] [--num-workers 0]

Tiles: ``--tiles`` (``--base-tiles`` for base) crops of ``--size`` px of the shipped Sentinel-2 scene (13 bands, int16,
EPSG:4326), one GeoTIFF each, embedded with the low-res optical encoder (bands B04, B03, B02
picked by name). Models: random ``tiny`` (patch 8) and ``base`` (ViT-B widths, patch 16) with
only the ``lores`` encoder, saved as real checkpoints.

- ``embed``: :func:`salibi.embed.embed_folder` (checkpoint load + sha256, batching of equal
  tiles, only the needed bands read, crash-safe part files, final merge) into a fresh output.
- ``naive``: load the checkpoint, then one tile at a time: open the file, read every band,
  pick the three, normalise, pad, ``model.embed`` on a batch of one; rows kept in memory.

Both include loading the model. Each is run ``--repeats`` times (best time kept) after one
warm-up tile. The two sets of rows are compared, so the speed-up is for equal results. With
CUDA (``--device auto`` on a GPU machine) both use bf16 autocast.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from salibi.embed import embed_folder, find_tiles, read_embeddings  # noqa: E402
from salibi.models import build, load_checkpoint, save_checkpoint  # noqa: E402

SPAIN_S2 = REPO.parent / "shared" / "data" / "sen1floods11" / "Spain_7370579_S2Hand.tif"  # read in place
MEAN, STD = [1300.0, 1200.0, 1100.0], [700.0, 650.0, 600.0]


def make_tiles(folder: Path, count: int, size: int) -> None:
    with rasterio.open(SPAIN_S2) as ds:
        data, profile = ds.read(), ds.profile
        per_row = max(1, (ds.width - size) // 16 + 1)
        for k in range(count):
            r, c = divmod(k, per_row)
            window = Window((c * 16) % (ds.width - size + 1), (r * 16) % (ds.height - size + 1), size, size)
            out_profile = dict(profile, width=size, height=size, transform=ds.window_transform(window))
            with rasterio.open(folder / f"tile_{k:04d}.tif", "w", **out_profile) as out:
                rows = slice(int(window.row_off), int(window.row_off) + size)
                cols = slice(int(window.col_off), int(window.col_off) + size)
                out.write(data[:, rows, cols])
                out.descriptions = ds.descriptions


def make_checkpoint(folder: Path, size: str) -> Path:
    torch.manual_seed(0)
    model = build(size, modalities=("lores",))
    return save_checkpoint(
        model,
        folder,
        bands={"lores": ["B04", "B03", "B02"]},
        gsd={"lores": 10.0},
        mean={"lores": MEAN},
        std={"lores": STD},
    )


def naive(tiles: Path, checkpoint: Path, device: torch.device) -> dict[str, np.ndarray]:
    """One tile at a time, every band read, batch of one."""
    from salibi.embed.tiles import pixel_size_m
    from salibi.rasters import round_significant

    model = load_checkpoint(checkpoint, map_location=device)
    p = model.config.patch_size
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    rows = {}
    for rel, path in find_tiles(tiles):
        with rasterio.open(path) as ds:
            everything = ds.read()  # all 13 bands
            names = list(ds.descriptions)
            gsd = round_significant(pixel_size_m(ds.crs, ds.transform, ds.width, ds.height), 3)
        x = torch.from_numpy(everything[[names.index(b) for b in ("B4", "B3", "B2")]].astype(np.float32))
        x = (x - mean) / std
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (0, -w % p, 0, -h % p))
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            rows[rel] = model.embed(x[None].to(device), modality="lores", gsd=gsd)[0].float().cpu().numpy()
    return rows


def best_of(repeats: int, run) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        if device_is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = run()
        if device_is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    global device_is_cuda
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=48)
    parser.add_argument("--base-tiles", type=int, default=16, help="tiles for base (slow on CPU)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default="tiny,base")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    device_is_cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if device_is_cuda else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device: {name}{' (bf16 autocast)' if device_is_cuda else ''}; tiles of {args.size}x{args.size} px, "
        f"13-band int16 GeoTIFF; batch size {args.batch_size}; best of {args.repeats}"
    )
    with tempfile.TemporaryDirectory(prefix="salibi-embed-bench-") as tmp:
        tmp = Path(tmp)
        for size in args.models.split(","):
            count = args.base_tiles if size == "base" else args.tiles
            tiles = tmp / f"tiles-{count}"
            if not tiles.exists():
                tiles.mkdir()
                make_tiles(tiles, count, args.size)
            checkpoint = make_checkpoint(tmp / f"ckpt-{size}", size)
            naive(tiles, checkpoint, device)  # warm-up: caches, allocator, kernels
            counter = iter(range(10**6))

            def run_embed():
                out = tmp / f"out-{size}-{next(counter)}.h5"
                embed_folder(
                    tiles,
                    checkpoint,
                    out,
                    batch_size=args.batch_size,
                    device=str(device),
                    num_workers=args.num_workers,
                    progress=False,
                )
                return read_embeddings(out)

            t_embed, table = best_of(args.repeats, run_embed)
            t_naive, rows = best_of(args.repeats, lambda: naive(tiles, checkpoint, device))
            diff = max(float(np.abs(table.embedding[table.row_of(rel)] - v).max()) for rel, v in rows.items())
            print(
                f"{size:>5} ({count} tiles): embed {count / t_embed:7.1f} tiles/s ({t_embed:6.2f} s)   naive "
                f"{count / t_naive:7.1f} tiles/s ({t_naive:6.2f} s)   ratio {t_naive / t_embed:5.2f}x   "
                f"max |diff| {diff:.1e}"
            )


device_is_cuda = False

if __name__ == "__main__":
    main()
