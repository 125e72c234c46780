"""The ``salibi-retrieval`` document (version 1) and the table ``salibi eval retrieval`` prints.

::

    {"format": "salibi-retrieval", "version": 1, "checkpoint": ..., "sets": [...], "split": "validation",
     "modalities": ["sar", "lores"], "space": "shared", "n_queries": N,
     "results":    {PAIR: {METRIC: value}},          # PAIR "a->b": query modality a, candidates b
     "intervals":  {PAIR: {METRIC: [low, high]}},    # 95 % bootstrap over queries
     "chance":     {PAIR: {METRIC: value}},
     "replicates": {PAIR: {METRIC: [...]}},          # the metric on each resample (pairs differences)
     "bootstrap":  {"resamples": 200, "seed": 0, "over": "queries", "confidence": 0.95},
     "assumptions": [...],                           # bands taken in order where unnamed
     "baseline": {"name": "random-init", "description": ..., "results": ..., "intervals": ...,
                  "replicates": ..., "differences": {PAIR: {METRIC: {"delta": d, "interval": [low, high],
                                                                       "excludes_zero": bool}}}}}

METRIC: ``recall@1``, ``recall@5``, ``recall@10``, ``median_rank`` (:mod:`~salibi.eval.retrieval.recall`).
A difference is the checkpoint minus the untrained model on the same resamples of the queries
(:func:`salibi.eval.scoring.differences.paired_difference`); for the median rank a negative one is
the better.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, MissingInputError
from salibi.eval.output.report import format_interval, format_number
from salibi.eval.output.results import rounded
from salibi.eval.retrieval.recall import BOOTSTRAP_OVER, HEADLINE, LOWER_IS_BETTER, MEDIAN_RANK, METRICS, bootstrap_key
from salibi.eval.scoring.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, CONFIDENCE_LABEL
from salibi.eval.scoring.differences import RunResult, combine_seeds, paired_difference
from salibi.fileio import write_json
from salibi.vocabulary import RETRIEVAL_FORMAT, RETRIEVAL_FORMAT_VERSION

__all__ = [
    "Scores",
    "add_baseline",
    "difference_entry",
    "format_metric_interval",
    "format_value",
    "markdown_table",
    "new_document",
    "pair_name",
    "pair_result",
    "read_retrieval",
    "write_retrieval",
]

#: pair -> metric -> the metric's value and replicates
Scores = Mapping[str, Mapping[str, RunResult]]
#: The embedding space the features are taken in (salibi.vocabulary.EMBEDDING_SPACES).
SPACE = "shared"


def pair_name(query: str, candidates: str) -> str:
    """``"lores->hires"``: queries in ``query``, the right answer among the chips of ``candidates``."""
    return f"{query}->{candidates}"


def _section(scores: Scores) -> dict[str, Any]:
    """``results``, ``intervals`` and ``replicates`` of one model's scores."""
    results: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    replicates: dict[str, Any] = {}
    for pair, metrics in scores.items():
        for metric, result in metrics.items():
            interval = combine_seeds([result])
            results.setdefault(pair, {})[metric] = result.value
            intervals.setdefault(pair, {})[metric] = [interval.low, interval.high]
            replicates.setdefault(pair, {})[metric] = rounded(result.replicates)
    return {"results": results, "intervals": intervals, "replicates": replicates}


def new_document(
    checkpoint: str,
    sets: Sequence[str],
    split: str,
    modalities: Sequence[str],
    n_queries: int,
    scores: Scores,
    chance: Mapping[str, float],
    assumptions: Sequence[str] = (),
) -> dict[str, Any]:
    """The document of one checkpoint's scores (see the module docstring)."""
    return {
        "format": RETRIEVAL_FORMAT,
        "version": RETRIEVAL_FORMAT_VERSION,
        "checkpoint": checkpoint,
        "sets": list(sets),
        "split": split,
        "modalities": list(modalities),
        "space": SPACE,
        "n_queries": int(n_queries),
        **_section(scores),
        "chance": {pair: dict(chance) for pair in scores},
        "bootstrap": {
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": BOOTSTRAP_SEED,
            "over": BOOTSTRAP_OVER,
            "confidence": CONFIDENCE,
        },
        "assumptions": list(assumptions),
    }


def difference_entry(mine: Sequence[RunResult], reference: Sequence[RunResult]) -> dict[str, Any]:
    """``{"delta", "interval", "excludes_zero"}`` of ``mine`` minus ``reference`` (seed with seed),
    paired on the same resamples."""
    delta = paired_difference(list(mine), list(reference))
    return {
        "delta": delta.value,
        "interval": [delta.low, delta.high],
        "excludes_zero": bool(delta.low > 0 or delta.high < 0),
    }


def add_baseline(document: dict[str, Any], name: str, description: str, scores: Scores) -> dict[str, Any]:
    """``document`` with ``baseline``: the untrained model's scores and every difference from it."""
    differences: dict[str, Any] = {}
    for pair, metrics in scores.items():
        for metric, theirs in metrics.items():
            mine = pair_result(document, pair, metric)
            differences.setdefault(pair, {})[metric] = difference_entry([mine], [theirs])
    document["baseline"] = {"name": name, "description": description, **_section(scores), "differences": differences}
    return document


def pair_result(document: Mapping[str, Any], pair: str, metric: str, baseline: bool = False) -> RunResult:
    """One metric of one pair of a document (or of its baseline), with its stored replicates."""
    section = document["baseline"] if baseline else document
    try:
        value = section["results"][pair][metric]
        series = section["replicates"][pair][metric]
    except (KeyError, TypeError):
        raise DataFormatError(
            f"retrieval results of {document.get('checkpoint', '?')}: no {metric} of {pair}"
            + (" for the baseline" if baseline else "")
            + "; evaluate again with this salibi (salibi eval retrieval --output)"
        ) from None
    bootstrap = document.get("bootstrap", {})
    key = bootstrap_key(
        int(bootstrap.get("resamples", BOOTSTRAP_RESAMPLES)), int(bootstrap.get("seed", BOOTSTRAP_SEED))
    )
    replicates = np.array([np.nan if v is None else float(v) for v in series], dtype=np.float64)
    return RunResult(float("nan") if value is None else float(value), replicates, int(document["n_queries"]), key)


def write_retrieval(document: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """The document as strict JSON, written atomically."""
    return write_json(path, dict(document))


def read_retrieval(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``salibi-retrieval`` document; :class:`DataFormatError` naming the file for anything else."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such retrieval results; write them with salibi eval retrieval --output")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not JSON ({err}); pass a file written by salibi eval retrieval") from None
    if not isinstance(document, dict) or document.get("format") != RETRIEVAL_FORMAT:
        raise DataFormatError(f"{path}: not salibi retrieval results; pass a file written by salibi eval retrieval")
    if document.get("version") != RETRIEVAL_FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: retrieval results version {document.get('version')}; this salibi reads version "
            f"{RETRIEVAL_FORMAT_VERSION}: evaluate again"
        )
    return document


def format_value(metric: str, value: Any, signed: bool = False) -> str:
    """A metric in a table: recalls to three decimals, ranks to one."""
    if metric == MEDIAN_RANK and isinstance(value, (int, float)) and np.isfinite(value):
        return f"{value:+.1f}" if signed else f"{value:.1f}"
    return format_number(value, signed)


def format_metric_interval(metric: str, pair: Any) -> str:
    """An interval of a metric in a table: as :func:`format_value` gives its value."""
    if metric == MEDIAN_RANK and pair and all(isinstance(v, (int, float)) and np.isfinite(v) for v in pair):
        return f"[{pair[0]:.1f}, {pair[1]:.1f}]"
    return format_interval(pair)


def _better(metric: str, delta: float) -> bool:
    return delta < 0 if metric in LOWER_IS_BETTER else delta > 0


def markdown_table(document: Mapping[str, Any], label: str = "pretrained") -> str:
    """One row per pair and metric: the checkpoint with its interval, chance, and with a baseline
    the untrained model, the difference and its paired interval; then one sentence per pair."""
    baseline = document.get("baseline")
    n = document["n_queries"]
    head = f"| pair | metric | {label} | {CONFIDENCE_LABEL} interval |"
    rule = "|---|---|---|---|"
    if baseline:
        head += f" random init | {CONFIDENCE_LABEL} interval | difference | paired {CONFIDENCE_LABEL} interval |"
        rule += "---|---|---|---|"
    lines = [head + " chance |", rule + "---|"]
    for pair, metrics in document["results"].items():
        for metric in [m for m in METRICS if m in metrics]:
            row = (
                f"| {pair} | {metric} | {format_value(metric, metrics[metric])} | "
                f"{format_metric_interval(metric, document['intervals'][pair][metric])} |"
            )
            if baseline:
                diff = baseline["differences"][pair][metric]
                row += (
                    f" {format_value(metric, baseline['results'][pair][metric])} | "
                    f"{format_metric_interval(metric, baseline['intervals'][pair][metric])} | "
                    f"{format_value(metric, diff['delta'], True)} | {format_metric_interval(metric, diff['interval'])} |"
                )
            lines.append(row + f" {format_value(metric, document['chance'][pair][metric])} |")
    lines += [
        "",
        f"{n} queries per pair (split {document['split']}): chip i of the first modality finds chip i among all "
        f"{n} chips of the second, by cosine similarity of the shared contrastive projections; a tie counts "
        "against the query. Intervals: bootstrap over queries.",
    ]
    if baseline:
        lines.append("")
        lines += _reading(document, label)
    return "\n".join(lines) + "\n"


def _reading(document: Mapping[str, Any], label: str) -> list[str]:
    sentences = []
    for pair in document["results"]:
        diff = document["baseline"]["differences"][pair][HEADLINE]
        delta, interval = diff["delta"], format_interval(diff["interval"])
        if diff["excludes_zero"]:
            verdict = "better" if _better(HEADLINE, delta) else "worse"
            sentences.append(
                f"- {pair}: {label} is {verdict} than random init by {abs(delta):.3f} {HEADLINE} "
                f"(paired interval {interval} excludes 0)."
            )
        else:
            sentences.append(
                f"- {pair}: no difference shown between {label} and random init ({delta:+.3f} {HEADLINE}, "
                f"paired interval {interval} includes 0)."
            )
    return sentences
