"""Uncertainty of evaluation numbers: bootstrap intervals over test samples, and GEO-Bench's
interquartile-mean aggregation.

::

    from salibi.eval.scoring.bootstrap import bootstrap_interval, paired_bootstrap_difference
    accuracy = bootstrap_interval("accuracy", truth, predicted)          # Interval(value, low, high)
    gain = paired_bootstrap_difference("miou", truth, new, old, n_classes=7)  # same resamples for both

- :func:`bootstrap_interval`: the metric on the whole test set and the 95 % percentile
  interval of the metric over ``resamples`` (default 200) resamples of the test samples drawn
  with replacement by ``numpy.random.default_rng(seed)`` (seed 0): the resampling
  torchgeo-bench reports as ``ci_lower``/``ci_upper``. Segmentation resamples whole images.
- :func:`paired_bootstrap_difference`: the interval of ``metric(a) - metric(b)`` with both
  outputs scored on the *same* resamples; an interval excluding 0 is a difference the test set
  can tell apart (what an ablation needs).
- :func:`iqm` and :func:`stratified_bootstrap_iqm`: the interquartile mean (scipy's
  ``trim_mean(x, 0.25)``: the lowest and highest ``floor(n/4)`` values dropped) and its
  stratified bootstrap as in GEO-Bench's ``plot_tools.bootstrap_iqm_aggregate``.

``metric`` is a name of :data:`salibi.eval.scoring.task_metrics.METRICS` (fast: resamples are weights on
per-sample statistics) or any ``callable(truth, output) -> float`` (evaluated per resample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from salibi.errors import InputError
from salibi.eval.scoring.task_metrics import metric_replicates

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "CONFIDENCE_LABEL",
    "Interval",
    "bootstrap_interval",
    "bootstrap_replicates",
    "iqm",
    "paired_bootstrap_difference",
    "percentile_interval",
    "resample_weights",
    "stratified_bootstrap_iqm",
]

BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
#: How tables and charts name it: "95 %".
CONFIDENCE_LABEL = f"{round(CONFIDENCE * 100)} %"
AGGREGATE_REPEATS = 100

MetricLike = str | Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A point value and its interval; ``replicates`` are the bootstrap values it came from."""

    value: float
    low: float
    high: float
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def resample_weights(count: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(resamples, count)``: how often each of ``count`` samples is drawn in each resample.

    Resample ``r`` draws ``count`` indices with ``default_rng(seed).integers(0, count, (resamples,
    count))[r]``, so two evaluations of the same test set share their resamples.
    """
    if count <= 0:
        return np.zeros((resamples, 0))
    draws = np.random.default_rng(seed).integers(0, count, size=(resamples, count))
    offsets = (np.arange(resamples) * count)[:, None]
    return np.bincount((draws + offsets).reshape(-1), minlength=resamples * count).reshape(resamples, count)


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of the finite ``replicates`` (NaN when none)."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _replicates_of(
    metric: MetricLike, truth: np.ndarray, output: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    if isinstance(metric, str):
        return metric_replicates(metric, truth, output, weights, n_classes)
    values = np.empty(len(weights))
    for r, counts in enumerate(weights):
        index = np.repeat(np.arange(len(truth)), counts.astype(np.int64))
        values[r] = metric(truth[index], output[index])
    return values


def _point(metric: MetricLike, truth: np.ndarray, output: np.ndarray, n_classes: int) -> float:
    if len(truth) == 0:
        return float("nan")
    return float(_replicates_of(metric, truth, output, np.ones((1, len(truth))), n_classes)[0])


def bootstrap_replicates(
    metric: MetricLike,
    truth: np.ndarray,
    output: np.ndarray,
    n_classes: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """The metric on each of the ``resamples`` test-set resamples (see :func:`resample_weights`)."""
    truth, output = np.asarray(truth), np.asarray(output)
    if len(truth) != len(output):
        raise InputError(f"{len(truth)} test labels but {len(output)} predictions")
    return _replicates_of(metric, truth, output, resample_weights(len(truth), resamples, seed), n_classes)


def bootstrap_interval(
    metric: MetricLike,
    truth: np.ndarray,
    output: np.ndarray,
    n_classes: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The metric on the whole test set and its percentile bootstrap interval."""
    truth, output = np.asarray(truth), np.asarray(output)
    replicates = bootstrap_replicates(metric, truth, output, n_classes, resamples, seed)
    low, high = percentile_interval(replicates, confidence)
    return Interval(_point(metric, truth, output, n_classes), low, high, replicates)


def paired_bootstrap_difference(
    metric: MetricLike,
    truth: np.ndarray,
    output_a: np.ndarray,
    output_b: np.ndarray,
    n_classes: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """``metric(a) - metric(b)`` on the test set and the interval of that difference over
    resamples shared by both (paired: the test samples' own difficulty cancels)."""
    truth, output_a, output_b = np.asarray(truth), np.asarray(output_a), np.asarray(output_b)
    if not (len(truth) == len(output_a) == len(output_b)):
        raise InputError(f"paired bootstrap: {len(truth)} labels, {len(output_a)} and {len(output_b)} predictions")
    weights = resample_weights(len(truth), resamples, seed)
    replicates = _replicates_of(metric, truth, output_a, weights, n_classes) - _replicates_of(
        metric, truth, output_b, weights, n_classes
    )
    low, high = percentile_interval(replicates, confidence)
    value = _point(metric, truth, output_a, n_classes) - _point(metric, truth, output_b, n_classes)
    return Interval(value, low, high, replicates)


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean after dropping the ``floor(n/4)`` lowest and highest values
    (scipy's ``trim_mean(values, 0.25)``, which GEO-Bench uses). NaN for no value."""
    array = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if array.size == 0:
        return float("nan")
    cut = int(0.25 * array.size)
    return float(array[cut : array.size - cut].mean())


def seed_summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (ddof 0, as numpy) and IQM of one metric over seeds."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "iqm": iqm(array)}


def stratified_bootstrap_iqm(
    strata: Mapping[str, Sequence[float]],
    repeats: int = AGGREGATE_REPEATS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
    replicates: Mapping[str, Sequence[np.ndarray | None]] | None = None,
) -> Interval:
    """IQM of every value of every stratum (task), and its stratified bootstrap interval.

    Each of ``repeats`` repeats redraws, within each stratum, as many values as it has with
    replacement (GEO-Bench resamples seeds within each dataset), then takes the IQM of them all.
    With ``replicates`` (per stratum, per value: that run's test-sample bootstrap values), the
    value drawn in repeat ``r`` is its ``r``-th replicate instead of its point value, so a
    stratum of one deterministic run still carries its test-set uncertainty.
    """
    names = [name for name, values in strata.items() if len(values)]
    if not names:
        return Interval(float("nan"), float("nan"), float("nan"))
    point = iqm(np.concatenate([np.asarray(strata[n], dtype=np.float64) for n in names]))
    rng = np.random.default_rng(seed)
    draws = np.empty(repeats)
    for r in range(repeats):
        pooled: list[float] = []
        for name in names:
            values = np.asarray(strata[name], dtype=np.float64)
            chosen = rng.integers(0, len(values), size=len(values))
            for i in chosen:
                extra = replicates.get(name) if replicates else None
                series = extra[i] if extra is not None and i < len(extra) else None
                if series is not None and len(series):
                    value = float(series[r % len(series)])
                    pooled.append(value if math.isfinite(value) else float(values[i]))
                else:
                    pooled.append(float(values[i]))
        draws[r] = iqm(pooled)
    low, high = percentile_interval(draws, confidence)
    return Interval(point, low, high, draws)
