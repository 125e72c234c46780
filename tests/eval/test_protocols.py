"""Metrics and protocols on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from salibi.eval import protocols as P


def test_accuracy():
    assert P.accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75


def test_f1_macro_by_hand():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    predicted = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2 -> 1.0; class 2: tp 0, fp 1 -> 0.
    assert P.f1_macro(truth, predicted) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_f1_macro_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    truth, predicted = rng.integers(0, 2, (50, 7)), rng.integers(0, 2, (50, 7))
    assert P.f1_macro(truth, predicted) == pytest.approx(f1_score(truth, predicted, average="macro", zero_division=0))


def test_mean_iou_by_hand_and_ignored_pixels():
    truth = np.array([[0, 0, 1], [1, 1, -1]])
    predicted = np.array([[0, 1, 1], [1, 0, 0]])
    # class 0: I 1, U 3; class 1: I 2, U 4; the -1 pixel is ignored.
    assert P.mean_iou(truth, predicted, 2) == pytest.approx((1 / 3 + 2 / 4) / 2)
    # A class absent from both truth and prediction does not count.
    assert P.mean_iou(truth, predicted, 5) == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_knn_votes_are_weighted_by_cosine_similarity():
    # For (1, 0) the three nearest are one class-0 point (similarity 1) and two class-1 points
    # (similarity 0.3 each): a majority vote says 1, similarity-weighted votes say 0.
    train = np.array([[2.0, 0.0], [0.3, 0.954], [0.3, -0.954], [-1.0, 0.0], [-1.0, 0.1]])
    labels = np.array([0, 1, 1, 1, 1])
    predicted = P.knn_predict(train, labels, np.array([[1.0, 0.0], [-1.0, 0.05]]), "classification", 2, k=3)
    assert predicted.tolist() == [0, 1]
    # k larger than the training set is clipped; every training point votes.
    assert P.knn_predict(train, labels, np.array([[1.0, 0.0]]), "classification", 2, k=50).tolist() == [0]


def test_knn_multilabel_thresholds_the_weighted_mean():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]])
    predicted = P.knn_predict(train, labels, np.array([[1.0, 0.0]]), "multilabel", 3, k=2)
    assert predicted.tolist() == [[1, 1, 0]]  # class 1 from the most similar neighbour only: weight > 0.5


def test_linear_probe_chooses_c_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 16))

    def blobs(n):
        y = np.arange(n) % 4
        return centres[y] + 0.3 * rng.normal(0, 1, (n, 16)), y

    (tx, ty), (vx, vy), (sx, sy) = blobs(120), blobs(40), blobs(40)
    predicted, c = P.linear_probe((tx, ty), (vx, vy), (sx, sy), "classification")
    assert c in P.LINEAR_C_GRID
    assert P.accuracy(sy, predicted) > 0.9


def test_linear_probe_multilabel_one_vs_rest():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, 6))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] > 0], axis=1).astype(np.int8)
    predicted, _ = P.linear_probe((x[:120], y[:120]), (x[120:160], y[120:160]), (x[160:], y[160:]), "multilabel")
    assert predicted.shape == (40, 3) and P.f1_macro(y[160:], predicted) > 0.85


def test_linear_probe_with_one_training_class_predicts_it():
    x = np.random.default_rng(0).normal(0, 1, (10, 3))
    predicted, c = P.linear_probe((x, np.full(10, 2)), (x, np.full(10, 2)), (x, np.zeros(10)), "classification")
    assert predicted.tolist() == [2] * 10 and np.isnan(c)


def test_segmentation_probe_learns_a_pixel_rule():
    # Token feature 0 says "foreground"; labels are the tokens' masks upsampled 4x.
    rng = np.random.default_rng(0)
    grid, n = (4, 4), 24
    fg = rng.integers(0, 2, (n, 4, 4))
    tokens = rng.normal(0, 0.1, (n, 16, 8)).astype(np.float16)
    tokens[:, :, 0] += fg.reshape(n, 16) * 2
    labels = np.kron(fg, np.ones((4, 4), dtype=np.int64)).astype(np.int16)
    labels[:, 0, 0] = -1  # ignored
    predicted = P.segmentation_probe(tokens[:16], labels[:16], tokens[16:], grid, 4.0, 2, steps=150)
    assert predicted.shape == (8, 16, 16)
    assert P.mean_iou(labels[16:], predicted, 2) > 0.7


def test_majority_reference_predicts_the_most_frequent_training_class():
    from salibi.eval.protocols import majority_predict

    train = np.array([2, 2, 1, 0, 2])
    test = np.array([2, 0, 1, 2])
    assert majority_predict(train, test, "classification").tolist() == [2, 2, 2, 2]
    masks = np.array([[[1, 1], [-1, -1]], [[1, 0], [-1, -1]]])  # no-data (-1) is not a class
    assert majority_predict(masks, np.zeros((3, 2, 2)), "segmentation").tolist() == np.ones((3, 2, 2)).tolist()
    multi = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0]])
    assert majority_predict(multi, np.zeros((2, 3)), "multilabel").tolist() == [[1, 0, 0], [1, 0, 0]]
