"""Frozen-encoder features of a GEO-Bench split, streamed with bounded memory.

Samples are read one at a time, turned into one normalised tensor per modality the task
feeds (see :mod:`salibi.eval.band_matching`), grouped by shape and encoded a batch at a time, so at
most one batch per distinct input shape is held. Per sample this keeps the pooled feature
(mean of the patch tokens; the modalities' features concatenated) and, for segmentation, the
patch tokens themselves (float16, on disk when they would not fit comfortably in memory)
with the pixel labels; with ``token_blocks``, also the tokens of those encoder blocks (the
inputs of the ``seg-fpn`` head), captured by forward hooks during the same pass.

Inputs: each band is normalised with the task's ``band_stats.json`` mean and standard
deviation (the units differ between tasks, so the checkpoint's own statistics would not
fit); bands the statistics lack get them from the first training samples. Non-finite
values become 0 (the mean). Bands of one modality with different shapes are resampled
(bilinear) to the largest. The GSD given to the encoder is the stored pixel size of the
finest band used. Inputs that say ``joint`` (GEO-Bench-2's
:class:`~salibi.eval.geobench2.inputs.RoutedInputs`) are encoded together by the cross-modal
encoder (``encode_joint``): the pooled feature is the mean over modalities of each one's mean
joint token, the tokens are the joint tokens. Sizes that are not multiples of the patch size
are centre-cropped to one for classification when that keeps at least 3/4 of each side, and
zero-padded otherwise (always padded for segmentation, whose predictions are cropped back).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.errors import DataFormatError
from salibi.eval.band_matching import ModalityInput, TaskInputs
from salibi.eval.geobench.tasks import Task

if TYPE_CHECKING:
    import torch

__all__ = ["SplitFeatures", "extract_features", "prepare_sample", "band_normalisation"]

# Keep segmentation tokens in memory up to this size, on disk (a memory map) beyond it.
TOKENS_IN_MEMORY_BYTES = 512 * 1024 * 1024
# Samples read to estimate statistics for bands band_stats.json lacks.
STATS_SAMPLES = 32


@dataclass
class SplitFeatures:
    """Features of one split, in partition order."""

    names: list[str]
    pooled: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64 | (N, C) int8 | (N, H, W) int16 (segmentation; -1 = ignore)
    tokens: np.ndarray | None = None  # (N, rows*cols, D) float16 (segmentation)
    grid: tuple[int, int] | None = None  # token rows, cols (segmentation)
    label_px_per_token: float = 1.0  # label pixels per token side (segmentation)
    _storage: Any = field(default=None, repr=False)  # a TemporaryDirectory holding memory maps
    block_tokens: np.ndarray | None = None  # (N, len(blocks), rows*cols, D) float16 (segmentation, seg-fpn)
    blocks: tuple[int, ...] = ()  # the encoder blocks of block_tokens

    def close(self) -> None:
        self.tokens = None
        self.block_tokens = None
        if self._storage is not None:
            self._storage.cleanup()
            self._storage = None


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


def _segmentation_label(label: np.ndarray, n_classes: int, height: int, width: int) -> np.ndarray:
    """(H, W) int16 with -1 for pixels outside 0..n_classes-1 (ignored), padded to (height, width)."""
    out = np.full((height, width), -1, dtype=np.int16)
    label = np.asarray(label)
    valid = (label >= 0) & (label < n_classes)
    h, w = min(height, label.shape[0]), min(width, label.shape[1])
    out[:h, :w] = np.where(valid, label, -1)[:h, :w]
    return out


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

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.task.read_sample(self.names[index])
        arrays, gsds, sizes = [], [], []
        for modality in self.inputs.modalities:
            array, gsd, size = prepare_sample(sample, modality, self.stats, self.patch, self.segmentation)
            arrays.append(array)
            gsds.append(gsd)
            sizes.append(size)
        # "size": the first modality's size before fitting, which the label grid follows.
        return {"index": index, "arrays": arrays, "gsds": gsds, "label": sample["label"], "size": sizes[0]}


def _keep_numpy(item: Any) -> Any:
    return item


def _iterate(loader: SampleLoader, num_workers: int) -> Any:
    if num_workers <= 0:
        return (loader[i] for i in range(len(loader)))
    from torch.utils.data import DataLoader

    return DataLoader(
        loader,  # type: ignore[arg-type]  # a map-style dataset: __len__ and __getitem__
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_keep_numpy,
        prefetch_factor=4,
    )


def _grid_maps(per_modality: list[tuple[torch.Tensor, int, int]]) -> torch.Tensor:
    """(B, rows*cols, D_total) float16: each modality's tokens on the first modality's grid, concatenated."""
    import torch
    import torch.nn.functional as F

    _, rows, cols = per_modality[0]
    maps = []
    for t, r, c in per_modality:
        grid_map = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], r, c)
        if (r, c) != (rows, cols):  # another modality's grid: resample onto the first's
            grid_map = F.interpolate(grid_map, size=(rows, cols), mode="bilinear", align_corners=False)
        maps.append(grid_map)
    return torch.cat(maps, dim=1).flatten(2).transpose(1, 2).to(torch.float16)


class _TokenStore:
    """Per-sample token arrays of one split, in memory or memory-mapped beside each other."""

    def __init__(self, count: int, limit_bytes: int) -> None:
        self.count, self.limit_bytes = count, limit_bytes
        self.storage: Any = None
        self.arrays: dict[str, np.ndarray] = {}

    def allocate(self, shapes: dict[str, tuple[int, ...]]) -> None:
        total = sum(int(np.prod((self.count, *shape))) * 2 for shape in shapes.values())
        for name, shape in shapes.items():
            full = (self.count, *shape)
            if total > self.limit_bytes:
                if self.storage is None:
                    self.storage = tempfile.TemporaryDirectory(prefix="salibi-tokens-")
                path = os.path.join(self.storage.name, f"{name}.npy")
                self.arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=full)
            else:
                self.arrays[name] = np.zeros(full, dtype=np.float16)


def extract_features(
    model: Any,
    task: Task,
    inputs: TaskInputs,
    names: Sequence[str],
    stats: dict[str, tuple[float, float]],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    keep_tokens: bool = False,
    progress: Callable[[int], None] | None = None,
    num_workers: int = 0,
    tokens_in_memory_bytes: int = TOKENS_IN_MEMORY_BYTES,
    token_blocks: Sequence[int] = (),
) -> SplitFeatures:
    """Encode the samples ``names`` of ``task`` with the frozen ``model`` (see the module docstring).

    ``num_workers`` > 0 reads and prepares samples in that many worker processes (in order),
    while this process batches them by shape and runs the model. ``keep_tokens`` keeps the
    last block's tokens of segmentation tasks, ``token_blocks`` (block indices) those of these
    encoder blocks. Segmentation tokens larger than ``tokens_in_memory_bytes`` go to
    memory-mapped files in a temporary folder, removed by :meth:`SplitFeatures.close`.
    """
    import torch

    device = torch.device(device)
    patch = int(model.config.patch_size)
    specs = task.specs
    segmentation = specs.label.kind == "segmentation"
    keep_tokens = keep_tokens and segmentation
    joint_features = bool(getattr(inputs, "joint", False))
    blocks = tuple(sorted(set(token_blocks))) if segmentation else ()
    count = len(names)
    label_hw = tuple(specs.patch_size)
    pooled: np.ndarray | None = None
    store = _TokenStore(count, tokens_in_memory_bytes)
    grid: tuple[int, int] | None = None
    if specs.label.kind == "multilabel":
        labels: np.ndarray = np.zeros((count, specs.label.n_classes), dtype=np.int8)
    elif segmentation:
        labels = np.full((count, *label_hw), -1, dtype=np.int16)
    else:
        labels = np.zeros(count, dtype=np.int64)

    # shape key -> list of (index, [per-modality array], [per-modality gsd])
    pending: dict[tuple[Any, ...], list[tuple[int, list[np.ndarray], list[float]]]] = {}
    autocast = device.type == "cuda"
    label_px_per_token: float | None = None
    captured: dict[tuple[str, int], torch.Tensor] = {}
    hooks = []
    for modality in {m.modality for m in inputs.modalities} if blocks else ():
        encoder_blocks = model.encoders[modality].blocks
        for b in blocks:
            if b >= len(encoder_blocks):
                raise DataFormatError(f"encoder {modality} has {len(encoder_blocks)} blocks, block {b} was asked for")

            def keep(module: Any, args: Any, output: torch.Tensor, key: tuple[str, int] = (modality, b)) -> None:
                captured[key] = output

            hooks.append(encoder_blocks[b].register_forward_hook(keep))

    def run(batch: list[tuple[int, list[np.ndarray], list[float]]]) -> None:
        nonlocal pooled, grid
        index = [b[0] for b in batch]
        per_modality_tokens = []
        per_block: list[list[tuple[torch.Tensor, int, int]]] = [[] for _ in blocks]
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            stacked = [torch.from_numpy(np.stack([b[1][m] for b in batch])).to(device, non_blocking=True)
                       for m in range(len(inputs.modalities))]  # fmt: skip
            joint = None
            if joint_features:  # one cross-modal pass; the hooks catch every encoder's blocks
                captured.clear()
                encoders = [m.modality for m in inputs.modalities]
                joint = model.encode_joint(dict(zip(encoders, stacked)), dict(zip(encoders, batch[0][2])))
            for m, modality in enumerate(inputs.modalities):
                images = stacked[m]
                if joint is None:
                    captured.clear()
                    out = model.encode(images, modality=modality.modality, gsd=batch[0][2][m]).float()  # (B, N, D)
                else:
                    out = joint[modality.modality].float()
                rows, cols = images.shape[-2] // patch, images.shape[-1] // patch
                per_modality_tokens.append((out, rows, cols))
                for level, b in enumerate(blocks):
                    per_block[level].append((captured[(modality.modality, b)].float(), rows, cols))
        means = [t.mean(dim=1) for t, _, _ in per_modality_tokens]
        # Joint: the mean over modalities of each one's mean joint token (embed_joint); else concatenated.
        feats = (torch.stack(means).mean(dim=0) if joint is not None else torch.cat(means, dim=1)).cpu().numpy()
        if pooled is None:
            pooled = np.zeros((count, feats.shape[1]), dtype=np.float32)
        pooled[index] = feats
        if keep_tokens or blocks:
            _, rows, cols = per_modality_tokens[0]
            joined = _grid_maps(per_modality_tokens).cpu().numpy()
            levels = [_grid_maps(level).cpu().numpy() for level in per_block]
            if grid is None:
                grid = (rows, cols)
                shapes: dict[str, tuple[int, ...]] = {}
                if keep_tokens:
                    shapes["tokens"] = joined.shape[1:]
                if blocks:
                    shapes["blocks"] = (len(blocks), *levels[0].shape[1:])
                store.allocate(shapes)
            if (rows, cols) != grid:
                raise DataFormatError(
                    f"task {task.name}: samples of different sizes ({rows}x{cols} vs {grid} patches) in one "
                    "segmentation split; the segmentation protocols need one size"
                )
            if keep_tokens:
                store.arrays["tokens"][index] = joined
            for level, array in enumerate(levels):
                store.arrays["blocks"][index, level] = array
        if progress is not None:
            progress(len(batch))

    try:
        loader = SampleLoader(task, inputs, list(names), stats, patch, segmentation)
        for item in _iterate(loader, num_workers):
            i, arrays, gsds = item["index"], item["arrays"], item["gsds"]
            if label_px_per_token is None:
                label_px_per_token = patch * label_hw[0] / item["size"][0]
            if segmentation:
                labels[i] = _segmentation_label(item["label"], specs.label.n_classes, *label_hw)
            else:
                labels[i] = item["label"]
            key = tuple((a.shape, round(g, 6)) for a, g in zip(arrays, gsds))
            group = pending.setdefault(key, [])
            group.append((i, arrays, gsds))
            if len(group) >= batch_size:
                run(group)
                del pending[key]
        for group in pending.values():
            run(group)
    except BaseException:
        if store.storage is not None:
            store.storage.cleanup()
        raise
    finally:
        for hook in hooks:
            hook.remove()
    if pooled is None:
        pooled = np.zeros((0, 0), dtype=np.float32)
    return SplitFeatures(
        list(names),
        pooled,
        labels,
        store.arrays.get("tokens"),
        grid,
        label_px_per_token or 1.0,
        store.storage,
        block_tokens=store.arrays.get("blocks"),
        blocks=blocks,
    )
