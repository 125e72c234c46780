"""Frozen-encoder features of a GEO-Bench split, streamed with bounded memory.

Samples are read one at a time (:mod:`salibi.eval.model_inputs`: one normalised tensor per
modality the task feeds, fitted to the patch size), grouped by shape and encoded a batch at a
time, so at most one batch per distinct input shape is held. Per sample this keeps the pooled
feature (the model's own pooling, :meth:`~salibi.models.scale_alibi.ScaleAlibiModel.pool`: the
mean of the patch tokens; the modalities' features concatenated) and, for segmentation, the
patch tokens themselves (float16, on disk when they would not fit comfortably in memory) with
the pixel labels; with ``token_blocks``, also the tokens of those encoder blocks (the inputs of
the ``seg-fpn`` head), captured by forward hooks during the same pass.

Inputs that say ``joint`` (GEO-Bench-2's :class:`~salibi.eval.geobench2.modality_routing.RoutedInputs`)
are encoded together by the cross-modal encoder (``encode_joint``): the pooled feature is the
model's :meth:`~salibi.models.scale_alibi.ScaleAlibiModel.pool_joint` of the joint tokens, the
tokens are the joint tokens.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.errors import DataFormatError
from salibi.eval.band_matching import TaskInputs
from salibi.eval.geobench.tasks import Task
from salibi.eval.model_inputs import PreparedSample, SampleLoader

if TYPE_CHECKING:
    import torch

__all__ = ["SplitFeatures", "extract_features"]

# Keep segmentation tokens in memory up to this size, on disk (a memory map) beyond it.
TOKENS_IN_MEMORY_BYTES = 512 * 1024 * 1024


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


def _segmentation_label(label: np.ndarray, n_classes: int, height: int, width: int) -> np.ndarray:
    """(H, W) int16 with -1 for pixels outside 0..n_classes-1 (ignored), padded to (height, width)."""
    out = np.full((height, width), -1, dtype=np.int16)
    label = np.asarray(label)
    valid = (label >= 0) & (label < n_classes)
    h, w = min(height, label.shape[0]), min(width, label.shape[1])
    out[:h, :w] = np.where(valid, label, -1)[:h, :w]
    return out


def _keep_numpy(item: Any) -> Any:
    return item


def _iterate(loader: SampleLoader, num_workers: int) -> Iterable[PreparedSample]:
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


def _grid_maps(per_modality: list[tuple[torch.Tensor, tuple[int, int]]]) -> torch.Tensor:
    """(B, rows*cols, D_total) float16: each modality's tokens on the first modality's grid, concatenated."""
    import torch
    import torch.nn.functional as F

    rows, cols = per_modality[0][1]
    maps = []
    for tokens, (r, c) in per_modality:
        grid_map = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], r, c)
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

    def discard(self) -> None:
        if self.storage is not None:
            self.storage.cleanup()


def _empty_labels(specs: Any, count: int) -> np.ndarray:
    """Labels of ``count`` samples: (N,) int64 classes, (N, C) int8 multi-hot or (N, H, W) int16 (-1: ignored)."""
    if specs.label.kind == "multilabel":
        return np.zeros((count, specs.label.n_classes), dtype=np.int8)
    if specs.label.kind == "segmentation":
        return np.full((count, *specs.patch_size), -1, dtype=np.int16)
    return np.zeros(count, dtype=np.int64)


#: Per modality of the inputs (in their order): tokens (B, N, D) float32.
Tokens = dict[str, "torch.Tensor"]


class _SplitEncoder:
    """Encodes batches of one split's prepared samples with the frozen model and keeps what
    :class:`SplitFeatures` holds: the pooled features, the labels and, for segmentation, the tokens."""

    def __init__(
        self,
        model: Any,
        task: Task,
        inputs: TaskInputs,
        count: int,
        device: torch.device,
        keep_tokens: bool,
        blocks: tuple[int, ...],
        tokens_in_memory_bytes: int,
    ) -> None:
        self.model, self.task, self.device = model, task, device
        self.modalities = [m.modality for m in inputs.modalities]
        self.joint = bool(getattr(inputs, "joint", False))  # GEO-Bench-2's RoutedInputs: cross-modal encoding
        self.patch = int(model.config.patch_size)
        self.keep_tokens, self.blocks = keep_tokens, blocks
        self.count = count
        self.labels = _empty_labels(task.specs, count)
        self.pooled: np.ndarray | None = None
        self.grid: tuple[int, int] | None = None  # token rows, cols of the first modality (segmentation)
        self.label_px_per_token: float | None = None
        self.store = _TokenStore(count, tokens_in_memory_bytes)
        self.captured: dict[tuple[str, int], torch.Tensor] = {}  # (modality, block) -> its output
        self.hooks: list[Any] = []
        try:
            self._capture_blocks()
        except BaseException:
            self.remove_hooks()
            raise

    def _capture_blocks(self) -> None:
        """Forward hooks keeping the output of each of ``blocks`` of every encoder used."""
        for modality in self.modalities if self.blocks else ():
            encoder_blocks = self.model.encoders[modality].blocks
            for b in self.blocks:
                if b >= len(encoder_blocks):
                    raise DataFormatError(
                        f"encoder {modality} has {len(encoder_blocks)} blocks, block {b} was asked for"
                    )

                def keep(module: Any, args: Any, output: torch.Tensor, key: tuple[str, int] = (modality, b)) -> None:
                    self.captured[key] = output

                self.hooks.append(encoder_blocks[b].register_forward_hook(keep))

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()

    def keep_label(self, sample: PreparedSample) -> None:
        """Store ``sample``'s label (segmentation: on the label grid, -1 outside the classes)."""
        specs = self.task.specs
        label_hw = tuple(specs.patch_size)
        if self.label_px_per_token is None:  # the first sample read sets the scale of the label grid
            self.label_px_per_token = self.patch * label_hw[0] / sample.size[0]
        if specs.label.kind == "segmentation":
            self.labels[sample.index] = _segmentation_label(sample.label, specs.label.n_classes, *label_hw)
        else:
            self.labels[sample.index] = sample.label

    def encode(self, batch: list[PreparedSample]) -> None:
        """Encode one batch (samples of one :attr:`PreparedSample.batch_key`) and store its features."""
        rows = [sample.index for sample in batch]
        tokens, block_tokens, grids = self._run_model(batch)
        pooled = self._pool(tokens)
        if self.pooled is None:
            self.pooled = np.zeros((self.count, pooled.shape[1]), dtype=np.float32)
        self.pooled[rows] = pooled
        if self.keep_tokens or self.blocks:
            self._store_tokens(rows, tokens, block_tokens, grids)

    def _run_model(self, batch: list[PreparedSample]) -> tuple[Tokens, list[Tokens], dict[str, tuple[int, int]]]:
        """The last block's tokens, those of each of ``blocks`` and the token grid, per modality."""
        import torch

        gsds = dict(zip(self.modalities, batch[0].gsds))
        autocast = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            images = {
                modality: torch.from_numpy(np.stack([s.images[i] for s in batch])).to(self.device, non_blocking=True)
                for i, modality in enumerate(self.modalities)
            }
            self.captured.clear()
            if self.joint:  # one cross-modal pass; the hooks catch every encoder's blocks
                joint = self.model.encode_joint(images, gsds)
                tokens = {m: joint[m].float() for m in self.modalities}
            else:
                tokens = {m: self.model.encode(images[m], modality=m, gsd=gsds[m]).float() for m in self.modalities}
            block_tokens = [{m: self.captured[(m, b)].float() for m in self.modalities} for b in self.blocks]
        grids = {m: (x.shape[-2] // self.patch, x.shape[-1] // self.patch) for m, x in images.items()}
        return tokens, block_tokens, grids

    def _pool(self, tokens: Tokens) -> np.ndarray:
        """(B, D) features pooled as the model pools them: the joint tokens as
        :meth:`~salibi.models.scale_alibi.ScaleAlibiModel.embed_joint` does, otherwise each
        modality's as :meth:`~salibi.models.scale_alibi.ScaleAlibiModel.embed` does, concatenated."""
        import torch

        if self.joint:
            return self.model.pool_joint(tokens).cpu().numpy()
        return torch.cat([self.model.pool(t) for t in tokens.values()], dim=1).cpu().numpy()

    def _store_tokens(
        self, rows: list[int], tokens: Tokens, block_tokens: list[Tokens], grids: dict[str, tuple[int, int]]
    ) -> None:
        """Keep the batch's tokens (and block tokens) on the first modality's grid (segmentation)."""

        def on_grid(per_modality: Tokens) -> np.ndarray:
            return _grid_maps([(per_modality[m], grids[m]) for m in self.modalities]).cpu().numpy()

        grid = grids[self.modalities[0]]
        joined = on_grid(tokens) if self.keep_tokens else None
        levels = [on_grid(level) for level in block_tokens]
        if self.grid is None:
            self.grid = grid
            shapes: dict[str, tuple[int, ...]] = {}
            if joined is not None:
                shapes["tokens"] = joined.shape[1:]
            if levels:
                shapes["blocks"] = (len(levels), *levels[0].shape[1:])
            self.store.allocate(shapes)
        if grid != self.grid:
            raise DataFormatError(
                f"task {self.task.name}: samples of different sizes ({grid[0]}x{grid[1]} vs {self.grid} patches) in "
                "one segmentation split; the segmentation protocols need one size"
            )
        if joined is not None:
            self.store.arrays["tokens"][rows] = joined
        for level, array in enumerate(levels):
            self.store.arrays["blocks"][rows, level] = array

    def features(self, names: Sequence[str]) -> SplitFeatures:
        pooled = self.pooled if self.pooled is not None else np.zeros((0, 0), dtype=np.float32)
        return SplitFeatures(
            list(names),
            pooled,
            self.labels,
            self.store.arrays.get("tokens"),
            self.grid,
            self.label_px_per_token or 1.0,
            self.store.storage,
            block_tokens=self.store.arrays.get("blocks"),
            blocks=self.blocks,
        )


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

    segmentation = task.specs.label.kind == "segmentation"
    encoder = _SplitEncoder(
        model,
        task,
        inputs,
        len(names),
        torch.device(device),
        keep_tokens=keep_tokens and segmentation,
        blocks=tuple(sorted(set(token_blocks))) if segmentation else (),
        tokens_in_memory_bytes=tokens_in_memory_bytes,
    )

    def encode(batch: list[PreparedSample]) -> None:
        encoder.encode(batch)
        if progress is not None:
            progress(len(batch))

    try:
        loader = SampleLoader(task, inputs, list(names), stats, encoder.patch, segmentation)
        waiting: dict[tuple[Any, ...], list[PreparedSample]] = {}  # batch key -> samples read, not yet encoded
        for sample in _iterate(loader, num_workers):
            encoder.keep_label(sample)
            batch = waiting.setdefault(sample.batch_key, [])
            batch.append(sample)
            if len(batch) >= batch_size:
                encode(waiting.pop(sample.batch_key))
        for batch in waiting.values():
            encode(batch)
    except BaseException:
        encoder.store.discard()
        raise
    finally:
        encoder.remove_hooks()
    return encoder.features(names)
