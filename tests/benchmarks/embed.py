"""``salibi embed`` throughput and memory against naive loops, in the same process, and where its
wall time goes.

    python tests/benchmarks/embed.py [--mosaic 4] [--chip-size-m 160] [--batch-size 64] [--device auto]
                                     [--model tiny] [--num-workers 0] [--tiles 400] [--repeats 1]
                                     [--skip-tiles] [--skip-scenes]

Scenes: the NAIP 5 m quarter-quad of ../shared/data (934 x 724 px, 4 bands uint8, EPSG:26914) and a
``--mosaic`` x ``--mosaic`` mosaic of it written as one tiled GeoTIFF (4 x 4: 3736 x 2896 px, 270
km2): real pixels, a scene 16 times larger. Chips of ``--chip-size-m`` (160 m: 32 px), bands named
red, green, blue, nir with ``--band-names``; a random checkpoint with only the ``lores`` encoder
(B04, B03, B02).

- ``embed``: :func:`salibi.embed.embed` with ``chip_size_m`` (windowed reads of runs of chips,
  batching, crash-safe part files, final merge) into a fresh ``.h5``.
- ``naive``: load the checkpoint, then for every chip of the same grid: read its window (all
  bands), pick three, normalise, ``model.embed`` on a batch of one, append the row to an HDF5 file.

Both include loading the model and run on the quarter-quad in this process (the mosaic too with
``--naive-on-mosaic``); the rows are compared (max |diff|), so the speed-up is for equal results.
chips/s and km2/s count the chips of the scene. Peak memory: ``embed`` runs once more in a child
process (``GDAL_CACHEMAX=64`` MB) on the quarter-quad and on the mosaic, and its peak resident set
size is read with ``wait4``: a bounded reader keeps the same peak for a 16 times larger scene.

Tiles (``--skip-tiles`` leaves them out): a folder of ``--tiles`` Sentinel-2 tiles of 128 px cut
from Sen1Floods11 (13 bands, geographic CRS; one row each), ``embed`` at ``--batch-size`` against
the naive loop: open, read every band, pick B4, B3, B2 by description, normalise, ``model.embed``
one tile at a time. The rows are compared: embeddings (max |diff|), and paths, bands, GSD and
bounds equal. With ``--repeats N`` both run N times, alternating; the fastest of each is kept.

Beside each ratio, the split of ``embed``'s wall time (:attr:`salibi.embed.EmbedSummary.stages`):
load, plan, read (waiting for pixels the readers had not read yet), model, write (part files),
merge, the rest; and route, the time the reader threads spent routing (it overlaps the rest).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import rasterio
import torch
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

from salibi.embed import embed, read_embeddings  # noqa: E402
from salibi.models import build, load_checkpoint, save_checkpoint  # noqa: E402

SHARED = REPO.parent / "shared" / "data"  # read in place
NAIP = SHARED / "naip_5m" / "m_4709963_se_14_1_20180716.tif"
SPAIN_S2 = SHARED / "sen1floods11" / "Spain_7370579_S2Hand.tif"
MEAN, STD = [1300.0, 1200.0, 1100.0], [700.0, 650.0, 600.0]
NAIP_NAMES = ("red", "green", "blue", "nir")


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


def make_mosaic(path: Path, n: int) -> Path:
    """``n`` x ``n`` copies of the NAIP quarter-quad side by side, one tiled GeoTIFF."""
    with rasterio.open(NAIP) as src:
        data, profile = src.read(), src.profile
        t = src.transform
    height, width = data.shape[1:]
    profile.update(width=width * n, height=height * n, tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    profile.update(photometric="MINISBLACK")  # four plain bands (GDAL would take a 4th uint8 band for alpha)
    profile.update(transform=rasterio.Affine(t.a, 0, t.c, 0, t.e, t.f))
    with rasterio.open(path, "w", **profile) as out:
        for i in range(n):
            for j in range(n):
                out.write(data, window=Window(j * width, i * height, width, height))
    return path


def naive_scene(scene: Path, checkpoint: Path, output: Path, chip_m: float, device: torch.device) -> int:
    """Every chip read, embedded alone and written, one at a time."""
    model = load_checkpoint(checkpoint, map_location=device)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    with rasterio.open(scene) as ds, h5py.File(output, "w") as f:
        gsd = ds.res[0]
        px = int(round(chip_m / gsd))
        rows, cols = ds.height // px, ds.width // px
        dim = model.config.dim
        table = f.create_dataset("embedding", shape=(0, dim), maxshape=(None, dim), dtype="f4")
        paths = f.create_dataset("path", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype())
        for r in range(rows):
            for c in range(cols):
                everything = ds.read(window=Window(c * px, r * px, px, px))  # all bands
                x = (torch.from_numpy(everything[:3].astype(np.float32)) - mean) / std
                with (
                    torch.inference_mode(),
                    torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"),
                ):
                    row = model.embed(x[None].to(device), modality="lores", gsd=gsd)[0].float().cpu().numpy()
                n = table.shape[0]
                table.resize(n + 1, axis=0)
                paths.resize(n + 1, axis=0)
                table[n] = row
                paths[n] = f"{scene.name}#r{r}c{c}"
    return rows * cols


def split(summary) -> str:
    """Where ``embed``'s wall time went (seconds, share of the wall time)."""
    stages = getattr(summary, "stages", None)
    if not stages:
        return "n/a (this salibi records no stages)"
    wall = summary.seconds
    named = ("load", "plan", "read", "model", "write", "merge")
    rest = wall - sum(stages.get(name, 0.0) for name in named)
    shown = [f"{name} {stages.get(name, 0.0):.2f} s ({100 * stages.get(name, 0.0) / wall:.0f} %)" for name in named]
    shown.append(f"rest {rest:.2f} s ({100 * rest / wall:.0f} %)")
    return ", ".join(shown) + f"; route {stages.get('route', 0.0):.3f} s in the readers"


def run_embed(scene: Path, checkpoint: Path, output: Path, args: argparse.Namespace, device: str):
    summary = embed(
        scene,
        checkpoint,
        output,
        chip_size_m=args.chip_size_m,
        band_names=NAIP_NAMES,
        batch_size=args.batch_size,
        device=device,
        num_workers=args.num_workers,
        progress=False,
    )
    return summary


def child(argv: list[str]) -> None:
    """``--child METHOD SCENE CHECKPOINT OUTPUT CHIP_M BATCH DEVICE WORKERS``: one run, for its peak memory."""
    method, scene, checkpoint, output, chip, batch, device, workers = argv
    args = argparse.Namespace(chip_size_m=float(chip), batch_size=int(batch), num_workers=int(workers))
    if method == "embed":
        run_embed(Path(scene), Path(checkpoint), Path(output), args, device)
    else:
        naive_scene(Path(scene), Path(checkpoint), Path(output), float(chip), torch.device(device))


def peak_rss_mib(
    method: str, scene: Path, checkpoint: Path, output: Path, args: argparse.Namespace, device: str
) -> float:
    env = {**os.environ, "GDAL_CACHEMAX": "64", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    command = [sys.executable, __file__, "--child", method, str(scene), str(checkpoint), str(output)]
    command += [str(args.chip_size_m), str(args.batch_size), device, str(args.num_workers)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{method} on {scene.name} failed (status {status})")
    return usage.ru_maxrss / 1024  # KiB on Linux


def timed(run) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def scenes(tmp: Path, args: argparse.Namespace, device: str) -> None:
    checkpoint = make_checkpoint(tmp / "ckpt", args.model)
    large = make_mosaic(tmp / f"naip_mosaic_{args.mosaic}x{args.mosaic}.tif", args.mosaic)
    print(
        f"{args.model} model, batch {args.batch_size}, {args.num_workers} reader workers, chips of {args.chip_size_m:g} m"
    )
    naive_scene(NAIP, checkpoint, tmp / "warm.h5", args.chip_size_m, torch.device(device))  # warm-up
    written = wall = 0.0
    for scene, with_naive in ((NAIP, True), (large, args.naive_on_mosaic)):
        with rasterio.open(scene) as ds:
            px = int(round(args.chip_size_m / ds.res[0]))
            chips = (ds.height // px) * (ds.width // px)
            km2 = chips * (args.chip_size_m / 1000) ** 2
            print(f"scene {scene.name}: {ds.width} x {ds.height} px at 5 m, {chips} chips of {px} px, {km2:.0f} km2")
        output = tmp / f"embed-{scene.stem}.h5"
        t_embed, summary = timed(lambda: run_embed(scene, checkpoint, output, args, device))
        assert summary.embedded == chips, (summary.embedded, chips)
        print(f"  embed: {chips / t_embed:8.1f} chips/s  {km2 / t_embed:7.2f} km2/s  ({t_embed:6.1f} s)")
        print(f"    split: {split(summary)}")
        stages = getattr(summary, "stages", {})
        written += stages.get("write", math.nan) + stages.get("merge", math.nan)
        wall += summary.seconds
        if not with_naive:
            continue
        t_naive, n_naive = timed(
            lambda: naive_scene(scene, checkpoint, tmp / "naive.h5", args.chip_size_m, torch.device(device))
        )
        table = read_embeddings(output)
        with h5py.File(tmp / "naive.h5") as f:
            naive_rows = dict(zip(f["path"].asstr()[:], f["embedding"][:]))
        diff = max(float(np.abs(table.embedding[i] - naive_rows[p]).max()) for i, p in enumerate(table.path))
        print(f"  naive: {chips / t_naive:8.1f} chips/s  {km2 / t_naive:7.2f} km2/s  ({t_naive:6.1f} s)")
        print(f"  ratio (naive time / embed time): {t_naive / t_embed:.2f}x   max |diff| {diff:.1e}")
    print(f"scenes: writing parts and merging {written:.2f} s of {wall:.2f} s of embed ({100 * written / wall:.1f} %)")
    print("peak resident memory (a child process each, GDAL_CACHEMAX=64 MB):")
    small_embed = peak_rss_mib("embed", NAIP, checkpoint, tmp / "peak-embed-small.h5", args, device)
    large_embed = peak_rss_mib("embed", large, checkpoint, tmp / "peak-embed-large.h5", args, device)
    small_naive = peak_rss_mib("naive", NAIP, checkpoint, tmp / "peak-naive-small.h5", args, device)
    print(f"  embed: quarter-quad {small_embed:6.0f} MiB, {args.mosaic}x{args.mosaic} mosaic {large_embed:6.0f} MiB "
          f"({large_embed / small_embed:.2f}x for {args.mosaic**2}x the pixels)")  # fmt: skip
    print(f"  naive: quarter-quad {small_naive:6.0f} MiB")


def make_tile_folder(folder: Path, count: int, size: int) -> None:
    """``count`` tiles of ``size`` px cut from the Sen1Floods11 Sentinel-2 scene (13 named bands)."""
    folder.mkdir()
    with rasterio.open(SPAIN_S2) as ds:
        data, profile = ds.read(), ds.profile
        for k in range(count):
            window = Window((k * 16) % (ds.width - size), (k * 24) % (ds.height - size), size, size)
            rows = slice(int(window.row_off), int(window.row_off) + size)
            cols = slice(int(window.col_off), int(window.col_off) + size)
            with rasterio.open(
                folder / f"tile_{k:04d}.tif",
                "w",
                **dict(profile, width=size, height=size, transform=ds.window_transform(window)),
            ) as out:
                out.write(data[:, rows, cols])
                out.descriptions = ds.descriptions


def naive_tiles(folder: Path, checkpoint: Path, device: str) -> dict[str, tuple]:
    """Every tile opened, read whole, its bands picked by description, embedded alone: path ->
    (embedding, bands, gsd, bounds)."""
    from salibi.embed import find_tiles
    from salibi.rasters import pixel_size_m, round_significant

    model = load_checkpoint(checkpoint, map_location=device)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    out = {}
    for rel, path in find_tiles(folder):
        with rasterio.open(path) as ds:
            everything, names = ds.read(), list(ds.descriptions)
            gsd = round_significant(pixel_size_m(ds.crs, ds.transform, ds.width, ds.height), 3)
            bounds = tuple(ds.bounds)
        picked = ("B4", "B3", "B2")
        x = (torch.from_numpy(everything[[names.index(b) for b in picked]].astype(np.float32)) - mean) / std
        with torch.inference_mode():
            row = model.embed(x[None].to(device), modality="lores", gsd=gsd)[0].float().cpu().numpy()
        out[rel] = (row, ",".join(picked), gsd, bounds)
    return out


def tiles(tmp: Path, args: argparse.Namespace, device: str) -> None:
    """A folder of Sentinel-2 tiles, one row each, against one tile at a time (every band read)."""
    size = 128
    folder = tmp / "tiles"
    make_tile_folder(folder, args.tiles, size)
    checkpoint = make_checkpoint(tmp / "ckpt-tiles", args.model)
    naive_tiles(folder, checkpoint, device)  # warm-up: the files in the page cache, torch's kernels
    t_embed = t_naive = math.inf
    for k in range(args.repeats):
        output = tmp / f"tiles-{k}.h5"
        seconds, summary = timed(
            lambda: embed(
                folder,
                checkpoint,
                output,
                batch_size=args.batch_size,
                device=device,
                num_workers=args.num_workers,
                progress=False,
            )
        )
        if seconds < t_embed:
            t_embed, best = seconds, summary
        naive_seconds, rows = timed(lambda: naive_tiles(folder, checkpoint, device))
        t_naive = min(t_naive, naive_seconds)
        print(
            f"  run {k + 1}: embed {args.tiles / seconds:.1f} tiles/s, naive {args.tiles / naive_seconds:.1f} tiles/s, "
            f"ratio {naive_seconds / seconds:.2f}x"
        )
    table = read_embeddings(best.output)
    assert sorted(table.path) == sorted(rows), "embed and the naive loop made other rows"
    diff = 0.0
    for rel, (row, bands, gsd, bounds) in rows.items():
        i = table.row_of(rel)
        diff = max(diff, float(np.abs(table.embedding[i] - row).max()))
        assert table.bands[i] == bands and table.gsd[i] == gsd, (rel, table.bands[i], table.gsd[i], bands, gsd)
        assert np.allclose(table.bounds[i], bounds, rtol=0, atol=1e-12), (rel, table.bounds[i], bounds)
    print(
        f"tiles: {args.tiles} Sentinel-2 tiles of {size} px, batch {args.batch_size}, {args.num_workers} reader "
        f"processes: embed {args.tiles / t_embed:.1f} tiles/s, naive {args.tiles / t_naive:.1f} tiles/s, "
        f"ratio {t_naive / t_embed:.2f}x (fastest of {args.repeats}), max |diff| {diff:.1e}, "
        "paths, bands, GSD and bounds equal"
    )
    print(f"  split: {split(best)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mosaic", type=int, default=4)
    parser.add_argument("--chip-size-m", type=float, default=160.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--tiles", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=1, help="tiles: embed and the naive loop N times each")
    parser.add_argument("--skip-tiles", action="store_true")
    parser.add_argument("--skip-scenes", action="store_true")
    parser.add_argument("--naive-on-mosaic", action="store_true", help="also time the naive loop on the mosaic (slow)")
    args = parser.parse_args()
    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {where}" + (" (bf16 autocast)" if device == "cuda" else ""))
    with tempfile.TemporaryDirectory(prefix="salibi-embed-bench-") as tmp:
        if not args.skip_scenes:
            scenes(Path(tmp), args, device)
        if not args.skip_tiles:
            tiles(Path(tmp), args, device)


if __name__ == "__main__":
    main()
