"""Frozen-encoder protocols and their metrics.

- ``knn``: k = 20 nearest training features by cosine similarity, each voting with its
  similarity (multi-label: the similarity-weighted mean of the neighbours' label vectors,
  thresholded at 0.5). Deterministic.
- ``linear``: logistic regression on standardised pooled features; the inverse
  regularisation ``C`` is chosen from a log-spaced sweep by the validation metric, then the
  model fitted on the training split is scored on the test split. Multi-label: one
  classifier per class (one-vs-rest).
- ``seg``: a linear layer on standardised frozen patch tokens, its logits upsampled
  (bilinear) to pixels, trained with cross-entropy for a fixed number of steps (AdamW,
  batches drawn with the seed); pixels labelled outside ``0..n_classes-1`` are ignored.

Metrics: ``accuracy`` (classification), ``f1_macro`` at threshold 0.5 (multi-label),
``miou`` (mean over classes present in the test labels or predictions of the per-class
intersection over union) and ``pixel_accuracy`` (segmentation).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = [
    "KNN_K",
    "LINEAR_C_GRID",
    "SEG_STEPS",
    "accuracy",
    "f1_macro",
    "knn_predict",
    "linear_probe",
    "mean_iou",
    "segmentation_probe",
]

KNN_K = 20
LINEAR_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SEG_STEPS = 300
SEG_BATCH = 16
SEG_LR = 1e-2


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float((truth == predicted).mean()) if truth.size else float("nan")


def f1_macro(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Macro F1 of multi-hot (N, C) arrays; a class absent from both scores 0 (sklearn's zero_division=0)."""
    truth, predicted = np.asarray(truth).astype(bool), np.asarray(predicted).astype(bool)
    tp = (truth & predicted).sum(axis=0)
    fp = (~truth & predicted).sum(axis=0)
    fn = (truth & ~predicted).sum(axis=0)
    denominator = 2 * tp + fp + fn
    scores = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return float(scores.mean())


def mean_iou(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Mean IoU over the classes present in ``truth`` or ``predicted``; pixels with truth < 0 are ignored."""
    truth, predicted = np.asarray(truth).reshape(-1), np.asarray(predicted).reshape(-1)
    keep = (truth >= 0) & (truth < n_classes)
    truth, predicted = truth[keep].astype(np.int64), predicted[keep].astype(np.int64)
    confusion = np.bincount(truth * n_classes + predicted, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float((intersection[present] / union[present]).mean()) if present.any() else float("nan")


# -- chance reference ---------------------------------------------------------------------


def majority_predict(train_labels: np.ndarray, test_labels: np.ndarray, kind: str) -> np.ndarray:
    """What a model that ignores its input predicts: the most frequent training class for
    every sample (classification) or pixel (segmentation; no-data pixels < 0 not counted), or
    each label that is present in most training samples (multi-label). Same shape as
    ``test_labels``: the reference the frozen-encoder scores should beat."""
    train = np.asarray(train_labels)
    if kind == "multilabel":
        common = train.astype(bool).mean(axis=0) > 0.5
        return np.broadcast_to(common, np.shape(test_labels)).astype(train.dtype)
    values = train.reshape(-1)
    values = values[values >= 0]
    counts = np.bincount(values.astype(np.int64))
    return np.full(np.shape(test_labels), int(np.argmax(counts)), dtype=np.int64)


# -- kNN ----------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    kind: str,
    n_classes: int,
    k: int = KNN_K,
    chunk: int = 1024,
) -> np.ndarray:
    """Similarity-weighted kNN votes: class indices (N,), or multi-hot (N, C) for ``multilabel``."""
    train_u, test_u = _unit(train_x), _unit(test_x)
    k = max(1, min(k, len(train_u)))
    if kind == "multilabel":
        targets = np.asarray(train_y, dtype=np.float32)
    else:
        targets = np.eye(n_classes, dtype=np.float32)[np.asarray(train_y, dtype=np.int64)]
    out = []
    for start in range(0, len(test_u), chunk):  # bounded memory for large splits
        sims = test_u[start : start + chunk] @ train_u.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None)  # negative similarity: no vote
        votes = np.einsum("nk,nkc->nc", weights, targets[top])
        if kind == "multilabel":
            out.append((votes / np.maximum(weights.sum(1, keepdims=True), 1e-12) >= 0.5).astype(np.int8))
        else:
            out.append(votes.argmax(1))
    if not out:
        return np.zeros((0, n_classes) if kind == "multilabel" else (0,), dtype=np.int64)
    return np.concatenate(out)


# -- linear probe -------------------------------------------------------------------------


def _score(kind: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    return f1_macro(truth, predicted) if kind == "multilabel" else accuracy(truth, predicted)


def _fit_logistic(kind: str, x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    model: Any = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    if kind == "multilabel":
        model = OneVsRestClassifier(model)
    with warnings.catch_warnings():
        # A class missing from the training split of one-vs-rest, or a sweep value that
        # stops at max_iter, is expected in a sweep; the validation score judges the result.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.fit(x, y)
    return model


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    kind: str,
    seed: int = 0,
    c_grid: tuple[float, ...] = LINEAR_C_GRID,
) -> tuple[np.ndarray, float]:
    """Test predictions of the logistic regression whose ``C`` scored best on ``valid``, and that ``C``."""
    (train_x, train_y), (valid_x, valid_y), (test_x, _) = train, valid, test
    mean = train_x.mean(0, keepdims=True)
    std = train_x.std(0, keepdims=True) + 1e-6
    train_x, valid_x, test_x = (train_x - mean) / std, (valid_x - mean) / std, (test_x - mean) / std
    labels = np.unique(train_y) if kind != "multilabel" else None
    if labels is not None and len(labels) < 2:
        # One class in training: the only sensible linear model predicts it.
        return np.full(len(test_x), labels[0] if len(labels) else 0, dtype=np.int64), float("nan")
    best: tuple[float, float, Any] | None = None
    for c in c_grid:
        model = _fit_logistic(kind, train_x, train_y, c, seed)
        score = _score(kind, valid_y, _predict(model, valid_x, kind)) if len(valid_x) else 0.0
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None
    return _predict(best[2], test_x, kind), best[1]


def _predict(model: Any, x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "multilabel":
        return (model.predict_proba(x) >= 0.5).astype(np.int8)
    return model.predict(x)


# -- segmentation head --------------------------------------------------------------------


def segmentation_probe(
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
    up = (max(label_h, round(rows * label_px_per_token)), max(label_w, round(cols * label_px_per_token)))
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

    labelled = np.flatnonzero((np.asarray(train_labels) >= 0).reshape(len(train_labels), -1).any(1))
    if len(labelled) == 0:
        raise ValueError("no labelled pixels in the training split")
    for _ in range(steps):
        pick = labelled[torch.randint(len(labelled), (min(batch_size, len(labelled)),), generator=generator).numpy()]
        pick = np.sort(pick)
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
