"""Bootstrap intervals, paired differences and GEO-Bench's IQM aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean
from sklearn.metrics import average_precision_score

from salibi.eval.scoring import bootstrap as U


def _explicit_bootstrap(metric, truth, output, resamples=200, seed=0):
    """The textbook loop: draw n indices with replacement, score, repeat; percentiles 2.5 / 97.5."""
    draws = np.random.default_rng(seed).integers(0, len(truth), size=(resamples, len(truth)))
    values = np.array([metric(truth[i], output[i]) for i in draws])
    return np.percentile(values, [2.5, 97.5]), values


def test_weights_count_the_draws():
    weights = U.resample_weights(7, 50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(1) == 7).all()
    draws = np.random.default_rng(3).integers(0, 7, size=(50, 7))
    assert (weights[10] == np.bincount(draws[10], minlength=7)).all()


def test_accuracy_interval_equals_the_explicit_bootstrap():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 80)
    predicted = np.where(rng.random(80) < 0.7, truth, rng.integers(0, 3, 80))
    interval = U.bootstrap_interval("accuracy", truth, predicted)
    (low, high), values = _explicit_bootstrap(lambda t, p: (t == p).mean(), truth, predicted)
    assert interval.value == pytest.approx((truth == predicted).mean())
    assert (interval.low, interval.high) == pytest.approx((low, high))
    np.testing.assert_allclose(interval.replicates, values)
    assert interval.low < interval.value < interval.high


def test_map_interval_equals_the_explicit_bootstrap():
    rng = np.random.default_rng(1)
    truth = (rng.random((40, 6)) < 0.3).astype(int)
    scores = np.clip(truth * 0.4 + rng.random((40, 6)) * 0.7, 0, 1)
    interval = U.bootstrap_interval("map_micro", truth, scores, resamples=60)
    (low, high), _ = _explicit_bootstrap(
        lambda t, s: average_precision_score(t, s, average="micro"), truth, scores, resamples=60
    )
    assert (interval.low, interval.high) == pytest.approx((low, high))


def test_callable_metric_and_segmentation_resample_whole_images():
    rng = np.random.default_rng(2)
    truth, predicted = rng.integers(0, 2, (12, 5, 5)), rng.integers(0, 2, (12, 5, 5))

    def pixel_accuracy(t, p):
        return (t == p).mean()

    by_name = U.bootstrap_interval("pixel_accuracy", truth, predicted, n_classes=2)
    by_callable = U.bootstrap_interval(pixel_accuracy, truth, predicted)
    assert (by_name.low, by_name.high) == pytest.approx((by_callable.low, by_callable.high))


def test_paired_difference_uses_the_same_resamples():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 100)
    a = np.where(rng.random(100) < 0.9, truth, 1 - truth)
    b = a.copy()
    b[:10] = 1 - b[:10]  # b is a with ten answers flipped
    difference = U.paired_bootstrap_difference("accuracy", truth, a, b)
    expected = (a == truth).mean() - (b == truth).mean()
    assert difference.value == pytest.approx(expected)
    alone_a = U.bootstrap_replicates("accuracy", truth, a)
    alone_b = U.bootstrap_replicates("accuracy", truth, b)
    np.testing.assert_allclose(difference.replicates, alone_a - alone_b)
    # Paired, the interval is much narrower than the two separate intervals suggest.
    assert difference.high - difference.low < 0.5 * (np.ptp(alone_a) + np.ptp(alone_b))
    identical = U.paired_bootstrap_difference("accuracy", truth, a, a)
    assert identical.value == identical.low == identical.high == 0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 11])
def test_iqm_is_scipys_trim_mean(n):
    values = np.random.default_rng(n).normal(size=n)
    assert U.iqm(values) == pytest.approx(trim_mean(values, 0.25))


def test_stratified_bootstrap_iqm():
    strata = {"a": [0.5, 0.52, 0.54], "b": [0.8, 0.81, 0.79], "c": [0.2, 0.3, 0.25]}
    interval = U.stratified_bootstrap_iqm(strata, repeats=100, seed=0)
    assert interval.value == pytest.approx(U.iqm(sum(strata.values(), [])))
    assert interval.low <= interval.value <= interval.high
    again = U.stratified_bootstrap_iqm(strata, repeats=100, seed=0)
    np.testing.assert_array_equal(interval.replicates, again.replicates)
    # One run per stratum and no replicates: nothing to redraw, the interval is the point.
    single = U.stratified_bootstrap_iqm({"a": [0.5], "b": [0.7]})
    assert single.low == single.high == single.value == pytest.approx(0.6)
    # With each run's test-set replicates, a deterministic protocol gets an interval.
    spread = U.stratified_bootstrap_iqm({"a": [0.5], "b": [0.7]}, replicates={"a": [[0.4, 0.6]], "b": [[0.6, 0.8]]})
    assert spread.low < spread.value < spread.high
