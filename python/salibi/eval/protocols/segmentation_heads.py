"""Segmentation heads trained on frozen patch tokens, and the chance reference.

- :func:`linear_head_probe` (protocol ``seg-linear``): a 1x1 convolution on the standardised
  tokens of the last encoder block, logits upsampled (bilinear) to pixels, trained with
  cross-entropy for ``steps`` steps of AdamW (lr 1e-2, weight decay 1e-4) on batches of 16
  drawn with the seed.
- :func:`fpn_head_probe` (protocol ``seg-fpn``): torchgeo-bench's FPN head on the tokens of
  several encoder blocks (deepest first): per level BatchNorm and a 1x1 lateral convolution to
  256 channels, top-down sums, a 3x3 convolution + BatchNorm + ReLU per level, the levels
  concatenated and classified by a 1x1 convolution, upsampled to pixels. 10 epochs over the
  training split in batches of 64 shuffled with the seed, AdamW lr 1e-3 (no weight decay),
  cosine schedule to 1e-6 over the epochs; the head after the last epoch is scored.

Both ignore pixels labelled < 0 in the loss. Token arrays are ``(N, rows*cols, D)`` (one
level) or ``(N, levels, rows*cols, D)``, float16 in memory or memory-mapped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salibi.errors import InputError

__all__ = [
    "FPN_BATCH",
    "FPN_EPOCHS",
    "FPN_HIDDEN",
    "FPN_LR",
    "SEG_STEPS",
    "fpn_head_probe",
    "linear_head_probe",
    "majority_predict",
]

SEG_STEPS = 300
SEG_BATCH = 16
SEG_LR = 1e-2
FPN_EPOCHS = 10
FPN_BATCH = 64
FPN_LR = 1e-3
FPN_MIN_LR = 1e-6
FPN_HIDDEN = 256


def majority_predict(train_labels: np.ndarray, test_labels: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """What a model that ignores its input predicts, and its scores: the most frequent training
    class for every sample (classification) or pixel (segmentation; pixels < 0 not counted), or
    each label present in most training samples (multi-label; the score of each class is its
    training frequency). The reference the frozen-encoder scores should beat."""
    train = np.asarray(train_labels)
    if kind == "multilabel":
        frequency = train.astype(np.float64).mean(axis=0)
        shape = np.shape(test_labels)
        return np.broadcast_to(frequency > 0.5, shape).astype(np.int8), np.broadcast_to(frequency, shape).copy()
    values = train.reshape(-1)
    values = values[values >= 0].astype(np.int64)
    counts = np.bincount(values)
    predicted = np.full(np.shape(test_labels), int(np.argmax(counts)) if counts.size else 0, dtype=np.int64)
    if kind == "segmentation":
        return predicted.astype(np.int16), np.zeros(0)
    scores = np.broadcast_to(counts / max(1, counts.sum()), (len(predicted), counts.size)).copy()
    return predicted, scores


def _upsampled_size(grid: tuple[int, int], label_hw: tuple[int, int], label_px_per_token: float) -> tuple[int, int]:
    rows, cols = grid
    return max(label_hw[0], round(rows * label_px_per_token)), max(label_hw[1], round(cols * label_px_per_token))


def _labelled(train_labels: np.ndarray) -> np.ndarray:
    labelled = np.flatnonzero((np.asarray(train_labels) >= 0).reshape(len(train_labels), -1).any(1))
    if len(labelled) == 0:
        raise InputError("segmentation head: no labelled pixel in the training split")
    return labelled


def linear_head_probe(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    test_tokens: np.ndarray,
    grid: tuple[int, int],
    label_px_per_token: float,
    n_classes: int,
    seed: int = 0,
    steps: int = SEG_STEPS,
    batch_size: int = SEG_BATCH,
    lr: float = SEG_LR,
    device: Any = "cpu",
) -> np.ndarray:
    """Train a linear head on frozen tokens (N, rows*cols, D); test predictions (N, H, W) int16."""
    import torch
    import torch.nn.functional as F

    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    rows, cols = grid
    label_h, label_w = train_labels.shape[1:]
    up = _upsampled_size(grid, (label_h, label_w), label_px_per_token)
    dim = train_tokens.shape[2]
    # Standardise with statistics of (a sample of) the training tokens.
    sample_rows = torch.randperm(len(train_tokens), generator=generator)[: min(len(train_tokens), 512)]
    reference = torch.from_numpy(np.asarray(train_tokens[np.sort(sample_rows.numpy())], dtype=np.float32))
    mean = reference.reshape(-1, dim).mean(0).to(device)
    std = (reference.reshape(-1, dim).std(0) + 1e-6).to(device)

    head = torch.nn.Conv2d(dim, n_classes, kernel_size=1)
    with torch.no_grad():
        bound = 1.0 / dim**0.5
        head.weight.uniform_(-bound, bound, generator=generator)
        assert head.bias is not None
        head.bias.zero_()
    head.to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)

    def logits(tokens: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(tokens, dtype=np.float32)).to(device)
        x = ((x - mean) / std).transpose(1, 2).reshape(x.shape[0], dim, rows, cols)
        out = F.interpolate(head(x), size=up, mode="bilinear", align_corners=False)
        return out[:, :, :label_h, :label_w]

    labelled = _labelled(train_labels)
    with torch.enable_grad():
        for _ in range(steps):
            draw = torch.randint(len(labelled), (min(batch_size, len(labelled)),), generator=generator).numpy()
            pick = np.sort(labelled[draw])
            target = torch.from_numpy(np.asarray(train_labels[pick], dtype=np.int64)).to(device)
            loss = F.cross_entropy(logits(train_tokens[pick]), target, ignore_index=-1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    predictions = np.zeros((len(test_tokens), label_h, label_w), dtype=np.int16)
    with torch.no_grad():
        for start in range(0, len(test_tokens), 64):
            predictions[start : start + 64] = logits(test_tokens[start : start + 64]).argmax(1).cpu().numpy()
    return predictions


def _fpn_module(channels: int, levels: int, n_classes: int, hidden: int) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class FpnHead(nn.Module):
        """Feature pyramid head over ``levels`` feature maps given deepest first."""

        def __init__(self) -> None:
            super().__init__()
            self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(levels))
            self.laterals = nn.ModuleList(nn.Conv2d(channels, hidden, 1, bias=False) for _ in range(levels))
            self.smooth = nn.ModuleList(
                nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU())
                for _ in range(levels)
            )
            self.classify = nn.Conv2d(hidden * levels, n_classes, 1)

        def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
            laterals = [lateral(norm(m)) for m, norm, lateral in zip(maps, self.norms, self.laterals)]
            for i in range(len(laterals) - 1):  # top-down: each level adds the one above it
                above = F.interpolate(
                    laterals[i], size=laterals[i + 1].shape[-2:], mode="bilinear", align_corners=False
                )
                laterals[i + 1] = laterals[i + 1] + above
            outputs = [smooth(p) for p, smooth in zip(laterals, self.smooth)]
            finest = outputs[-1].shape[-2:]
            outputs = [
                o if o.shape[-2:] == finest else F.interpolate(o, size=finest, mode="bilinear", align_corners=False)
                for o in outputs
            ]
            return self.classify(torch.cat(outputs, dim=1))

    return FpnHead()


def fpn_head_probe(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    test_tokens: np.ndarray,
    grid: tuple[int, int],
    label_px_per_token: float,
    n_classes: int,
    seed: int = 0,
    epochs: int = FPN_EPOCHS,
    batch_size: int = FPN_BATCH,
    lr: float = FPN_LR,
    hidden: int = FPN_HIDDEN,
    device: Any = "cpu",
) -> np.ndarray:
    """Train the FPN head on block tokens (N, levels, rows*cols, D), levels in block order
    (shallowest first); test predictions (N, H, W) int16."""
    import torch
    import torch.nn.functional as F

    if train_tokens.ndim != 4 or test_tokens.ndim != 4:
        raise InputError(f"seg-fpn: block tokens of shape {train_tokens.shape}, expected (N, levels, tokens, dim)")
    device = torch.device(device)
    rows, cols = grid
    levels, dim = train_tokens.shape[1], train_tokens.shape[3]
    label_h, label_w = train_labels.shape[1:]
    up = _upsampled_size(grid, (label_h, label_w), label_px_per_token)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = _fpn_module(dim, levels, n_classes, hidden)
    head.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=FPN_MIN_LR)

    def logits(tokens: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(tokens, dtype=np.float32)).to(device)  # (B, L, T, D)
        maps = [x[:, level].transpose(1, 2).reshape(x.shape[0], dim, rows, cols) for level in range(levels)]
        out = F.interpolate(head(maps[::-1]), size=up, mode="bilinear", align_corners=False)
        return out[:, :, :label_h, :label_w]

    labelled = _labelled(train_labels)
    with torch.enable_grad():
        for _ in range(epochs):
            head.train()
            order = labelled[torch.randperm(len(labelled), generator=generator).numpy()]
            for start in range(0, len(order), batch_size):
                pick = np.sort(order[start : start + batch_size])
                target = torch.from_numpy(np.asarray(train_labels[pick], dtype=np.int64)).to(device)
                loss = F.cross_entropy(logits(train_tokens[pick]), target, ignore_index=-1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            schedule.step()

    head.eval()
    predictions = np.zeros((len(test_tokens), label_h, label_w), dtype=np.int16)
    with torch.no_grad():
        for start in range(0, len(test_tokens), batch_size):
            predictions[start : start + batch_size] = (
                logits(test_tokens[start : start + batch_size]).argmax(1).cpu().numpy()
            )
    return predictions
