"""k-nearest-neighbour probe on frozen features, as torchgeo-bench defines it.

The ``k`` (default 5) training features nearest to a test feature vote, one vote each; the
class with most votes wins, ties going to the lowest class index. Distances are Euclidean
(``metric="euclidean"``) or one minus the cosine similarity (``metric="cosine"``, on
L2-normalised features). Multi-label: the score of each class is the mean of the neighbours'
multi-hot labels, the prediction the scores above 0.5. Fitted on the training split only;
nothing is random. Neighbours at exactly equal distance are taken in training order.

Its defaults (:data:`KNN_K`, :data:`KNN_METRIC`) are ``salibi eval geobench``'s option defaults, so
importing this module imports no numpy (the command line reads them for ``--help``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from salibi.errors import InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["KNN_K", "KNN_METRIC", "KNN_METRICS", "KnnOutput", "knn_probe", "nearest_neighbours"]

KNN_K = 5
KNN_METRICS = ("euclidean", "cosine")
KNN_METRIC = KNN_METRICS[0]
# Test rows per distance block: bounds memory at chunk x n_train float64.
_CHUNK = 256


@dataclass
class KnnOutput:
    prediction: np.ndarray  # (N,) class index | (N, C) multi-hot int8
    score: np.ndarray  # (N, C): the share of neighbour votes per class


def _unit(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(train_x: np.ndarray, test_x: np.ndarray, k: int, metric: str = KNN_METRIC) -> np.ndarray:
    """``(N_test, k)`` indices of the nearest training rows, nearest first (float64 distances)."""
    import numpy as np

    if metric not in KNN_METRICS:
        raise InputError(f"--knn-metric {metric}: choose among {', '.join(KNN_METRICS)}")
    train = np.asarray(train_x, dtype=np.float64)
    test = np.asarray(test_x, dtype=np.float64)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise InputError(f"kNN: training features {train.shape} and test features {test.shape} do not match")
    if metric == "cosine":
        train, test = _unit(train), _unit(test)
    k = max(1, min(k, len(train)))
    train_sq = (train**2).sum(1)
    out = np.empty((len(test), k), dtype=np.int64)
    for start in range(0, len(test), _CHUNK):
        block = test[start : start + _CHUNK]
        # Squared distances less the test row's own norm (a per-row constant).
        distance = train_sq[None, :] - 2.0 * block @ train.T
        order = np.argsort(distance, axis=1, kind="stable")[:, :k]  # equal distances: training order
        out[start : start + len(block)] = order
    return out


def knn_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    kind: str,
    n_classes: int,
    k: int = KNN_K,
    metric: str = KNN_METRIC,
) -> KnnOutput:
    """Predictions and vote shares of the unweighted ``k``-NN vote (see the module docstring)."""
    import numpy as np

    if k < 1:
        raise InputError(f"--knn-k {k}: must be at least 1")
    if len(test_x) == 0:
        empty = np.zeros((0, n_classes))
        return KnnOutput(empty.astype(np.int8) if kind == "multilabel" else np.zeros(0, np.int64), empty)
    neighbours = nearest_neighbours(train_x, test_x, k, metric)
    if kind == "multilabel":
        labels = np.asarray(train_y, dtype=np.float64)
        score = labels[neighbours].mean(axis=1)
        return KnnOutput((score > 0.5).astype(np.int8), score)
    labels = np.asarray(train_y, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"kNN: training labels outside 0..{n_classes - 1}")
    votes = np.zeros((len(neighbours), n_classes), dtype=np.float64)
    np.add.at(votes, (np.arange(len(neighbours))[:, None], labels[neighbours]), 1.0)
    return KnnOutput(votes.argmax(1), votes / neighbours.shape[1])  # argmax: first (lowest) of tied classes
