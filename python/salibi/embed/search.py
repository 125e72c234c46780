"""Nearest neighbours in an embeddings output (``salibi search``), through faiss.

The rows (optionally one ``modality`` only) are L2-normalised and put in a ``faiss.IndexFlatIP``:
an exact inner-product index, so the scores are cosine similarities and the neighbours exact.
The query is a row of the output (its ``path``, or its row number) or a raster file, embedded on
the spot with the checkpoint that made the output (checked by its sha256) and the same band
contract as ``salibi embed``. The query's own rows are left out of the answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.embeddings import Embeddings, read_embeddings
from salibi.errors import InputError

__all__ = ["Neighbour", "SearchResult", "embed_file", "search"]


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


def search(
    output: str | os.PathLike[str],
    query: str,
    k: int = 10,
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
    vector, described, exclude = _query_vector(table, query, modality, checkpoint, device, Path(output))
    keep = np.array([i for i in candidates if table.path[i] not in exclude], dtype=np.int64)
    if not len(keep):
        raise InputError(f"{output}: no rows to search besides the query's own")
    faiss = _faiss()
    index = faiss.IndexFlatIP(table.embedding.shape[1])
    index.add(_normalised(table.embedding[keep]))
    scores, found_rows = index.search(_normalised(vector[None]), min(k, len(keep)))
    neighbours = [
        Neighbour(
            rank=r + 1,
            row=int(keep[i]),
            similarity=float(score),
            path=table.path[keep[i]],
            modality=table.modality[keep[i]],
            source=table.source[keep[i]],
            bounds=tuple(float(v) for v in table.bounds[keep[i]]),  # type: ignore[arg-type]
        )
        for r, (i, score) in enumerate(zip(found_rows[0], scores[0]))
        if i >= 0
    ]
    return SearchResult(described, neighbours, len(keep))


def _query_vector(
    table: Embeddings, query: str, modality: str | None, checkpoint: Any, device: str, output: Path
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
        vector, what = embed_file(path, checkpoint, table.attrs.get("checkpoint_sha256"), device, modality)
        return vector, f"{query} ({what})", set()
    raise InputError(
        f"--query {query}: neither a path of a row of {output}, a row number, nor a file; "
        "give one of them (e.g. a path salibi embed wrote, such as scene.tif#r3c5)"
    )


def embed_file(
    path: Path, checkpoint: str | os.PathLike[str], expected_sha256: str | None, device: str, modality: str | None
) -> tuple[np.ndarray, str]:
    """One raster embedded as a tile with ``checkpoint`` (which must be the output's: same sha256)."""
    from salibi.devices import resolve_device
    from salibi.embed.batches import WindowBatches
    from salibi.embed.records import ReadSettings
    from salibi.embed.run import checkpoint_specs
    from salibi.embed.store import output_attrs
    from salibi.embed.tiles import DEFAULT_WINDOW_PATCHES, read_tile
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
    batches = WindowBatches(model, torch_device, 32, lambda _, row: rows.append(row), lambda: None)
    batches.add(chip)
    batches.drain()
    return rows[0], f"{chip.modality}, bands {chip.bands}"
