"""Linear probe: logistic regression on frozen features, as torchgeo-bench defines it.

For each ``C`` of ``10 ** linspace(-6, 4, 40)`` a logistic regression is fitted on the
training split by full-batch L-BFGS (torch, float64, on the evaluation device), minimising

    mean over samples of the cross-entropy  +  ||W||^2 / (2 C n)          (bias not penalised)

which is scikit-learn's ``LogisticRegression(C)`` objective ``C * sum CE + ||W||^2 / 2``
divided by ``C n``: the same minimiser. Multi-class: softmax cross-entropy over the classes
present in the training labels. Multi-label: one sigmoid output per class (binary
cross-entropy summed over classes, i.e. scikit-learn's one-vs-rest problems side by side); a
class whose training labels are all equal is predicted constantly. Features are not
standardised. The ``C`` with the best validation accuracy (validation micro-AP for
multi-label; ties to the smaller ``C``) is refitted on train and validation together and
scored on the test split. Fits run from the smallest ``C`` up, each starting from the
previous solution. Nothing is random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from salibi.errors import InputError
from salibi.eval.metrics import metric_value

__all__ = ["C_GRID", "LinearProbeOutput", "LogisticModel", "fit_logistic", "linear_probe"]

#: The regularisation sweep: 40 values of C from 1e-6 to 1e4, log-spaced (torchgeo-bench's c_range).
C_GRID: tuple[float, ...] = tuple(float(c) for c in 10 ** np.linspace(-6, 4, 40))
MAX_ITER = 1000
TOLERANCE_GRAD = 1e-9
TOLERANCE_CHANGE = 1e-12


@dataclass
class LogisticModel:
    """A fitted logistic regression: ``weight`` (K, D), ``bias`` (K,) over ``columns`` of the
    task's classes; ``constant`` holds the fixed probability of the other columns."""

    kind: str
    n_classes: int
    columns: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    constant: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iterations: int = 0

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``(N, n_classes)`` probabilities (softmax over the fitted classes, or sigmoids)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.tile(self.constant, (len(x), 1)) if self.constant.size else np.zeros((len(x), self.n_classes))
        if len(self.columns) == 0:
            return out
        logits = x @ self.weight.T + self.bias
        if self.kind == "multilabel":
            out[:, self.columns] = 1.0 / (1.0 + np.exp(-logits))
        else:
            logits -= logits.max(1, keepdims=True)
            probabilities = np.exp(logits)
            out[:, self.columns] = probabilities / probabilities.sum(1, keepdims=True)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = self.scores(x)
        if self.kind == "multilabel":
            return (scores > 0.5).astype(np.int8)
        return scores.argmax(1)


@dataclass
class LinearProbeOutput:
    prediction: np.ndarray  # (N,) class | (N, C) multi-hot
    score: np.ndarray  # (N, C) probabilities
    best_c: float
    validation: list[float]  # the validation metric of each C of the sweep


def _solve(
    x: Any, targets: Any, multilabel: bool, c: float, start: tuple[np.ndarray, np.ndarray] | None, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int]:
    import torch
    import torch.nn.functional as F

    n, dim = x.shape
    classes = targets.shape[1] if multilabel else int(targets.max().item()) + 1
    options = {"dtype": x.dtype, "device": x.device}
    if start is None:
        weight = torch.zeros(classes, dim, **options)
        bias = torch.zeros(classes, **options)
    else:
        weight, bias = torch.tensor(start[0], **options), torch.tensor(start[1], **options)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    penalty = 1.0 / (2.0 * c * n)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=TOLERANCE_GRAD,
        tolerance_change=TOLERANCE_CHANGE,
    )

    def closure() -> Any:
        optimizer.zero_grad(set_to_none=True)
        logits = torch.addmm(bias, x, weight.T)
        if multilabel:
            loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / n
        else:
            loss = F.cross_entropy(logits, targets)
        loss = loss + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    iterations = int(optimizer.state[weight].get("n_iter", 0))
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy(), iterations


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    kind: str,
    n_classes: int,
    c: float,
    device: Any = "cpu",
    start: LogisticModel | None = None,
    max_iter: int = MAX_ITER,
) -> LogisticModel:
    """One logistic regression at inverse regularisation ``c`` (see the module docstring).

    ``start``: a model over the same columns whose solution the optimiser starts from.
    """
    import torch

    if c <= 0:
        raise InputError(f"linear probe: C = {c} must be positive")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if len(x) == 0:
        raise InputError("linear probe: no training samples")
    device = torch.device(device)
    multilabel = kind == "multilabel"
    if multilabel:
        labels = y.astype(np.float64)
        varying = np.flatnonzero(labels.min(0) != labels.max(0))
        constant = np.where(labels.mean(0) > 0.5, 1.0, 0.0)
        constant[varying] = 0.0
        columns, targets_np = varying, labels[:, varying]
    else:
        columns = np.unique(y.astype(np.int64))
        constant = np.zeros(n_classes)
        if len(columns) == 1:  # one class: the only sensible linear model predicts it
            constant[columns[0]] = 1.0
            return LogisticModel(
                kind, n_classes, np.zeros(0, np.int64), np.zeros((0, x.shape[1])), np.zeros(0), constant
            )
        targets_np = np.searchsorted(columns, y.astype(np.int64)).astype(np.float64)
    if len(columns) == 0:
        return LogisticModel(kind, n_classes, columns, np.zeros((0, x.shape[1])), np.zeros(0), constant)
    initial = None
    if start is not None and np.array_equal(start.columns, columns) and start.weight.shape[1] == x.shape[1]:
        initial = (start.weight, start.bias)
    features = torch.from_numpy(x).to(device)
    if multilabel:
        targets = torch.from_numpy(targets_np).to(device)
    else:
        targets = torch.from_numpy(targets_np.astype(np.int64)).to(device)
    with torch.enable_grad():
        weight, bias, iterations = _solve(features, targets, multilabel, c, initial, max_iter)
    return LogisticModel(kind, n_classes, columns, weight, bias, constant, iterations)


def _validation_metric(kind: str, model: LogisticModel, x: np.ndarray, y: np.ndarray) -> float:
    if kind == "multilabel":
        value = metric_value("map_micro", y, model.scores(x))
    else:
        value = metric_value("accuracy", y, model.predict(x))
    return value if np.isfinite(value) else -1.0


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray] | None,
    test_x: np.ndarray,
    kind: str,
    n_classes: int,
    c_grid: tuple[float, ...] = C_GRID,
    device: Any = "cpu",
    max_iter: int = MAX_ITER,
) -> LinearProbeOutput:
    """Sweep ``c_grid`` on ``valid`` (the training split itself when ``valid`` is None or
    empty), refit the best on train and validation, predict ``test_x``."""
    train_x, train_y = np.asarray(train[0], dtype=np.float64), np.asarray(train[1])
    has_valid = valid is not None and len(valid[0]) > 0
    valid_x, valid_y = (np.asarray(valid[0], dtype=np.float64), np.asarray(valid[1])) if has_valid else train  # type: ignore[index]
    best: tuple[float, float, LogisticModel] | None = None
    scores: list[float] = []
    previous: LogisticModel | None = None
    for c in sorted(c_grid):
        model = fit_logistic(train_x, train_y, kind, n_classes, c, device, previous, max_iter)
        previous = model
        score = _validation_metric(kind, model, valid_x, valid_y)
        scores.append(score)
        if best is None or score > best[0]:  # strictly better: ties keep the smaller C
            best = (score, c, model)
    assert best is not None
    _, best_c, best_model = best
    if has_valid:
        final_x = np.concatenate([train_x, valid_x])
        final_y = np.concatenate([train_y, valid_y])
        best_model = fit_logistic(final_x, final_y, kind, n_classes, best_c, device, best_model, max_iter)
    test_x = np.asarray(test_x, dtype=np.float64)
    return LinearProbeOutput(best_model.predict(test_x), best_model.scores(test_x), best_c, scores)
