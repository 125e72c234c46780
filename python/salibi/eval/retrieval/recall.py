"""Retrieval metrics on fixed features: ranks, recall@k, median rank, chance, and their bootstrap
replicates over queries.

Query ``i`` (a row of ``queries``) has one right answer, row ``i`` of ``candidates``; its *rank* is
the number of candidates whose cosine similarity to the query is at least the right answer's
(the right answer included), so a candidate tied with the right answer counts against the query
(:func:`match_ranks`). Over ``N`` queries:

- ``recall@k``: the share of queries whose rank is at most ``k``; chance ``min(k, N) / N``;
- ``median_rank``: the median of the ranks (lower is better); chance ``(N + 1) / 2``, the median of a
  rank drawn uniformly from ``1 .. N``.

Replicates: the metric on each resample of the queries of
:func:`salibi.eval.scoring.bootstrap.resample_weights` (drawn from ``N`` alone), so two models
ranked on the same chips share their resamples and their difference pairs
(:func:`salibi.eval.scoring.differences.paired_difference`).
"""

from __future__ import annotations

import numpy as np

from salibi.errors import InputError
from salibi.eval.scoring.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, resample_weights
from salibi.eval.scoring.differences import RunResult

__all__ = [
    "BOOTSTRAP_OVER",
    "HEADLINE",
    "LOWER_IS_BETTER",
    "MEDIAN_RANK",
    "METRICS",
    "RECALL_AT",
    "bootstrap_key",
    "chance",
    "match_ranks",
    "metric_replicates",
    "metric_values",
    "score_ranks",
]

#: The k of recall@k.
RECALL_AT: tuple[int, ...] = (1, 5, 10)
MEDIAN_RANK = "median_rank"
#: Every metric, in table order.
METRICS: tuple[str, ...] = (*(f"recall@{k}" for k in RECALL_AT), MEDIAN_RANK)
#: The metric the readings of tables speak of.
HEADLINE = "recall@1"
#: Metrics of which less is better.
LOWER_IS_BETTER: tuple[str, ...] = (MEDIAN_RANK,)
#: What the bootstrap resamples (the ``over`` of a results document's ``bootstrap``).
BOOTSTRAP_OVER = "queries"
#: Query rows compared with all candidates at once (bounds the (block, N) similarity matrix).
_BLOCK = 1024


def _unit(vectors: np.ndarray) -> np.ndarray:
    values = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms > 0, norms, 1.0)


def match_ranks(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(N,) int64: the rank of candidate ``i`` among all candidates for query ``i``, by cosine
    similarity (float64), ties counted against the query (see the module docstring)."""
    queries, candidates = np.asarray(queries), np.asarray(candidates)
    if queries.ndim != 2 or queries.shape != candidates.shape:
        raise InputError(
            f"retrieval: {queries.shape} query features against {candidates.shape} candidates; give one "
            "(N, D) row per chip in each"
        )
    q, c = _unit(queries), _unit(candidates)
    ranks = np.empty(len(q), np.int64)
    for start in range(0, len(q), _BLOCK):
        similarity = q[start : start + _BLOCK] @ c.T  # (b, N)
        rows = np.arange(similarity.shape[0])
        right = similarity[rows, start + rows]  # from the same matrix: the right answer counts itself once
        ranks[start : start + len(rows)] = (similarity >= right[:, None]).sum(axis=1)
    return ranks


def _weighted_median(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(R,) the median (numpy's: the mean of the two middle values of an even count) of ``ranks``
    repeated ``weights[r]`` times, for every row ``r`` of ``weights`` (R, N)."""
    order = np.argsort(ranks, kind="stable")
    values = ranks[order].astype(np.float64)
    cumulative = np.cumsum(weights[:, order], axis=1)  # (R, N)
    total = cumulative[:, -1]
    low, high = (total - 1) // 2, total // 2  # 0-based positions of the middle value(s)
    pick_low = (cumulative <= low[:, None]).sum(axis=1)  # first sorted index whose run covers the position
    pick_high = (cumulative <= high[:, None]).sum(axis=1)
    return (values[np.minimum(pick_low, len(values) - 1)] + values[np.minimum(pick_high, len(values) - 1)]) / 2


def metric_replicates(ranks: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric of :data:`METRICS` on each resample: ``weights`` (R, N) counts of each query."""
    ranks = np.asarray(ranks, np.int64)
    weights = np.asarray(weights, np.float64)
    drawn = weights.sum(axis=1)
    out = {f"recall@{k}": (weights @ (ranks <= k).astype(np.float64)) / drawn for k in RECALL_AT}
    out[MEDIAN_RANK] = _weighted_median(ranks, weights)
    return out


def metric_values(ranks: np.ndarray) -> dict[str, float]:
    """Each metric of :data:`METRICS` on every query once."""
    return {name: float(v[0]) for name, v in metric_replicates(ranks, np.ones((1, len(ranks)))).items()}


def chance(n: int) -> dict[str, float]:
    """What ranks drawn at random among ``n`` candidates give, per metric."""
    return {**{f"recall@{k}": min(k, n) / n for k in RECALL_AT}, MEDIAN_RANK: (n + 1) / 2}


def bootstrap_key(resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[int, int, str]:
    """The resampling settings as :class:`~salibi.eval.scoring.differences.RunResult` keeps them."""
    return (resamples, seed, BOOTSTRAP_OVER)


def score_ranks(
    ranks: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, RunResult]:
    """Per metric: its value over all queries and its replicates over ``resamples`` resamples of them."""
    ranks = np.asarray(ranks, np.int64)
    if len(ranks) < 2:
        raise InputError(f"retrieval needs at least 2 chips to choose among, got {len(ranks)}")
    values = metric_values(ranks)
    replicates = metric_replicates(ranks, resample_weights(len(ranks), resamples, seed))
    key = bootstrap_key(resamples, seed)
    return {name: RunResult(values[name], replicates[name], len(ranks), key) for name in METRICS}
