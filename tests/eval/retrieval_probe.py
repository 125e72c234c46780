"""Does a GEO-Bench-style probe move on the shared projections or the fused joint features?
A script run by hand (README, ``salibi eval retrieval``), not a test::

    python tests/eval/retrieval_probe.py SET.h5 RUN LABEL.tif

SET: an aligned set of high-res and low-res optical chips of a Sen1Floods11 chip (hires 10 m RGB,
lores 20 m SWIR, as the README aligns it); RUN: a run pretrained on it; LABEL: the chip's
hand-drawn water mask (``../shared/data/sen1floods11/*_LabelHand.tif``). Each aligned chip's label
is its water share (under 5 %, 5-50 %, over 50 %: three classes); probes are fitted on the
training chips and scored on the validation chips, with the features of the run's checkpoint and
of its untrained twin: the pooled encoder tokens (``encoder``: both modalities concatenated;
``encoder-hires``: the RGB encoder's alone), their shared contrastive projections (``shared``,
``shared-hires``) and the cross-modal encoder's pooled joint tokens (``joint``). Prints one
Markdown row per features and probe: accuracy with its 95 % bootstrap interval, for both models,
and their paired difference.
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
import torch

from salibi.data import AlignedDataset
from salibi.eval.baseline import random_init_reference
from salibi.eval.protocols.knn import knn_probe
from salibi.eval.protocols.linear_probe import linear_probe
from salibi.eval.scoring.bootstrap import bootstrap_interval, paired_bootstrap_difference
from salibi.models import load_checkpoint, resolve_checkpoint

FEATURES = ("encoder", "shared", "joint", "encoder-hires", "shared-hires")
#: Water shares that bound the three classes.
EDGES = (0.05, 0.5)


def water_classes(path: str, label_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Per chip of the set: its class (0, 1, 2) and whether the label covers it."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    with h5py.File(path) as f:
        bounds, crs, gsd = f["bounds"][:], f.attrs["crs"], float(f["hires"].attrs["gsd"])
    x0, y1 = bounds[:, 0].min(), bounds[:, 3].max()
    width = int(round((bounds[:, 2].max() - x0) / gsd))
    height = int(round((y1 - bounds[:, 1].min()) / gsd))
    grid = np.full((height, width), -1, np.float32)
    with rasterio.open(label_path) as src:  # the mask onto the chips' grid: -1 no data, 0 dry, 1 water
        reproject(
            rasterio.band(src, 1),
            grid,
            dst_transform=from_origin(x0, y1, gsd, gsd),
            dst_crs=crs,
            resampling=Resampling.nearest,
            dst_nodata=-1,
        )
    share = np.full(len(bounds), np.nan)
    for i, (minx, _, maxx, maxy) in enumerate(bounds):
        col, row, side = int(round((minx - x0) / gsd)), int(round((y1 - maxy) / gsd)), int(round((maxx - minx) / gsd))
        cell = grid[row : row + side, col : col + side]
        if (cell >= 0).any():
            share[i] = (cell[cell >= 0] == 1).mean()
    return np.digitize(np.nan_to_num(share), EDGES), np.isfinite(share)


def features(model: torch.nn.Module, dataset: AlignedDataset) -> dict[str, np.ndarray]:
    found: dict[str, list[torch.Tensor]] = {name: [] for name in FEATURES}
    with torch.inference_mode():
        for start in range(0, len(dataset), 64):
            samples = [dataset[i] for i in range(start, min(start + 64, len(dataset)))]
            images = {m: torch.stack([s[m] for s in samples]) for m in ("lores", "hires")}
            gsd = {m: torch.tensor([s["gsd"][m] for s in samples], dtype=torch.float64) for m in images}
            pooled = {m: model.pool(model.encode(images[m], m, gsd[m])) for m in images}
            projected = {m: model.project(pooled[m], m) for m in images}
            found["encoder"].append(torch.cat([pooled["hires"], pooled["lores"]], 1))
            found["shared"].append(torch.cat([projected["hires"], projected["lores"]], 1))
            found["joint"].append(model.embed_joint(images, gsd))
            found["encoder-hires"].append(pooled["hires"])
            found["shared-hires"].append(projected["hires"])
    return {name: torch.cat(values).float().numpy() for name, values in found.items()}


def main(path: str, run: str, label_path: str) -> None:
    torch.set_num_threads(2)
    classes, covered = water_classes(path, label_path)
    with h5py.File(path) as f:
        split = f["split"][:]
    checkpoint = resolve_checkpoint(run)
    model = load_checkpoint(checkpoint).eval()
    twin, description = random_init_reference(checkpoint, model)
    rows = {name: np.flatnonzero(split == code) for name, code in (("train", 0), ("validation", 1))}
    keep = {name: covered[index] for name, index in rows.items()}
    labels = {name: classes[index][keep[name]] for name, index in rows.items()}
    computed = {
        who: {name: features(m, AlignedDataset([path], split=name)) for name in rows}
        for who, m in (("pretrained", model), ("random init", twin))
    }
    majority = np.bincount(labels["train"]).argmax()
    print(f"{checkpoint}; {description}")
    print(
        f"{len(labels['train'])} training and {len(labels['validation'])} test chips; classes (train) "
        f"{np.bincount(labels['train']).tolist()}; chance (majority class) {np.mean(labels['validation'] == majority):.3f}"
    )
    print("| features | probe | pretrained | 95 % interval | random init | 95 % interval | difference | paired 95 % |")
    print("|---|---|---|---|---|---|---|---|")
    truth = labels["validation"]
    for name in FEATURES:
        for probe in ("knn", "linear"):
            predicted = {}
            for who, found in computed.items():
                train_x, test_x = found["train"][name][keep["train"]], found["validation"][name][keep["validation"]]
                if probe == "knn":
                    predicted[who] = knn_probe(train_x, labels["train"], test_x, "classification", 3).prediction
                else:
                    predicted[who] = linear_probe(
                        (train_x, labels["train"]), None, test_x, "classification", 3
                    ).prediction
            a = bootstrap_interval("accuracy", truth, predicted["pretrained"])
            b = bootstrap_interval("accuracy", truth, predicted["random init"])
            d = paired_bootstrap_difference("accuracy", truth, predicted["pretrained"], predicted["random init"])
            print(
                f"| {name} | {probe} | {a.value:.3f} | [{a.low:.3f}, {a.high:.3f}] | {b.value:.3f} | "
                f"[{b.low:.3f}, {b.high:.3f}] | {d.value:+.3f} | [{d.low:.3f}, {d.high:.3f}] |"
            )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
