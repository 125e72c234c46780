"""Every row's nearest neighbours, precomputed for the page with ``salibi search``'s own index
(:class:`~salibi.embed.search.CosineIndex`), so clicking a chip shows exactly what
``salibi search OUT --query ROW`` answers for it.

Which rows answer depends on the file's embedding space (its ``space`` attribute, written by
``salibi embed --space``):

- ``shared``: every modality lies in one space, so a row's neighbours are found among the rows of
  all modalities (cross-modal): ``salibi search OUT --query ROW --k K``;
- ``encoder`` (or no ``space`` attribute: what every output before ``--space`` holds): each
  modality has its own encoder, whose embeddings are not comparable with another's, so a row's
  neighbours are found among its own modality: ``salibi search OUT --query ROW --k K --modality M``.

As in ``salibi search``, the rows of the query's own path are left out of its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.embed.output.embeddings import Embeddings
from salibi.embed.search import CosineIndex
from salibi.vocabulary import EMBEDDING_SPACES

__all__ = ["ENCODER", "SHARED", "Neighbours", "embedding_space", "neighbours", "search_command"]

ENCODER, SHARED = EMBEDDING_SPACES
#: Random pairs drawn for the reference similarity shown beside the neighbours'.
REFERENCE_PAIRS = 10_000


@dataclass
class Neighbours:
    """``rows`` (N, k) int32 (-1 past the end) and ``similarity`` (N, k) float32 cosine similarity of
    every row's nearest rows; ``reference``: the 5th, 50th and 95th percentile of the similarity of
    random pairs from the same pools (what a neighbour's similarity is compared with)."""

    rows: np.ndarray
    similarity: np.ndarray
    reference: tuple[float, float, float]
    reference_pairs: int


def embedding_space(attrs: dict[str, Any]) -> tuple[str, bool]:
    """``(space, stated)``: the file's ``space`` attribute (``shared`` or ``encoder``) and whether the
    file states it (files without one hold encoder-space rows)."""
    value = attrs.get("space")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None:
        return ENCODER, False
    return (SHARED, True) if str(value).strip().lower() == SHARED else (ENCODER, True)


def _pools(table: Embeddings, space: str) -> list[np.ndarray]:
    """The rows each row's neighbours are drawn from: all rows, or the rows of each modality."""
    if space == SHARED:
        return [np.arange(len(table))]
    modality = np.asarray(table.modality, dtype=object)
    return [np.flatnonzero(modality == m) for m in sorted(set(table.modality))]


def neighbours(table: Embeddings, k: int, space: str, seed: int = 0) -> Neighbours:
    """The ``k`` nearest rows of every row of ``table`` in ``space`` (module docstring)."""
    n = len(table)
    rows = np.full((n, k), -1, np.int32)
    similarity = np.full((n, k), np.nan, np.float32)
    _, path_code = np.unique(np.asarray(table.path, dtype=object).astype(str), return_inverse=True)
    path_code = path_code.astype(np.int64)
    rng = np.random.default_rng(seed)
    samples: list[np.ndarray] = []
    for pool in _pools(table, space):
        index = CosineIndex(table.embedding, pool, groups=path_code)
        found, scores = index.nearest(table.embedding[pool], k, leave_out=path_code[pool])
        rows[pool] = found
        similarity[pool] = scores
        samples.append(_random_pair_similarity(index, pool, path_code, rng, round(REFERENCE_PAIRS * len(pool) / n)))
    drawn = np.concatenate(samples) if samples else np.zeros(0)
    reference = tuple(float(v) for v in np.percentile(drawn, [5, 50, 95])) if len(drawn) else (np.nan,) * 3
    return Neighbours(rows, similarity, reference, int(len(drawn)))  # type: ignore[arg-type]


def _random_pair_similarity(
    index: CosineIndex, pool: np.ndarray, path_code: np.ndarray, rng: np.random.Generator, pairs: int
) -> np.ndarray:
    """Cosine similarities of ``pairs`` random pairs of rows of ``pool`` with different paths."""
    if len(pool) < 2 or pairs < 1:
        return np.zeros(0)
    a, b = rng.integers(0, len(pool), pairs), rng.integers(0, len(pool), pairs)
    keep = path_code[pool[a]] != path_code[pool[b]]
    return (index.unit[a[keep]].astype(np.float64) * index.unit[b[keep]].astype(np.float64)).sum(axis=1)


def search_command(output_name: str, k: int, space: str, several_modalities: bool) -> str:
    """The ``salibi search`` line whose answer the page shows, ``{row}`` and ``{modality}`` to fill."""
    line = f"salibi search {output_name} --query {{row}} --k {k}"
    return line + " --modality {modality}" if space == ENCODER and several_modalities else line
