"""``salibi eval retrieval`` as one call: :func:`evaluate_retrieval` (the checkpoint, and with a
baseline its untrained twin, on the same chips) and :func:`score_features` (the metrics of every
ordered pair of modalities on fixed features)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from salibi.eval.retrieval.projections import RetrievalChips, contrastive_features, open_chips
from salibi.eval.retrieval.recall import chance, match_ranks, score_ranks
from salibi.eval.retrieval.report import Scores, add_baseline, new_document, pair_name
from salibi.eval.retrieval.settings import RetrievalSettings
from salibi.eval.scoring.differences import RunResult
from salibi.vocabulary import RANDOM_INIT

__all__ = ["evaluate_retrieval", "score_features"]

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def score_features(features: Mapping[str, np.ndarray]) -> dict[str, dict[str, RunResult]]:
    """Per ordered pair ``a->b`` of the modalities of ``features`` (modality -> (N, P), rows the
    same chips), every metric with its replicates over queries."""
    return {
        pair_name(a, b): score_ranks(match_ranks(features[a], features[b])) for a, b in permutations(list(features), 2)
    }


def _scores(model: Any, chips: RetrievalChips, batch_size: int) -> Scores:
    return score_features(contrastive_features(model, chips, batch_size))


def evaluate_retrieval(
    sets: Sequence[str | os.PathLike[str]],
    checkpoint: str | os.PathLike[str],
    settings: RetrievalSettings | None = None,
    log: Log = _quiet,
    model: Any = None,
) -> dict[str, Any]:
    """The retrieval document (:mod:`~salibi.eval.retrieval.report`) of ``checkpoint`` on the
    ``settings.split`` chips of the aligned ``sets`` (None: :class:`RetrievalSettings`' defaults); with ``settings.baseline`` the untrained twin
    beside it (:func:`salibi.eval.baseline.random_init_reference`). ``model``: the loaded model to
    use instead of loading ``checkpoint`` (which then only names it)."""
    from salibi.distributed.ranks import resolve_device
    from salibi.eval.baseline import random_init_reference
    from salibi.models import load_checkpoint, resolve_checkpoint

    settings = settings or RetrievalSettings()
    device = resolve_device(settings.device)
    resolved = resolve_checkpoint(checkpoint) if model is None else Path(checkpoint)
    if model is None:
        model = load_checkpoint(resolved, map_location=device, attention=settings.attention)
    model = model.to(device).eval()
    chips = open_chips(sets, settings.dataset_split, model)
    for assumption in chips.assumptions:
        log(f"assumed: {assumption}")
    log(f"retrieval: {len(chips)} chips ({settings.split}) of {', '.join(chips.modalities)} on {device}")
    scores = _scores(model, chips, settings.batch_size)
    document = new_document(
        str(resolved),
        [str(s) for s in sets],
        settings.split,
        chips.modalities,
        len(chips),
        scores,
        chance(len(chips)),
        chips.assumptions,
    )
    if settings.baseline == RANDOM_INIT:
        twin, description = random_init_reference(resolved, model)
        log(description)
        add_baseline(document, RANDOM_INIT, description, _scores(twin.to(device), chips, settings.batch_size))
    return document
