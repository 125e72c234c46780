"""Nearest neighbours in an embeddings output (``salibi search``), through faiss.

The rows (optionally one ``modality`` only) are L2-normalised and put in a ``faiss.IndexFlatIP``:
an exact inner-product index, so the scores are cosine similarities and the neighbours exact
(:class:`CosineIndex`). Its candidates are scored again in float64 and ranked by similarity, then
row number, so one query gets the same answer alone or in a batch (``salibi explore`` asks for
every row's neighbours at once and must show what ``salibi search`` answers).
The query is a row of the output (its ``path``, or its row number) or a raster file, embedded on
the spot with the checkpoint that made the output (checked by its sha256), the same band
contract as ``salibi embed`` and the output's embedding space. The query's own rows are left out
of the answer.

Spaces (the output's ``space`` attribute, :data:`salibi.vocabulary.EMBEDDING_SPACES`): in the
``shared`` space the rows of every modality are comparable, so a search across modalities finds
the same place seen by another sensor; in the ``encoder`` space (and in outputs that state none)
each modality's encoder has its own space, and a search over rows of several modalities warns
that their similarities across modalities mean nothing (give ``modality``, or embed with
``--space shared``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.output.embeddings import Embeddings, read_embeddings
from salibi.errors import InputError
from salibi.vocabulary import EMBEDDING_SPACES, NEIGHBOURS_K

__all__ = ["CosineIndex", "Neighbour", "SearchResult", "embed_file", "output_space", "search"]

#: Candidates fetched beyond those asked for, so near-ties that float32 rounding orders differently
#: alone and in a batch are ranked by the float64 scores, identically.
_MARGIN = 8
#: Queries per faiss call (bounds the candidates gathered for the float64 scores).
_BATCH = 2048


@dataclass(frozen=True)
class Neighbour:
    """One answer: its rank (1 = nearest), row number, cosine similarity and what the row says."""

    rank: int
    row: int
    similarity: float
    path: str
    modality: str
    source: str
    bounds: tuple[float, float, float, float]


@dataclass
class SearchResult:
    query: str  # what the query was, in words
    neighbours: list[Neighbour]
    searched: int  # rows in the index

    def format(self) -> str:
        lines = [f"query: {self.query}; {len(self.neighbours)} nearest of {self.searched} rows (cosine similarity)"]
        lines.append("rank  similarity  modality  path")
        for n in self.neighbours:
            lines.append(f"{n.rank:>4}  {n.similarity:10.4f}  {n.modality:<8}  {n.path}")
        return "\n".join(lines)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:  # pragma: no cover - pinned in requirements.txt
        raise InputError("salibi search needs faiss: pip install 'salibi[search]' (faiss-cpu)") from None
    return faiss


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class CosineIndex:
    """An exact cosine-similarity index over the rows ``rows`` of ``vectors``; ``groups`` (one integer
    per row of ``vectors``, e.g. a code per path) lets a query leave out the rows of its own group."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray, groups: np.ndarray | None = None) -> None:
        self.rows = np.asarray(rows, np.int64)
        self.unit = _normalised(vectors[self.rows])
        self.groups = np.zeros(len(self.rows), np.int64) if groups is None else np.asarray(groups, np.int64)[self.rows]
        self.index = _faiss().IndexFlatIP(self.unit.shape[1])
        self.index.add(self.unit)

    def nearest(
        self, queries: np.ndarray, k: int, leave_out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, similarities)``, each ``(Q, k)``: the rows (of ``vectors``) nearest to each query
        vector by cosine similarity, best first (ties: lower row first), -1 and NaN past the end;
        ``leave_out``: the group of each query (Q,) whose rows are left out of its answer."""
        found_rows = np.full((len(queries), k), -1, np.int64)
        found_scores = np.full((len(queries), k), np.nan)
        extra = 0  # the most rows a left-out group can take from an answer
        if leave_out is not None and len(self.rows):
            extra = int(np.isin(self.groups, np.unique(leave_out)).sum())
            extra = min(extra, int(np.unique(self.groups, return_counts=True)[1].max()))
        fetch = min(k + extra + _MARGIN, len(self.rows))
        if fetch == 0:
            return found_rows, found_scores
        for start in range(0, len(queries), _BATCH):
            unit = _normalised(queries[start : start + _BATCH])
            _, found = self.index.search(unit, fetch)
            valid = found >= 0
            at = np.where(valid, found, 0)
            # float64 scores of the candidates: the same for a query alone or in a batch
            scores = (unit.astype(np.float64)[:, None, :] * self.unit[at].astype(np.float64)).sum(axis=-1)
            if leave_out is not None:
                valid &= self.groups[at] != np.asarray(leave_out[start : start + _BATCH])[:, None]
            scores[~valid] = -np.inf
            rows = np.where(valid, self.rows[at], np.iinfo(np.int64).max)
            by_row = np.argsort(rows, axis=1, kind="stable")
            rows, scores = np.take_along_axis(rows, by_row, 1), np.take_along_axis(scores, by_row, 1)
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            rows, scores = np.take_along_axis(rows, best, 1), np.take_along_axis(scores, best, 1)
            kept = np.isfinite(scores)
            found_rows[start : start + len(unit), : rows.shape[1]] = np.where(kept, rows, -1)
            found_scores[start : start + len(unit), : rows.shape[1]] = np.where(kept, scores, np.nan)
        return found_rows, found_scores


def search(
    output: str | os.PathLike[str],
    query: str,
    k: int = NEIGHBOURS_K,
    modality: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "cpu",
) -> SearchResult:
    """The ``k`` rows of ``output`` nearest to ``query`` (see the module docstring)."""
    if k < 1:
        raise InputError(f"--k {k}: ask for at least one neighbour")
    table = read_embeddings(output)
    candidates = np.arange(len(table)) if modality is None else np.flatnonzero(np.asarray(table.modality) == modality)
    if not len(candidates):
        found = ", ".join(sorted(set(table.modality))) or "none"
        raise InputError(f"{output}: no rows of modality {modality!r} to search (modalities: {found})")
    shared = output_space(table) == EMBEDDING_SPACES[1]
    modalities = sorted({table.modality[i] for i in candidates})
    if len(modalities) > 1 and not shared:
        warnings.warn(
            f"{output}: rows of {', '.join(modalities)} in each encoder's own space (space "
            f"{table.attrs.get('space', 'not stated')}): similarities across modalities are not comparable; "
            "search one with --modality, or embed with --space shared",
            UserWarning,
            stacklevel=2,
        )
    vector, described, exclude = _query_vector(table, query, modality, checkpoint, device, Path(output), shared)
    left_out = np.array([table.path[i] in exclude for i in candidates], dtype=bool)
    if left_out.all():
        raise InputError(f"{output}: no rows to search besides the query's own")
    # The query's own rows are group 1, left out of the answer.
    index = CosineIndex(table.embedding, candidates, groups=np.isin(np.arange(len(table)), candidates[left_out]))
    found_rows, scores = index.nearest(vector[None], k, np.ones(1, np.int64))
    neighbours = [
        Neighbour(
            rank=r + 1,
            row=int(i),
            similarity=float(score),
            path=table.path[i],
            modality=table.modality[i],
            source=table.source[i],
            bounds=tuple(float(v) for v in table.bounds[i]),  # type: ignore[arg-type]
        )
        for r, (i, score) in enumerate(zip(found_rows[0], scores[0]))
        if i >= 0
    ]
    return SearchResult(described, neighbours, int((~left_out).sum()))


def output_space(table: Embeddings) -> str:
    """The embedding space of an output's rows: its ``space`` attribute, else (outputs written before
    ``salibi embed --space``) ``encoder``."""
    value = table.attrs.get("space", EMBEDDING_SPACES[0])
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if text in EMBEDDING_SPACES else EMBEDDING_SPACES[0]


def _query_vector(
    table: Embeddings, query: str, modality: str | None, checkpoint: Any, device: str, output: Path, shared: bool
) -> tuple[np.ndarray, str, set[str]]:
    """The query's embedding, a description of it and the paths left out of the answer."""
    rows = [i for i, p in enumerate(table.path) if p == query]
    if rows:
        if modality is not None:
            rows = [i for i in rows if table.modality[i] == modality] or rows
        if len(rows) > 1:
            found = ", ".join(table.modality[i] for i in rows)
            raise InputError(f"--query {query}: the row has several modalities ({found}); choose one with --modality")
        return table.embedding[rows[0]], f"row {rows[0]} ({query}, {table.modality[rows[0]]})", {query}
    if query.isdigit():
        row = int(query)
        if row >= len(table):
            raise InputError(f"--query {query}: {output} has {len(table)} rows (numbered from 0)")
        return table.embedding[row], f"row {row} ({table.path[row]}, {table.modality[row]})", {table.path[row]}
    path = Path(query)
    if path.is_file():
        if checkpoint is None:
            raise InputError(
                f"--query {query}: a file is embedded first: give --checkpoint (the one that made {output})"
            )
        vector, what = embed_file(path, checkpoint, table.attrs.get("checkpoint_sha256"), device, modality, shared)
        return vector, f"{query} ({what})", set()
    raise InputError(
        f"--query {query}: neither a path of a row of {output}, a row number, nor a file; "
        "give one of them (e.g. a path salibi embed wrote, such as scene.tif#r3c5)"
    )


def embed_file(
    path: Path,
    checkpoint: str | os.PathLike[str],
    expected_sha256: str | None,
    device: str,
    modality: str | None,
    shared: bool = False,
) -> tuple[np.ndarray, str]:
    """One raster embedded as a tile with ``checkpoint`` (which must be the output's: same sha256),
    in the shared space when ``shared``."""
    from salibi.distributed.ranks import resolve_device
    from salibi.embed.batches import WindowBatches
    from salibi.embed.embed_job import checkpoint_specs
    from salibi.embed.inputs.tiles import read_tile
    from salibi.embed.output.store import output_attrs
    from salibi.embed.records import ReadSettings
    from salibi.embed.settings import DEFAULT_WINDOW_PATCHES
    from salibi.models import load_checkpoint

    torch_device = resolve_device(device)
    model = load_checkpoint(checkpoint, map_location=torch_device)
    folder = Path(model.checkpoint_path or checkpoint)
    sha = output_attrs(model, folder, None, None, "")["checkpoint_sha256"]
    if expected_sha256 and sha != expected_sha256:
        raise InputError(
            f"--checkpoint {checkpoint}: not the checkpoint that made the output (sha256 {sha[:12]}... vs "
            f"{str(expected_sha256)[:12]}...); embeddings of different checkpoints are not comparable"
        )
    wanted = modality if modality in model.modalities else "auto"
    settings = ReadSettings(wanted, None, checkpoint_specs(model), int(model.config.patch_size), DEFAULT_WINDOW_PATCHES)
    chip = read_tile(path.name, path, settings)
    if chip.failure is not None:
        raise InputError(f"--query {path}: cannot be embedded: {chip.failure}")
    rows: list[np.ndarray] = []
    batches = WindowBatches(model, torch_device, 32, lambda _, row: rows.append(row), lambda: None, shared=shared)
    batches.add(chip)
    batches.drain()
    return rows[0], f"{chip.modality}, bands {chip.bands}"
