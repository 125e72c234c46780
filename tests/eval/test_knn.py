"""kNN probe against scikit-learn's brute-force neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from salibi.eval.protocols.knn import knn_probe, nearest_neighbours


def _features(seed, n_train=120, n_test=40, dim=16, classes=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim))
    y = rng.integers(0, classes, n_train + n_test)
    x = (centres[y] + rng.normal(0, 1.2, (len(y), dim))).astype(np.float32)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@pytest.mark.parametrize("seed", [0, 1])
def test_euclidean_k5_majority_matches_scikit_learn(seed):
    train_x, train_y, test_x, _ = _features(seed)
    out = knn_probe(train_x, train_y, test_x, "classification", 5)
    reference = KNeighborsClassifier(n_neighbors=5, algorithm="brute", metric="euclidean").fit(train_x, train_y)
    np.testing.assert_array_equal(out.prediction, reference.predict(test_x))
    np.testing.assert_allclose(out.score, reference.predict_proba(test_x))


def test_cosine_and_other_k():
    train_x, train_y, test_x, _ = _features(2)
    out = knn_probe(train_x, train_y, test_x, "classification", 5, k=9, metric="cosine")
    reference = KNeighborsClassifier(n_neighbors=9, algorithm="brute", metric="cosine").fit(train_x, train_y)
    np.testing.assert_array_equal(out.prediction, reference.predict(test_x))


def test_vote_ties_go_to_the_lowest_class_and_votes_are_unweighted():
    # Nearest first: class 2 (very near), class 2, class 1, class 1: two votes each -> class 1.
    train = np.array([[0.1], [0.2], [0.3], [0.4], [5.0]])
    labels = np.array([2, 2, 1, 1, 0])
    out = knn_probe(train, labels, np.array([[0.0]]), "classification", 3, k=4)
    assert out.prediction.tolist() == [1]
    # k larger than the training set: every training sample votes.
    assert knn_probe(train, labels, np.array([[0.0]]), "classification", 3, k=50).prediction.tolist() == [1]


def test_multilabel_mean_of_neighbour_labels_above_one_half():
    rng = np.random.default_rng(3)
    train_x, test_x = rng.normal(size=(60, 8)), rng.normal(size=(15, 8))
    train_y = rng.integers(0, 2, (60, 4))
    out = knn_probe(train_x, train_y, test_x, "multilabel", 4)
    index = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(train_x).kneighbors(test_x)[1]
    expected = train_y[index].mean(1)
    np.testing.assert_allclose(out.score, expected)
    np.testing.assert_array_equal(out.prediction, (expected > 0.5).astype(np.int8))


def test_neighbours_nearest_first():
    rng = np.random.default_rng(5)
    train, test = rng.normal(size=(30, 3)), rng.normal(size=(4, 3))
    expected = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(train).kneighbors(test)[1]
    np.testing.assert_array_equal(nearest_neighbours(train, test, 6), expected)
