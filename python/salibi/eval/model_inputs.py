"""A task's samples as the model's inputs: one normalised (C, H, W) array per modality it feeds.

Each band is normalised with the task's ``band_stats.json`` mean and standard deviation (the
units differ between tasks, so the checkpoint's own statistics would not fit); bands the
statistics lack get them from the first training samples (:func:`band_normalisation`).
Non-finite values become 0 (the mean). Bands of one modality with different shapes are
resampled (bilinear) to the largest. The GSD given to the encoder is the stored pixel size of
the finest band used. Sizes that are not multiples of the patch size are centre-cropped to one
for classification when that keeps at least 3/4 of each side, and zero-padded otherwise (always
padded for segmentation, whose predictions are cropped back) (:func:`prepare_sample`).
:class:`SampleLoader` prepares sample ``i`` of a split for every modality (in worker processes
too), as a :class:`PreparedSample`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.errors import DataFormatError
from salibi.eval.band_matching import ModalityInput, TaskInputs
from salibi.eval.geobench.tasks import Task

__all__ = ["PreparedSample", "SampleLoader", "band_normalisation", "prepare_sample"]

# Samples read to estimate statistics for bands band_stats.json lacks.
STATS_SAMPLES = 32


def _band_keys(sample: dict[str, Any]) -> dict[str, str]:
    """Band name -> the sample's key for it (the earliest date when several are present)."""
    keys: dict[str, str] = {}
    dated: dict[str, Any] = {}
    for key, info in sample["band_info"].items():
        date = sample["dates"].get(key)
        for name in (info.name, key):
            if name not in keys or (date is not None and dated.get(name) is not None and date < dated[name]):
                keys[name] = key
                dated[name] = date
    return keys


def band_normalisation(task: Task, inputs: TaskInputs, train_names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation per task band name used by ``inputs``."""
    wanted = {b for m in inputs.modalities for b in m.task_bands if b is not None}
    stats: dict[str, tuple[float, float]] = {}
    for name in wanted:
        entry = task.band_stat(name)
        if entry and _finite(entry.get("mean")) and _finite(entry.get("std")) and float(entry["std"]) > 0:
            stats[name] = (float(entry["mean"]), float(entry["std"]))
    missing = wanted - set(stats)
    if missing:
        sums = {n: [0.0, 0.0, 0] for n in missing}
        for sample_name in list(train_names)[:STATS_SAMPLES]:
            sample = task.read_sample(sample_name)
            keys = _band_keys(sample)
            for n in missing:
                if n in keys:
                    values = sample["bands"][keys[n]].astype(np.float64)
                    values = values[np.isfinite(values)]
                    sums[n][0] += values.sum()
                    sums[n][1] += (values**2).sum()
                    sums[n][2] += values.size
        for n, (total, squares, count) in sums.items():
            mean = total / count if count else 0.0
            std = math.sqrt(max(squares / count - mean * mean, 0.0)) if count else 1.0
            stats[n] = (mean, std if std > 0 else 1.0)
    return stats


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fit(size: int, patch: int, crop_allowed: bool) -> tuple[int, int]:
    """(start, length) of the crop window, or (0, padded length) when padding."""
    if size % patch == 0:
        return 0, size
    down = size - size % patch
    if crop_allowed and down >= 0.75 * size and down > 0:
        return (size - down) // 2, down
    return 0, size + (patch - size % patch)


def prepare_sample(
    sample: dict[str, Any],
    modality: ModalityInput,
    stats: dict[str, tuple[float, float]],
    patch: int,
    segmentation: bool,
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """One modality's (C, H, W) float32 input (fitted to the patch size), its GSD (metres per
    pixel) and its size before fitting."""
    keys = _band_keys(sample)
    arrays: list[np.ndarray | None] = []
    gsds: list[float] = []
    for band in modality.task_bands:
        if band is None or band not in keys:
            arrays.append(None)
            continue
        key = keys[band]
        data = np.asarray(sample["bands"][key])
        if data.ndim == 3 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim != 2:
            raise DataFormatError(f"sample {sample['name']}: band {key!r} has shape {data.shape}, expected (H, W)")
        mean, std = stats.get(band, (0.0, 1.0))
        arrays.append((data.astype(np.float32) - np.float32(mean)) / np.float32(std))
        gsds.append(float(sample["gsd"][key]))
    present = [a for a in arrays if a is not None]
    if not present:
        raise DataFormatError(f"sample {sample['name']} has none of the bands {modality.task_bands}")
    height = max(a.shape[0] for a in present)
    width = max(a.shape[1] for a in present)
    channels = np.zeros((len(arrays), height, width), dtype=np.float32)
    for i, a in enumerate(arrays):
        if a is None:
            continue
        if a.shape != (height, width):
            a = _resize(a, height, width)
        channels[i] = a
    np.nan_to_num(channels, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    gsd = _finest_gsd(present, gsds, height)
    (top, h), (left, w) = _fit(height, patch, not segmentation), _fit(width, patch, not segmentation)
    if (h, w) != (height, width):
        fitted = np.zeros((len(arrays), h, w), dtype=np.float32)  # zeros = the band mean
        src_h, src_w = min(h, height - top), min(w, width - left)
        fitted[:, :src_h, :src_w] = channels[:, top : top + src_h, left : left + src_w]
        channels = fitted
    return channels, gsd, (height, width)


def _finest_gsd(arrays: list[np.ndarray], gsds: list[float], height: int) -> float:
    # After resampling to the largest array, the pixel size is that of the largest array's band.
    for a, g in zip(arrays, gsds):
        if a.shape[0] == height:
            return g
    return min(gsds)


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


@dataclass
class PreparedSample:
    """One sample read and fitted to the patch size for every modality its task feeds."""

    index: int  # position in the split
    images: list[np.ndarray]  # per modality of the inputs, in their order: (C, H, W) float32
    gsds: list[float]  # per modality: metres per pixel
    label: Any
    size: tuple[int, int]  # the first modality's (H, W) before fitting: the label grid follows it

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Samples of equal keys (every modality's shape and GSD) are encoded in one batch."""
        return tuple((image.shape, round(gsd, 6)) for image, gsd in zip(self.images, self.gsds))


class SampleLoader:
    """Sample ``i`` of ``names`` read and prepared for every modality (picklable for workers)."""

    def __init__(
        self,
        task: Task,
        inputs: TaskInputs,
        names: list[str],
        stats: dict[str, tuple[float, float]],
        patch: int,
        segmentation: bool,
    ) -> None:
        self.task, self.inputs, self.names, self.stats = task, inputs, names, stats
        self.patch, self.segmentation = patch, segmentation

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> PreparedSample:
        sample = self.task.read_sample(self.names[index])
        images, gsds, sizes = [], [], []
        for modality in self.inputs.modalities:
            image, gsd, size = prepare_sample(sample, modality, self.stats, self.patch, self.segmentation)
            images.append(image)
            gsds.append(gsd)
            sizes.append(size)
        return PreparedSample(index, images, gsds, sample["label"], sizes[0])
