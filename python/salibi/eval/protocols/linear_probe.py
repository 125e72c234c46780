"""Linear probe: logistic regression on frozen features, as torchgeo-bench defines it.

For each ``C`` of ``10 ** linspace(-6, 4, 40)`` a logistic regression is fitted on the
training split by full-batch L-BFGS (scipy's L-BFGS-B, scikit-learn's solver, driving a float64 loss
and gradient computed by numpy on the CPU or by torch on the evaluation device), minimising

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
from salibi.eval.scoring.task_metrics import metric_value

__all__ = ["C_GRID", "LinearProbeOutput", "LogisticModel", "fit_logistic", "linear_probe"]

#: The regularisation sweep: 40 values of C from 1e-6 to 1e4, log-spaced (torchgeo-bench's c_range).
C_GRID: tuple[float, ...] = tuple(float(c) for c in 10 ** np.linspace(-6, 4, 40))
MAX_ITER = 1000
#: L-BFGS-B stops when every gradient component is below this (scikit-learn's ``tol``, tighter).
GRADIENT_TOLERANCE = 1e-6
#: Feature matrices smaller than this (elements) are fitted on one BLAS thread.
SMALL_PROBLEM = 1 << 21


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


def _numpy_objective(x: np.ndarray, onehot: np.ndarray, multilabel: bool, penalty: float) -> Any:
    n, dim = x.shape
    classes = onehot.shape[1]
    size = classes * dim

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[:size].reshape(classes, dim), theta[size:]
        logits = x @ weight.T + bias
        if multilabel:
            loss = (np.logaddexp(0.0, logits) - onehot * logits).sum() / n
            residual = (0.5 * (1.0 + np.tanh(0.5 * logits)) - onehot) / n  # sigmoid without overflow
        else:
            top = logits.max(1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(1))
            loss = (log_norm - (logits * onehot).sum(1)).mean()
            residual = (np.exp(logits - log_norm[:, None]) - onehot) / n
        loss += penalty * float((weight * weight).sum())
        gradient = np.concatenate([(residual.T @ x + 2.0 * penalty * weight).reshape(-1), residual.sum(0)])
        return float(loss), gradient

    return loss_and_gradient


def _torch_objective(x: Any, onehot: Any, multilabel: bool, penalty: float) -> Any:
    import torch

    n, dim = x.shape
    classes = onehot.shape[1]
    size = classes * dim

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        parameters = torch.from_numpy(theta).to(x.device)
        weight, bias = parameters[:size].view(classes, dim), parameters[size:]
        logits = torch.addmm(bias, x, weight.T)
        if multilabel:
            loss = (torch.nn.functional.softplus(logits) - onehot * logits).sum() / n
            residual = (torch.sigmoid(logits) - onehot) / n
        else:
            log_norm = torch.logsumexp(logits, dim=1)
            loss = (log_norm - (logits * onehot).sum(1)).mean()
            residual = (torch.exp(logits - log_norm[:, None]) - onehot) / n
        loss = loss + penalty * (weight * weight).sum()
        gradient = torch.cat([(residual.T @ x + 2.0 * penalty * weight).reshape(-1), residual.sum(0)])
        return float(loss), gradient.cpu().numpy()

    return loss_and_gradient


def _solve(
    x: np.ndarray,
    onehot: np.ndarray,
    multilabel: bool,
    c: float,
    start: tuple[np.ndarray, np.ndarray] | None,
    max_iter: int,
    device: Any,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise the objective with scipy's L-BFGS-B (scikit-learn's solver) from ``start``; the
    loss and its analytic gradient are computed by numpy on the CPU, by torch on another device."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs; ships with scikit-learn

    n, dim = x.shape
    classes = onehot.shape[1]
    penalty = 1.0 / (2.0 * c * n)
    if str(device) == "cpu":
        objective = _numpy_objective(x, onehot, multilabel, penalty)
    else:
        import torch

        as_tensor = {"device": device, "dtype": torch.float64}
        objective = _torch_objective(
            torch.as_tensor(x, **as_tensor), torch.as_tensor(onehot, **as_tensor), multilabel, penalty
        )
    size = classes * dim
    theta0 = np.zeros(size + classes) if start is None else np.concatenate([start[0].reshape(-1), start[1]])
    # Small products run faster on one BLAS thread than on several waiting for each other.
    with threadpool_limits(1 if x.size < SMALL_PROBLEM else None):
        result = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": GRADIENT_TOLERANCE, "ftol": 64 * np.finfo(float).eps, "maxls": 50},
        )
    theta = result.x
    return theta[:size].reshape(classes, dim), theta[size:].copy(), int(result.nit)


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

    device = torch.device(device)
    if c <= 0:
        raise InputError(f"linear probe: C = {c} must be positive")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if len(x) == 0:
        raise InputError("linear probe: no training samples")
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
    if multilabel:
        onehot = targets_np
    else:
        onehot = np.eye(len(columns))[targets_np.astype(np.int64)]
    weight, bias, iterations = _solve(x, onehot, multilabel, c, initial, max_iter, device)
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
