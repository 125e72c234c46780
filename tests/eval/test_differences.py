"""Values and paired differences from stored bootstrap replicates: cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from salibi.errors import DataFormatError
from salibi.eval.scoring.bootstrap import bootstrap_interval, paired_bootstrap_difference, resample_weights
from salibi.eval.scoring.differences import combine_seeds, paired_difference, run_result


def _document(truth: np.ndarray, predicted: np.ndarray, task: str = "t", protocol: str = "knn") -> dict:
    """A results document holding one classification run, as salibi eval geobench stores it."""
    scored = bootstrap_interval("accuracy", truth, predicted)
    return {
        "checkpoint": "c",
        "partition": "default",
        "bootstrap": {"resamples": 200, "seed": 0, "confidence": 0.95, "over": "test samples"},
        "runs": [
            {
                "task": task,
                "protocol": protocol,
                "partition": "default",
                "seed": 0,
                "kind": "classification",
                "metrics": {"accuracy": scored.value},
                "intervals": {"accuracy": [scored.low, scored.high]},
                "replicates": {"accuracy": [round(float(v), 5) for v in scored.replicates]},
                "n_test": len(truth),
            }
        ],
    }


def _pair(truth, a, b):
    return run_result(_document(truth, a), "t", "knn", "accuracy"), run_result(
        _document(truth, b), "t", "knn", "accuracy"
    )


def test_one_differing_sample_is_its_resample_count_over_n_and_no_difference():
    """a and b differ on one of 100 samples, where a is right: each paired replicate is exactly how
    often that sample was drawn, over 100; the interval includes 0 (a third of resamples miss it)."""
    n = 100
    truth = np.zeros(n, dtype=np.int64)
    b = np.ones(n, dtype=np.int64)
    b[:50] = 0  # b right on the first 50
    a = b.copy()
    a[77] = 0  # a also right on sample 77
    mine, theirs = _pair(truth, a, b)
    delta = paired_difference([mine], [theirs])
    counts = resample_weights(n)[:, 77]
    assert delta.value == pytest.approx(0.01)
    np.testing.assert_allclose(delta.replicates, counts / n, atol=2e-5)
    assert delta.low == pytest.approx(np.percentile(counts / n, 2.5), abs=1e-4) and delta.low == 0.0
    assert delta.high == pytest.approx(np.percentile(counts / n, 97.5), abs=1e-4) and delta.high >= 0.02


def test_always_right_against_always_wrong_is_one_with_no_spread():
    truth = np.arange(40) % 3
    delta = paired_difference(*[[r] for r in _pair(truth, truth, (truth + 1) % 3)])
    assert (delta.value, delta.low, delta.high) == (1.0, 1.0, 1.0)


def test_equals_the_paired_bootstrap_of_the_predictions():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 120)
    a = np.where(rng.random(120) < 0.7, truth, (truth + 1) % 4)
    b = np.where(rng.random(120) < 0.5, truth, (truth + 2) % 4)
    mine, theirs = _pair(truth, a, b)
    stored = paired_difference([mine], [theirs])
    direct = paired_bootstrap_difference("accuracy", truth, a, b)
    assert stored.value == pytest.approx(direct.value)
    assert (stored.low, stored.high) == pytest.approx((direct.low, direct.high), abs=1e-4)
    assert stored.low > 0  # 70 % against 50 % right on 120 samples: apart


def test_seeds_pair_seed_with_seed():
    """Two seeds with the same difference give that difference and the one-seed interval; the
    value over seeds is their mean."""
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 80)
    a = np.where(rng.random(80) < 0.8, truth, 1 - truth)
    b = np.where(rng.random(80) < 0.6, truth, 1 - truth)
    mine, theirs = _pair(truth, a, b)
    one = paired_difference([mine], [theirs])
    two = paired_difference([mine, mine], [theirs, theirs])
    assert (two.value, two.low, two.high) == pytest.approx((one.value, one.low, one.high))
    c = np.where(rng.random(80) < 0.9, truth, 1 - truth)
    other = run_result(_document(truth, c), "t", "knn", "accuracy")
    assert combine_seeds([mine, other]).value == pytest.approx((mine.value + other.value) / 2)
    # Resampling the seeds widens the interval when they disagree.
    spread = combine_seeds([mine, other])
    alone = combine_seeds([mine])
    assert spread.high - spread.low > alone.high - alone.low


def test_results_on_other_test_samples_do_not_pair():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, 60)
    short = run_result(_document(truth[:50], truth[:50]), "t", "knn", "accuracy")
    full = run_result(_document(truth, truth), "t", "knn", "accuracy")
    with pytest.raises(DataFormatError, match="same test samples"):
        paired_difference([short], [full])


def test_a_run_the_document_lacks_is_none_and_missing_replicates_are_an_error():
    truth = np.zeros(10, dtype=np.int64)
    document = _document(truth, truth)
    assert run_result(document, "t", "linear", "accuracy") is None
    del document["runs"][0]["replicates"]
    with pytest.raises(DataFormatError, match="replicates"):
        run_result(document, "t", "knn", "accuracy")
