"""Metrics against independent computations: scikit-learn, and torchmetrics' Jaccard definition."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from salibi.eval.scoring import task_metrics as M


def test_accuracy():
    assert M.accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    assert np.isnan(M.accuracy(np.array([]), np.array([])))


def test_multilabel_f1_by_hand():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    predicted = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2 -> 1.0; class 2: tp 0, fp 1 -> 0.
    assert M.f1_macro(truth, predicted) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # micro: tp 3, fp 2, fn 1 -> 6 / 9
    assert M.f1_micro(truth, predicted) == pytest.approx(6 / 9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, (60, 7))
    truth[:, 3] = 0  # a class without positives
    predicted = rng.integers(0, 2, (60, 7))
    scores = np.round(rng.random((60, 7)), 1)  # coarse: many tied scores
    assert M.f1_micro(truth, predicted) == pytest.approx(f1_score(truth, predicted, average="micro", zero_division=0))
    assert M.f1_macro(truth, predicted) == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))
    assert M.map_micro(truth, scores) == pytest.approx(average_precision_score(truth, scores, average="micro"))


def _torchmetrics_style_miou(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """MulticlassJaccardIndex(average="macro", ignore_index=-1), written out by its definition:
    one confusion matrix over all non-ignored pixels; classes with no pixel in truth and
    prediction get weight 0."""
    truth, predicted = truth.reshape(-1), predicted.reshape(-1)
    keep = truth != -1
    confusion = np.zeros((n_classes, n_classes))
    for t, p in zip(truth[keep], predicted[keep]):
        confusion[t, p] += 1
    scores, weights = [], []
    for c in range(n_classes):
        tp = confusion[c, c]
        denominator = confusion[c, :].sum() + confusion[:, c].sum() - tp
        scores.append(tp / denominator if denominator else 0.0)
        weights.append(0.0 if confusion[c, :].sum() + confusion[:, c].sum() == 0 else 1.0)
    return float(np.dot(scores, weights) / np.sum(weights))


def test_mean_iou_by_hand_and_ignored_pixels():
    truth = np.array([[[0, 0, 1], [1, 1, -1]]])
    predicted = np.array([[[0, 1, 1], [1, 0, 0]]])
    # class 0: I 1, U 3; class 1: I 2, U 4; the -1 pixel is ignored.
    assert M.mean_iou(truth, predicted, 2) == pytest.approx((1 / 3 + 2 / 4) / 2)
    # A class absent from both truth and prediction does not count.
    assert M.mean_iou(truth, predicted, 5) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert M.pixel_accuracy(truth, predicted, 2) == pytest.approx(3 / 5)


def test_mean_iou_accumulates_over_the_whole_test_set():
    rng = np.random.default_rng(3)
    truth = rng.integers(-1, 4, (6, 9, 9))
    predicted = rng.integers(0, 5, (6, 9, 9))  # class 4 predicted, never true
    truth[truth == 2] = 1  # class 2 never true; predicted sometimes
    expected = _torchmetrics_style_miou(truth, predicted, 5)
    assert M.mean_iou(truth, predicted, 5) == pytest.approx(expected)
    # not the mean of per-image mIoUs
    per_image = np.mean([_torchmetrics_style_miou(t, p, 5) for t, p in zip(truth, predicted)])
    assert abs(per_image - expected) > 1e-4


@pytest.mark.parametrize(
    "name,kind",
    [("accuracy", "classes"), ("f1_micro", "multi"), ("f1_macro", "multi"), ("map_micro", "scores"), ("miou", "seg")],
)
def test_resample_weights_equal_the_resampled_test_set(name, kind):
    """A resample given as weights scores exactly as the repeated samples themselves."""
    rng = np.random.default_rng(4)
    n = 25
    if kind == "classes":
        truth, output = rng.integers(0, 4, n), rng.integers(0, 4, n)
    elif kind == "multi":
        truth, output = rng.integers(0, 2, (n, 5)), rng.integers(0, 2, (n, 5))
    elif kind == "scores":
        truth, output = rng.integers(0, 2, (n, 5)), np.round(rng.random((n, 5)), 1)
    else:
        truth, output = rng.integers(-1, 3, (n, 4, 4)), rng.integers(0, 3, (n, 4, 4))
    index = rng.integers(0, n, n)
    weights = np.bincount(index, minlength=n)[None]
    from_weights = M.metric_replicates(name, truth, output, weights, 3)[0]
    assert from_weights == pytest.approx(M.metric_value(name, truth[index], output[index], 3))


def test_scikit_learn_accuracy_agrees():
    rng = np.random.default_rng(5)
    truth, predicted = rng.integers(0, 10, 200), rng.integers(0, 10, 200)
    assert M.accuracy(truth, predicted) == pytest.approx(accuracy_score(truth, predicted))


def test_headline_metric_one_rule_for_runs_and_summaries():
    # A run of a known kind is ranked by its kind's metric, and by nothing else.
    assert M.headline_metric({"f1_micro": 0.3, "f1_macro": 0.2}, "multilabel") == ("f1_micro", 0.3)
    assert M.headline_metric({"miou": float("nan"), "pixel_accuracy": 0.9}, "segmentation") is None
    # A summary (no kind): the first finite of accuracy, f1_micro, miou, then f1_macro (version-1 documents).
    assert M.headline_metric({"accuracy": 0.5, "accuracy_std": 0.1}) == ("accuracy", 0.5)
    assert M.headline_metric({"f1_micro": float("nan"), "f1_macro": 0.2}) == ("f1_macro", 0.2)
    assert M.headline_metric({"pixel_accuracy": 0.9, "map_micro": 0.4}) is None
