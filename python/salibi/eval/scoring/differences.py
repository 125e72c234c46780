"""Values and paired differences of evaluation results, over pretraining seeds and test samples.

Every run of ``salibi eval geobench`` stores, per metric, its value on the whole test split and
its *replicates*: the metric on each of the same 200 resamples of the test samples
(:func:`salibi.eval.scoring.bootstrap.resample_weights`: drawn by ``default_rng(0)`` from the number of
test samples alone). Two evaluations of the same test split therefore share their resamples, and
``replicates_a - replicates_b`` is the paired bootstrap of ``metric(a) - metric(b)``
(:func:`salibi.eval.scoring.bootstrap.paired_bootstrap_difference`, without recomputing predictions).

Over several pretraining seeds (seed ``s`` of a variant starts from the same weights, data order
and masks as seed ``s`` of the reference), a value is the mean over seeds and its interval comes
from a two-level bootstrap: replicate ``r`` draws the seeds with replacement (``default_rng(0)``)
and averages their ``r``-th test-sample replicate. A difference pairs seed ``s`` with seed ``s``
the same way. With one seed both reduce to the plain (paired) bootstrap over test samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.errors import DataFormatError
from salibi.eval.scoring.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, Interval, percentile_interval

__all__ = ["RunResult", "combine_seeds", "paired_difference", "run_result", "variant_value"]


def _nanmean(values: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` without the warning for all-NaN slices (a metric undefined on every resample)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


@dataclass(frozen=True)
class RunResult:
    """One metric of one (task, protocol) in one results document."""

    value: float
    replicates: np.ndarray  # (R,) the metric on each test-sample resample (NaN where undefined)
    n_test: int
    bootstrap: tuple[Any, ...]  # the document's resampling settings, to check that two results pair


def run_result(document: Mapping[str, Any], task: str, protocol: str, metric: str) -> RunResult | None:
    """The ``metric`` of ``protocol`` on ``task`` in a results document (its headline partition;
    the mean over evaluation seeds when there are several); None when the document has no such run."""
    partition = document.get("partition", "default")
    runs = [
        r
        for r in document.get("runs", [])
        if r.get("task") == task and r.get("protocol") == protocol and r.get("partition") == partition
    ]
    runs = [r for r in runs if metric in r.get("metrics", {})]
    if not runs:
        return None
    series = [r.get("replicates", {}).get(metric) for r in runs]
    if not all(series) or len({len(s) for s in series}) != 1:
        raise DataFormatError(
            f"results of {document.get('checkpoint', '?')}: {task} {protocol} {metric} has no bootstrap replicates; "
            "evaluate again with this salibi (salibi eval geobench --overwrite)"
        )
    table = np.array([[np.nan if v is None else float(v) for v in s] for s in series], dtype=np.float64)
    values = np.array([np.nan if r["metrics"][metric] is None else r["metrics"][metric] for r in runs], dtype=float)
    sizes = {int(r.get("n_test", -1)) for r in runs}
    bootstrap = document.get("bootstrap", {})
    key = (bootstrap.get("resamples"), bootstrap.get("seed"), bootstrap.get("over"))
    return RunResult(float(_nanmean(values)), _nanmean(table, axis=0), sizes.pop(), key)


def _seed_draws(seeds: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, seeds)`` seed indices drawn with replacement per replicate (identity for one seed)."""
    if seeds == 1:
        return np.zeros((resamples, 1), dtype=np.int64)
    return np.random.default_rng(seed).integers(0, seeds, size=(resamples, seeds))


def _over_seeds(points: np.ndarray, replicates: np.ndarray, seed: int, confidence: float) -> Interval:
    """Mean of ``points`` (S,) and the interval of the seed-and-sample bootstrap of ``replicates`` (S, R)."""
    draws = _seed_draws(len(points), replicates.shape[1], seed)
    columns = np.arange(replicates.shape[1])[:, None]
    combined = _nanmean(replicates.T[columns, draws], axis=1) if replicates.size else np.zeros(0)
    low, high = percentile_interval(combined, confidence)
    return Interval(float(_nanmean(points)), low, high, combined)


def _check_pairable(results: Sequence[RunResult], what: str) -> None:
    keys = {(r.n_test, len(r.replicates), r.bootstrap) for r in results}
    if len(keys) > 1:
        raise DataFormatError(
            f"{what}: the results were not computed on the same test samples and resamples "
            f"(test samples, resamples, bootstrap settings: {sorted(map(str, keys))}); evaluate every run on "
            "the same tasks with the same salibi"
        )


def combine_seeds(results: Sequence[RunResult], seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Interval:
    """A variant's value over its pretraining seeds (one :class:`RunResult` per seed): the mean,
    and the interval of the bootstrap over seeds and test samples."""
    if not results:
        raise ValueError("combine_seeds needs at least one result")
    _check_pairable(results, "combine_seeds")
    points = np.array([r.value for r in results], dtype=np.float64)
    return _over_seeds(points, np.stack([r.replicates for r in results]), seed, confidence)


def paired_difference(
    results: Sequence[RunResult],
    reference: Sequence[RunResult],
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Interval:
    """``mean over seeds of (a_s - ref_s)`` with its paired interval: seed ``s`` of ``results``
    pairs with seed ``s`` of ``reference`` (same length, same order), and within a seed both were
    scored on the same test-sample resamples."""
    if len(results) != len(reference) or not results:
        raise ValueError(f"paired_difference: {len(results)} results against {len(reference)} references")
    _check_pairable([*results, *reference], "paired difference")
    points = np.array([a.value - b.value for a, b in zip(results, reference)], dtype=np.float64)
    replicates = np.stack([a.replicates - b.replicates for a, b in zip(results, reference)])
    return _over_seeds(points, replicates, seed, confidence)


def variant_value(documents: Sequence[Mapping[str, Any]], task: str, protocol: str, metric: str) -> Interval | None:
    """:func:`combine_seeds` over one results document per seed; None when a document lacks the run."""
    results = [run_result(d, task, protocol, metric) for d in documents]
    if not results or any(r is None for r in results):
        return None
    return combine_seeds([r for r in results if r is not None])
