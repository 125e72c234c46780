"""The linear probe's logistic regression against scikit-learn's LogisticRegression (same objective)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from salibi.eval.protocols.linear_probe import C_GRID, fit_logistic, linear_probe


def _blobs(seed, n=150, dim=10, classes=4, noise=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim))
    y = np.arange(n) % classes
    return centres[y] + noise * rng.normal(0, 1, (n, dim)), y


def _sklearn(c):
    return LogisticRegression(C=c, tol=1e-12, max_iter=100_000)


def test_c_grid_is_torchgeo_benchs():
    np.testing.assert_allclose(C_GRID, 10 ** np.linspace(-6, 4, 40))


@pytest.mark.parametrize("c", [1e-3, 0.1, 10.0])
def test_multiclass_fit_matches_scikit_learn(c):
    x, y = _blobs(0)
    model = fit_logistic(x, y, "classification", 4, c)
    reference = _sklearn(c).fit(x, y)
    np.testing.assert_allclose(model.weight, reference.coef_, atol=2e-4)
    np.testing.assert_allclose(model.bias, reference.intercept_, atol=5e-4)
    np.testing.assert_allclose(model.scores(x), reference.predict_proba(x), atol=1e-4)
    np.testing.assert_array_equal(model.predict(x), reference.predict(x))


def test_multilabel_fit_is_scikit_learns_one_vs_rest():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6))
    y = (x[:, :3] + rng.normal(0, 0.6, (120, 3)) > 0).astype(np.int8)
    model = fit_logistic(x, y, "multilabel", 3, 0.5)
    for j in range(3):
        reference = _sklearn(0.5).fit(x, y[:, j])
        np.testing.assert_allclose(model.weight[j], reference.coef_[0], atol=1e-4)
        np.testing.assert_allclose(model.scores(x)[:, j], reference.predict_proba(x)[:, 1], atol=1e-5)


def test_classes_missing_from_training_get_no_probability():
    x, y = _blobs(2)
    y = np.where(y == 1, 3, y)  # class 1 of 5 never occurs
    model = fit_logistic(x, y, "classification", 5, 1.0)
    scores = model.scores(x)
    assert scores.shape == (len(x), 5) and (scores[:, [1, 4]] == 0).all()
    np.testing.assert_allclose(scores[:, [0, 2, 3]], _sklearn(1.0).fit(x, y).predict_proba(x), atol=1e-4)


def test_probe_selects_c_on_validation_and_refits_on_train_and_validation():
    x, y = _blobs(3, n=200, noise=1.5)
    train, valid, test = (x[:100], y[:100]), (x[100:150], y[100:150]), x[150:]
    grid = (1e-4, 1e-2, 1.0)
    out = linear_probe(train, valid, test, "classification", 4, c_grid=grid)
    accuracies = [(_sklearn(c).fit(*train).predict(valid[0]) == valid[1]).mean() for c in grid]
    best = grid[int(np.argmax(accuracies))]  # argmax: the first (smallest C) of equal scores
    assert out.best_c == best
    assert out.validation == pytest.approx(accuracies)
    final = _sklearn(best).fit(np.concatenate([train[0], valid[0]]), np.concatenate([train[1], valid[1]]))
    np.testing.assert_array_equal(out.prediction, final.predict(test))
    np.testing.assert_allclose(out.score, final.predict_proba(test), atol=1e-4)


def test_ties_keep_the_smaller_c():
    x, y = _blobs(4, n=80, noise=0.05)  # every C separates the blobs: equal validation accuracy
    out = linear_probe((x[:40], y[:40]), (x[40:60], y[40:60]), x[60:], "classification", 4, c_grid=(10.0, 1.0, 100.0))
    assert out.validation == [1.0, 1.0, 1.0] and out.best_c == 1.0


def test_one_training_class_predicts_it():
    x = np.random.default_rng(0).normal(0, 1, (10, 3))
    out = linear_probe((x, np.full(10, 2)), None, x, "classification", 4, c_grid=(1.0,))
    assert out.prediction.tolist() == [2] * 10


def test_multilabel_selection_by_micro_ap():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (160, 6))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] > 0, np.zeros(160, bool)], axis=1).astype(np.int8)
    out = linear_probe((x[:100], y[:100]), (x[100:130], y[100:130]), x[130:], "multilabel", 4, c_grid=(1e-3, 1.0))
    assert out.prediction.shape == (30, 4) and not out.prediction[:, 3].any()  # never-positive class: constant 0
    assert (out.prediction[:, :3] == y[130:, :3]).mean() > 0.85
