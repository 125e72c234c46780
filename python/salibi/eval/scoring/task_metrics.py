"""The metrics of ``salibi eval geobench``, computable on any bootstrap resample of the test set.

Every metric is a function of the test samples' truth and the protocol's output, and is
evaluated for many resamples at once from a matrix of sample *weights* ``(R, N)`` (how often
each test sample occurs in each resample; all ones is the test set itself). Decomposable
metrics reduce per-sample statistics, so a resample costs one matrix product:

========================  ===============  ==================================================
metric                    task kinds       definition
========================  ===============  ==================================================
``accuracy``              classification   share of samples whose class is predicted
``f1_micro``              multilabel       2TP / (2TP + FP + FN) over all (sample, class) pairs
                                           at threshold 0.5 (GEO-Bench's official metric)
``map_micro``             multilabel       average precision of the scores over all
                                           (sample, class) pairs, as scikit-learn's
                                           ``average_precision_score(average="micro")``
``f1_macro``              multilabel       mean over classes of the per-class F1 (a class
                                           with no TP, FP and FN scores 0)
``miou``                  segmentation     mean over classes of TP / (TP + FP + FN) from the
                                           confusion matrix accumulated over all test pixels;
                                           classes absent from truth and prediction do not
                                           count; pixels labelled < 0 are ignored (as
                                           torchmetrics' ``MulticlassJaccardIndex``, macro)
``pixel_accuracy``        segmentation     share of labelled pixels predicted right
========================  ===============  ==================================================

``prediction`` is a class index per sample ``(N,)``, a multi-hot matrix ``(N, C)`` or a
class map ``(N, H, W)``; ``map_micro`` reads ``score`` ``(N, C)`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from salibi.errors import InputError

__all__ = [
    "HEADLINE_METRIC",
    "METRICS",
    "METRICS_BY_KIND",
    "Metric",
    "accuracy",
    "f1_macro",
    "f1_micro",
    "headline_metric",
    "map_micro",
    "mean_iou",
    "metric_replicates",
    "metric_value",
    "pixel_accuracy",
]

#: The metric each kind of task is ranked by (GEO-Bench's official ones).
HEADLINE_METRIC = {"classification": "accuracy", "multilabel": "f1_micro", "segmentation": "miou"}
#: What documents of format version 1 ranked multi-label tasks by.
FORMER_HEADLINE_METRIC = "f1_macro"
#: Every metric reported for each kind of task, headline first.
METRICS_BY_KIND = {
    "classification": ("accuracy",),
    "multilabel": ("f1_micro", "map_micro", "f1_macro"),
    "segmentation": ("miou", "pixel_accuracy"),
}


def headline_metric(metrics: Mapping[str, float | None], kind: str = "") -> tuple[str, float] | None:
    """The headline metric of one run's or one protocol summary's ``metrics`` and its value: the
    :data:`HEADLINE_METRIC` of ``kind`` when the kind is known, else the first of every kind's
    (accuracy, f1_micro, miou; then f1_macro, as older documents ranked multi-label tasks) that
    ``metrics`` holds with a finite value; None when there is none."""
    if kind in HEADLINE_METRIC:
        names: tuple[str, ...] = (HEADLINE_METRIC[kind],)
    else:
        names = (*HEADLINE_METRIC.values(), FORMER_HEADLINE_METRIC)
    for name in names:
        value = metrics.get(name)
        if value is not None and math.isfinite(value):
            return name, float(value)
    return None


# Samples per chunk when counting segmentation confusion matrices (bounds the index arrays).
_PIXEL_CHUNK = 1 << 22


@dataclass(frozen=True)
class Metric:
    """One metric: ``statistics`` per sample ``(N, K)`` and ``reduce`` of their weighted sums
    ``(R, K) -> (R,)``; or, when it does not decompose, ``weighted(truth, output, weights)``."""

    name: str
    reads: str  # "prediction" or "score"
    statistics: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None
    reduce: Callable[[np.ndarray, int], np.ndarray] | None = None
    weighted: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


def _divide(numerator: np.ndarray, denominator: np.ndarray, empty: float = 0.0) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# -- per-sample statistics ----------------------------------------------------------------


def _correct(truth: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    truth, prediction = np.asarray(truth).reshape(-1), np.asarray(prediction).reshape(-1)
    if truth.shape != prediction.shape:
        raise InputError(f"truth has {truth.shape[0]} samples, the prediction {prediction.shape[0]}")
    return np.stack([(truth == prediction).astype(np.float64), np.ones(truth.shape[0])], axis=1)


def _counts_per_class(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    if truth.shape != prediction.shape or truth.ndim != 2:
        raise InputError(f"multi-label truth {truth.shape} and prediction {prediction.shape}: expected equal (N, C)")
    return truth & prediction, ~truth & prediction, truth & ~prediction


def _micro_counts(truth: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    tp, fp, fn = _counts_per_class(truth, prediction)
    return np.stack([tp.sum(1), fp.sum(1), fn.sum(1)], axis=1).astype(np.float64)


def _class_counts(truth: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    tp, fp, fn = _counts_per_class(truth, prediction)
    return np.concatenate([tp, fp, fn], axis=1).astype(np.float64)  # (N, 3C)


def confusion_per_sample(truth: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, C*C)`` confusion counts (row = truth, column = prediction) of each sample's
    labelled pixels (truth in ``0..C-1``; others are ignored)."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise InputError(f"segmentation truth {truth.shape} and prediction {prediction.shape} differ")
    count = truth.shape[0]
    pixels = int(np.prod(truth.shape[1:])) if truth.ndim > 1 else 1
    cells = n_classes * n_classes
    out = np.zeros((count, cells), dtype=np.float64)
    step = max(1, _PIXEL_CHUNK // max(1, pixels))
    for start in range(0, count, step):
        t = truth[start : start + step].reshape(-1, pixels).astype(np.int64)
        p = prediction[start : start + step].reshape(-1, pixels).astype(np.int64)
        keep = (t >= 0) & (t < n_classes) & (p >= 0) & (p < n_classes)
        sample = np.broadcast_to(np.arange(t.shape[0])[:, None], t.shape)
        index = sample[keep] * cells + t[keep] * n_classes + p[keep]
        out[start : start + t.shape[0]] = np.bincount(index, minlength=t.shape[0] * cells).reshape(-1, cells)
    return out


# -- reductions of summed statistics (leading axes are resamples) ---------------------------


def _reduce_accuracy(sums: np.ndarray, n_classes: int) -> np.ndarray:
    return _divide(sums[..., 0], sums[..., 1], empty=float("nan"))


def _reduce_f1_micro(sums: np.ndarray, n_classes: int) -> np.ndarray:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    return _divide(2 * tp, 2 * tp + fp + fn)


def _reduce_f1_macro(sums: np.ndarray, n_classes: int) -> np.ndarray:
    c = sums.shape[-1] // 3
    tp, fp, fn = sums[..., :c], sums[..., c : 2 * c], sums[..., 2 * c :]
    return _divide(2 * tp, 2 * tp + fp + fn).mean(axis=-1)


def _confusion(sums: np.ndarray, n_classes: int) -> np.ndarray:
    return sums.reshape(*sums.shape[:-1], n_classes, n_classes)


def _reduce_miou(sums: np.ndarray, n_classes: int) -> np.ndarray:
    confusion = _confusion(sums, n_classes)
    intersection = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(-1) + confusion.sum(-2) - intersection
    present = union > 0
    iou = _divide(intersection, union)
    return _divide((iou * present).sum(-1), present.sum(-1), empty=float("nan"))


def _reduce_pixel_accuracy(sums: np.ndarray, n_classes: int) -> np.ndarray:
    confusion = _confusion(sums, n_classes)
    return _divide(np.trace(confusion, axis1=-2, axis2=-1), confusion.sum((-2, -1)), empty=float("nan"))


# -- micro average precision (does not decompose: a weighted ranking) ----------------------


def _map_micro_weighted(truth: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Micro-averaged AP of ``score`` for each row of sample ``weights`` (R, N): the ranking
    of all (sample, class) pairs by score, tied scores forming one threshold, as scikit-learn."""
    truth, score = np.asarray(truth, dtype=np.float64), np.asarray(score, dtype=np.float64)
    if truth.shape != score.shape or truth.ndim != 2:
        raise InputError(f"multi-label truth {truth.shape} and scores {score.shape}: expected equal (N, C)")
    classes = truth.shape[1]
    flat_score, flat_truth = score.reshape(-1), truth.reshape(-1)
    order = np.argsort(-flat_score, kind="stable")
    flat_score, flat_truth = flat_score[order], flat_truth[order]
    sample_of = order // max(1, classes)
    last_of_tie = np.r_[np.flatnonzero(np.diff(flat_score)), flat_score.size - 1]
    out = np.empty(weights.shape[0], dtype=np.float64)
    for start in range(0, weights.shape[0], 32):  # bounded memory: 32 resamples at a time
        w = weights[start : start + 32][:, sample_of]
        tp = np.cumsum(w * flat_truth, axis=1)[:, last_of_tie]
        fp = np.cumsum(w * (1 - flat_truth), axis=1)[:, last_of_tie]
        positives = tp[:, -1:]
        recall = _divide(tp, positives)
        precision = _divide(tp, tp + fp)
        gain = np.diff(np.concatenate([np.zeros((w.shape[0], 1)), recall], axis=1), axis=1)
        ap = (gain * precision).sum(1)
        out[start : start + 32] = np.where(positives[:, 0] > 0, ap, np.nan)
    return out


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "prediction", _correct, _reduce_accuracy),
    "f1_micro": Metric("f1_micro", "prediction", _micro_counts, _reduce_f1_micro),
    "map_micro": Metric("map_micro", "score", weighted=_map_micro_weighted),
    "f1_macro": Metric("f1_macro", "prediction", _class_counts, _reduce_f1_macro),
    "miou": Metric("miou", "prediction", confusion_per_sample, _reduce_miou),
    "pixel_accuracy": Metric("pixel_accuracy", "prediction", confusion_per_sample, _reduce_pixel_accuracy),
}


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InputError(f"unknown metric {name!r}; choose among {', '.join(METRICS)}") from None


def metric_replicates(
    name: str, truth: np.ndarray, output: np.ndarray, weights: np.ndarray, n_classes: int = 0
) -> np.ndarray:
    """The metric ``name`` on each resample: ``weights`` (R, N) counts of each test sample.

    ``output`` is the prediction, or the score for metrics that read scores (``map_micro``).
    A resample where the metric is undefined (no positive label for ``map_micro``, no
    labelled pixel) gives NaN.
    """
    metric = _metric(name)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != len(truth):
        raise InputError(f"{weights.shape[1]} resampling weights for {len(truth)} test samples")
    if metric.weighted is not None:
        return metric.weighted(truth, output, weights)
    assert metric.statistics is not None
    statistics = metric.statistics(truth, output, n_classes)
    sums = weights @ statistics
    assert metric.reduce is not None
    return metric.reduce(sums, n_classes)


def metric_value(name: str, truth: np.ndarray, output: np.ndarray, n_classes: int = 0) -> float:
    """The metric ``name`` on the whole test set (NaN when undefined, e.g. no test sample)."""
    if len(truth) == 0:
        return float("nan")
    return float(metric_replicates(name, truth, output, np.ones((1, len(truth))), n_classes)[0])


# Plain functions of the whole test set, for callers who want one number.


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    return metric_value("accuracy", np.asarray(truth), np.asarray(predicted))


def f1_micro(truth: np.ndarray, predicted: np.ndarray) -> float:
    return metric_value("f1_micro", np.asarray(truth), np.asarray(predicted))


def f1_macro(truth: np.ndarray, predicted: np.ndarray) -> float:
    return metric_value("f1_macro", np.asarray(truth), np.asarray(predicted))


def map_micro(truth: np.ndarray, score: np.ndarray) -> float:
    return metric_value("map_micro", np.asarray(truth), np.asarray(score))


def mean_iou(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.ndim < 2:  # one flat image
        truth, predicted = truth[None], predicted[None]
    return metric_value("miou", truth, predicted, n_classes)


def pixel_accuracy(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.ndim < 2:
        truth, predicted = truth[None], predicted[None]
    return metric_value("pixel_accuracy", truth, predicted, n_classes)
