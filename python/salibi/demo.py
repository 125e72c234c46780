"""``salibi demo``: the whole journey on the real sample data shipped with salibi.

The samples come from packages on PyPI (``data/README.md`` names each package and version):

1. ``align``: each of the six BigEarthNet Sentinel-1 (VV, VH) / Sentinel-2 (B02, B03, B04,
   B08 at 10 m; B11, B12 at 20 m) pairs into 240 m chips at 10 m -> ``DIR/aligned/*.h5``
   (six places in three UTM zones; 150 chips, all for training);
2. ``pretrain``: the tiny model for ``steps`` steps on the CPU, on all six files -> ``DIR/run/``;
3. ``embed``: tiles of Sentinel-1 and Sentinel-2 (BigEarthNet, 10 m), Sentinel-2 over Patagonia
   (10 m) and Landsat-7 over Raleigh (28.5 m) -> ``DIR/embeddings.h5``: one encoder for two
   sensors, three GSDs;
4. ``eval geobench``: the shipped Raleigh land-cover tasks (Landsat-7 at 28.5 m, 7 classes;
   classification and segmentation) in GEO-Bench's layout (``DIR/geobench/``) -> ``DIR/eval.json``;
   and the same model *untrained* (the run's own initial weights, checked against its record)
   through the same evaluation -> ``DIR/eval.random-init.json``: the reference that says what
   pretraining added, each difference with its paired interval over the same test samples;
5. ``eval retrieval``: cross-modal retrieval (:mod:`salibi.eval.retrieval`) on the 150 aligned
   chips, Sentinel-1 chip -> its Sentinel-2 chip and back, in the shared contrastive space, beside
   the same untrained model -> ``DIR/retrieval.json``. These are the chips the model trained on
   (at this size no chip is held out): it shows what the contrastive objective fit, not what
   generalises to new places.

The model is trained at 10 m on Sentinel-2 over Europe and evaluated at 28.5 m on Landsat-7 over
North Carolina: another sensor, GSD and continent. At this size (150 chips, 300 steps) the demo
shows that every step works on real data; it is not a benchmark, and it does not show that
pretraining helped unless a paired interval against random init excludes 0.

``only="align"`` stops after step 1 (``salibi demo --only align``): the aligned set alone, e.g.
for ``salibi ablate DIR/aligned``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import InputError
from salibi.runs import METRICS_JSONL
from salibi.samples import sample_path

TILE_PX = 64
#: Sentinel-2 bands of the demo's low-res optical encoder: the six bands Landsat ETM+ also has.
S2_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
CHIP_M = 240
#: What the demo writes into its folder (replaced by each run of it).
DEMO_OUTPUTS = (
    "aligned",
    "run",
    "tiles",
    "geobench",
    "embeddings.h5",
    "embeddings.h5.parts",
    "eval.json",
    "eval.png",
    "eval.random-init.json",
    "retrieval.json",
)


@dataclass
class DemoSummary:
    out: Path
    aligned: list[Any] = field(default_factory=list)
    first_loss: float | None = None
    last_loss: float | None = None
    steps: int = 0
    checkpoint: str | None = None
    embedded: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    #: the retrieval document (salibi.eval.retrieval.report), the untrained model beside it
    retrieval: dict[str, Any] = field(default_factory=dict)
    #: the untrained model's results on the same tasks, and what it is
    baseline: dict[str, Any] = field(default_factory=dict)
    baseline_description: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def chips(self) -> tuple[int, int, int]:
        """(kept, train, validation) chips over all aligned files."""
        return (
            sum(a.chips_kept for a in self.aligned),
            sum(a.chips_train for a in self.aligned),
            sum(a.chips_val for a in self.aligned),
        )


def bigearthnet_pairs(samples: Path) -> list[tuple[Path, Path]]:
    """(Sentinel-1 folder, Sentinel-2 folder) of every BigEarthNet pair, paired by its metadata."""
    pairs = []
    for s1 in sorted(samples.glob("S1*")):
        meta = json.loads(next(s1.glob("*_labels_metadata.json")).read_text())
        pairs.append((s1, samples / meta["corresponding_s2_patch"]))
    return pairs


def _band_file(folder: Path, band: str) -> Path:
    return next(folder.glob(f"*_{band}.tif"))


def _write_tiles(
    pixels: np.ndarray, profile: dict[str, Any], names: Sequence[str], folder: Path, prefix: str, tile_px: int
) -> int:
    """Cut (C, H, W) ``pixels`` on ``profile``'s grid into ``tile_px`` GeoTIFFs named by band."""
    import rasterio
    from rasterio.windows import Window, transform

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    _, height, width = pixels.shape
    for row in range(0, height - tile_px + 1, tile_px):
        for col in range(0, width - tile_px + 1, tile_px):
            window = Window(col, row, tile_px, tile_px)
            tile = pixels[:, row : row + tile_px, col : col + tile_px]
            # MINISBLACK: GDAL would otherwise take a 4th uint8 band for alpha.
            with rasterio.open(
                folder / f"{prefix}_r{row:04d}_c{col:04d}.tif",
                "w",
                driver="GTiff",
                width=tile_px,
                height=tile_px,
                count=tile.shape[0],
                dtype=tile.dtype.name,
                crs=profile["crs"],
                transform=transform(window, profile["transform"]),
                nodata=profile.get("nodata"),
                photometric="MINISBLACK",
            ) as dst:
                dst.write(tile)
                dst.descriptions = tuple(names)
            count += 1
    return count


def _read_on_grid(path: Path, like: Any) -> np.ndarray:
    """All bands of ``path`` resampled (bilinear) onto the grid of the open dataset ``like``."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    with rasterio.open(path) as src:
        window = from_bounds(*like.bounds, transform=src.transform)
        return src.read(window=window, out_shape=(src.count, like.height, like.width), resampling=Resampling.bilinear)


def write_demo_tiles(samples: Path, out: Path) -> int:
    """GeoTIFF tiles (bands named) of every sensor in the samples under ``out``; returns how many.

    BigEarthNet: one 120 px tile per pair and sensor (Sentinel-2's 20 m bands resampled to
    10 m); Patagonia Sentinel-2 (20 m SWIR resampled to the 10 m grid) and Landsat-7 Raleigh:
    ``TILE_PX`` tiles.
    """
    import rasterio

    count = 0
    for s1, s2 in bigearthnet_pairs(samples / "bigearthnet"):
        with rasterio.open(_band_file(s1, "VV")) as vv:
            sar = np.stack([vv.read(1), _read_on_grid(_band_file(s1, "VH"), vv)[0]])
            count += _write_tiles(sar, vv.profile, ("VV", "VH"), out / "sentinel1", s1.name, vv.height)
        with rasterio.open(_band_file(s2, "B02")) as ref:
            optical = np.concatenate([_read_on_grid(_band_file(s2, b), ref) for b in S2_BANDS])
            count += _write_tiles(optical, ref.profile, S2_BANDS, out / "sentinel2", s2.name, ref.height)
    patagonia = samples / "sentinel2_patagonia"
    with rasterio.open(patagonia / "sentinel2_10m.tif") as ref:
        optical = np.concatenate([ref.read(), _read_on_grid(patagonia / "sentinel2_20m.tif", ref)])
        names = (*ref.descriptions, "SWIR1", "SWIR2")
        count += _write_tiles(optical, ref.profile, names, out / "patagonia", "s2", TILE_PX)
    with rasterio.open(samples / "landsat7_raleigh" / "landsat7_2000.tif") as src:
        count += _write_tiles(src.read(), src.profile, src.descriptions, out / "landsat7", "etm", TILE_PX)
    return count


def run_demo(
    out: str | os.PathLike[str],
    steps: int = 300,
    batch_size: int = 16,
    samples: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    only: str | None = None,
) -> DemoSummary:
    """Run the five steps into ``out`` (its demo outputs are replaced; nothing else is touched);
    ``only="align"``: the first step alone (only ``out/aligned`` is replaced)."""
    from salibi.align import align
    from salibi.embed import embed_folder
    from salibi.eval.baseline import baseline_label, random_init_reference
    from salibi.eval.evaluate import evaluate_geobench
    from salibi.eval.geobench.sample_tasks import write_landcover_task
    from salibi.eval.output.report import write_bar_chart
    from salibi.eval.output.results import write_results
    from salibi.eval.retrieval.evaluate import evaluate_retrieval
    from salibi.eval.retrieval.report import write_retrieval
    from salibi.eval.retrieval.settings import ALL_CHIPS, RetrievalSettings
    from salibi.eval.settings import GeoBenchSettings
    from salibi.models import load_checkpoint, resolve_checkpoint
    from salibi.train import PretrainConfig, pretrain
    from salibi.vocabulary import RANDOM_INIT

    samples_dir = Path(samples) if samples is not None else sample_path()
    pairs = bigearthnet_pairs(samples_dir / "bigearthnet")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = DemoSummary(out=out)
    if only not in (None, "align"):
        raise InputError(f"only={only!r}: the one step that runs alone is 'align'")
    outputs = ("aligned",) if only == "align" else DEMO_OUTPUTS
    for stale in outputs:
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    clock = time.perf_counter()
    (out / "aligned").mkdir()
    log(f"1/5 align: {len(pairs)} BigEarthNet Sentinel-1/Sentinel-2 pairs into {CHIP_M} m chips at 10 m")
    for s1, s2 in pairs:
        summary.aligned.append(
            align(
                sar=[_band_file(s1, "VV"), _band_file(s1, "VH")],
                lores=[_band_file(s2, b) for b in S2_BANDS],
                output=out / "aligned" / f"{s2.name}.h5",
                tile_size_m=CHIP_M,
                gsd={"sar": 10.0, "lores": 10.0},
                band_names={"sar": ["VV", "VH"], "lores": list(S2_BANDS)},
                val_fraction=0.0,
                overwrite=True,
                progress=False,
            )
        )
    kept, train, _ = summary.chips
    log(f"    {len(pairs)} files, {kept} chips ({train} train), sar VV VH + lores {' '.join(S2_BANDS)}")
    summary.seconds["align"] = time.perf_counter() - clock
    if only == "align":
        return summary

    clock = time.perf_counter()
    log(f"2/5 pretrain: tiny model, {steps} steps of {batch_size} chips on the CPU")
    result = pretrain(
        PretrainConfig(
            data=[str(a.path) for a in summary.aligned],
            out=str(out / "run"),
            model="tiny",
            batch_size=batch_size,
            max_steps=steps,
            lr=5e-3,
            save_every=max(steps, 1),
            log_every=max(1, steps // 10),
            gpus=0,
            cpu_procs=1,
        )
    )
    summary.steps, summary.checkpoint = int(result["step"]), result.get("checkpoint")
    records = [json.loads(line) for line in (out / "run" / METRICS_JSONL).read_text().splitlines()]
    summary.first_loss, summary.last_loss = records[0]["loss"], records[-1]["loss"]
    summary.seconds["pretrain"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tiles = write_demo_tiles(samples_dir, out / "tiles")
    log(f"3/5 embed: {tiles} tiles (Sentinel-1, Sentinel-2 at 10 m; Landsat-7 at 28.5 m)")
    summary.embedded = embed_folder(
        out / "tiles", out / "run", out / "embeddings.h5", batch_size=32, device="cpu", progress=False
    )
    summary.seconds["embed"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log("4/5 eval geobench: Raleigh land cover (Landsat-7, 28.5 m, 7 classes) in GEO-Bench's layout")
    root = out / "geobench"
    landsat = samples_dir / "landsat7_raleigh"
    write_landcover_task(root, kind="classification", source=landsat, overwrite=True)
    write_landcover_task(root, kind="segmentation", source=landsat, overwrite=True)
    evaluation = GeoBenchSettings(root=root, device="cpu")
    summary.results = evaluate_geobench(out / "run", evaluation, log=lambda message: None)
    write_results(summary.results, out / "eval.json")
    write_bar_chart(summary.results, out / "eval.png")
    summary.seconds["eval"] = time.perf_counter() - clock

    clock = time.perf_counter()
    checkpoint = resolve_checkpoint(out / "run")
    twin, summary.baseline_description = random_init_reference(checkpoint, load_checkpoint(checkpoint))
    log("    the same model untrained, through the same evaluation (the reference for what pretraining added)")
    summary.baseline = evaluate_geobench(baseline_label(checkpoint), evaluation, model=twin, log=lambda message: None)
    write_results(summary.baseline, out / "eval.random-init.json")
    summary.seconds["eval random init"] = time.perf_counter() - clock

    clock = time.perf_counter()
    log(f"5/5 eval retrieval: Sentinel-1 <-> Sentinel-2 on the {kept} aligned chips, beside the model untrained")
    retrieval = RetrievalSettings(split=ALL_CHIPS, baseline=RANDOM_INIT, device="cpu")
    summary.retrieval = evaluate_retrieval([a.path for a in summary.aligned], out / "run", retrieval)
    write_retrieval(summary.retrieval, out / "retrieval.json")
    summary.seconds["eval retrieval"] = time.perf_counter() - clock
    return summary
