"""``salibi demo``: the whole journey on the real sample data shipped in ``data/samples``.

1. ``align``: Sentinel-1 VV/VH and Sentinel-2 (B4, B3, B2, B8) of the Sen1Floods11 scene
   (geographic EPSG:4326, brought to UTM) into 320 m chips at 10 m -> ``DIR/aligned.h5``;
2. ``pretrain``: the tiny model for ``steps`` steps on the CPU -> ``DIR/run/``;
3. ``embed``: tiles cut from the Sentinel-1, Sentinel-2 and NAIP (5 m) samples ->
   ``DIR/embeddings.h5`` (one encoder for two GSDs and two sensors);
4. ``eval geobench``: the Sen1Floods11 water tasks in GEO-Bench's layout
   (``DIR/geobench/``), kNN, linear probe and segmentation head -> ``DIR/eval.json``.

The evaluation scene is the pretraining scene (the labels are never seen in pretraining):
the demo shows that every step works on real data, it is not a benchmark.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salibi.errors import MissingInputError

#: ``data/samples`` of a source checkout (the demo needs the repository's sample data).
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
TILE_PX = 128


@dataclass
class DemoSummary:
    out: Path
    aligned: Any = None
    first_loss: float | None = None
    last_loss: float | None = None
    steps: int = 0
    checkpoint: str | None = None
    embedded: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _require(path: Path) -> Path:
    if not path.exists():
        raise MissingInputError(
            f"{path}: sample data not found; the demo runs from a source checkout of salibi "
            "(it needs data/samples), or pass --samples DIR"
        )
    return path


def write_demo_tiles(samples: Path, out: Path) -> int:
    """Cut the Sentinel-1, Sentinel-2 and NAIP samples into ``TILE_PX`` GeoTIFF tiles (band
    descriptions kept) under ``out``; returns how many were written."""
    import rasterio
    from rasterio.windows import Window

    sources = {
        "s1": samples / "sen1floods11" / "Spain_7370579_S1Hand.tif",
        "s2": samples / "sen1floods11" / "Spain_7370579_S2Hand.tif",
        "naip": samples / "naip_5m" / "m_4709963_se_14_1_20180716.tif",
    }
    # The NAIP file does not name its bands; they are red, green, blue, near-infrared.
    naming = {"naip": ("red", "green", "blue", "nir")}
    count = 0
    for name, source in sources.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with rasterio.open(_require(source)) as src:
            for row in range(0, src.height - TILE_PX + 1, TILE_PX):
                for col in range(0, src.width - TILE_PX + 1, TILE_PX):
                    window = Window(col, row, TILE_PX, TILE_PX)
                    # MINISBLACK: GDAL would otherwise take a 4th uint8 band for alpha.
                    profile = {**src.profile, "driver": "GTiff", "width": TILE_PX, "height": TILE_PX,
                               "transform": src.window_transform(window), "tiled": False,
                               "photometric": "MINISBLACK"}  # fmt: skip
                    profile.pop("blockxsize", None), profile.pop("blockysize", None)
                    with rasterio.open(folder / f"{name}_r{row:04d}_c{col:04d}.tif", "w", **profile) as dst:
                        dst.write(src.read(window=window))
                        dst.descriptions = naming.get(name, src.descriptions)
                    count += 1
    return count


def run_demo(
    out: str | os.PathLike[str],
    steps: int = 300,
    batch_size: int = 16,
    samples: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> DemoSummary:
    """Run the four steps into ``out`` (its demo outputs are replaced; nothing else is touched)."""
    from salibi.align import align
    from salibi.embed import embed_folder
    from salibi.eval.report import write_bar_chart, write_results
    from salibi.eval.run import evaluate_geobench
    from salibi.eval.sample_tasks import write_sen1floods11_task
    from salibi.train import PretrainConfig, pretrain

    samples_dir = Path(samples) if samples is not None else SAMPLES
    floods = _require(samples_dir / "sen1floods11")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(out=out)
    for stale in ("run", "tiles", "geobench", "embeddings.h5", "embeddings.h5.parts"):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    clock = time.perf_counter()
    log("1/4 align: Sentinel-1 + Sentinel-2 (Sen1Floods11, EPSG:4326 -> UTM) into 320 m chips at 10 m")
    summary.aligned = align(
        sar=floods / "Spain_7370579_S1Hand.tif", lores=floods / "Spain_7370579_S2Hand.tif",
        output=out / "aligned.h5", tile_size_m=320, gsd={"sar": 10.0, "lores": 10.0},
        bands={"lores": [4, 3, 2, 8]}, overwrite=True, progress=False,
    )  # fmt: skip
    log("    " + summary.aligned.format().replace("\n", "\n    "))
    summary.seconds["align"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log(f"2/4 pretrain: tiny model, {steps} steps of {batch_size} chips on the CPU")
    result = pretrain(PretrainConfig(
        data=[str(out / "aligned.h5")], out=str(out / "run"), model="tiny", batch_size=batch_size,
        max_steps=steps, lr=5e-3, save_every=max(steps, 1), log_every=max(1, steps // 10), gpus=0, cpu_procs=1,
    ))  # fmt: skip
    summary.steps, summary.checkpoint = int(result["step"]), result.get("checkpoint")
    import json

    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    summary.first_loss, summary.last_loss = records[0]["loss"], records[-1]["loss"]
    summary.seconds["pretrain"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tiles = write_demo_tiles(samples_dir, out / "tiles")
    log(f"3/4 embed: {tiles} tiles of {TILE_PX} px (Sentinel-1 and Sentinel-2 at 10 m, NAIP at 5 m)")
    summary.embedded = embed_folder(out / "tiles", out / "run", out / "embeddings.h5", batch_size=32,
                                    device="cpu", progress=False)  # fmt: skip
    summary.seconds["embed"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log("4/4 eval geobench: Sen1Floods11 water tasks (classification and segmentation) in GEO-Bench's layout")
    root = out / "geobench"
    write_sen1floods11_task(root, chip=64, kind="classification", source=floods)
    write_sen1floods11_task(root, chip=64, kind="segmentation", source=floods)
    summary.results = evaluate_geobench(out / "run", root=root, device="cpu", log=lambda message: None)
    write_results(summary.results, out / "eval.json")
    write_bar_chart(summary.results, out / "eval.png")
    summary.seconds["eval"] = time.perf_counter() - clock
    return summary
