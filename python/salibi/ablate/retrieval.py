"""Cross-modal retrieval in the study: each checkpoint ranked on the study's own aligned data
(``salibi eval retrieval``, results in ``eval/retrieval/LABEL.json``), and the ``retrieval``
section of ``ablation.json`` with its table::

    "retrieval": {"split": "validation", "sets": [...], "modalities": [...], "n_queries": N,
                  "chance":      {PAIR: {METRIC: value}},
                  "variants":    {NAME: {PAIR: {METRIC: value}}},         # NAME: each variant, random-init
                  "intervals":   {NAME: {PAIR: {METRIC: [low, high]}}},
                  "differences": {NAME: {PAIR: {METRIC: {"delta", "interval", "excludes_zero"}}}},  # minus scale-alibi
                  "bootstrap": {...}}
    "retrieval": {"skipped": why}                                          # e.g. no chip of the split

Values are means over seeds, intervals and paired differences come from the same machinery as
GEO-Bench's (:mod:`salibi.eval.scoring.differences`: seeds and queries resampled, seed ``s`` of a
variant paired with seed ``s`` of ``scale-alibi``, both ranked on the same chips). Retrieval uses
the unimodal encoders only: where the modalities' GSDs differ, it is where a scale-aware bias can
change what each encoder learned to match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from salibi.ablate.study_plan import REFERENCE, AblationSettings, StudyLayout, reading_against_reference
from salibi.eval.output.report import format_interval
from salibi.eval.retrieval.recall import HEADLINE, METRICS
from salibi.eval.retrieval.report import difference_entry, format_metric_interval, format_value, pair_result
from salibi.eval.scoring.bootstrap import CONFIDENCE_LABEL
from salibi.eval.scoring.differences import combine_seeds
from salibi.vocabulary import RANDOM_INIT

__all__ = ["evaluate_checkpoint", "retrieval_arguments", "retrieval_section", "retrieval_text"]

Log = Callable[[str], None]


def retrieval_arguments(settings: AblationSettings, checkpoint: str, output: str) -> list[str]:
    """The ``salibi eval retrieval`` arguments equivalent to one evaluation of the study."""
    return [
        "eval",
        "retrieval",
        *settings.data,
        "--checkpoint",
        checkpoint,
        "--split",
        settings.retrieval_split,
        "--output",
        output,
        "--batch-size",
        str(settings.eval_batch_size),
        "--device",
        settings.device,
    ]


def evaluate_checkpoint(
    settings: AblationSettings, label: str, checkpoint: str, layout: StudyLayout, fresh: bool, log: Log
) -> tuple[dict[str, Any], bool]:
    """The retrieval document of one checkpoint, kept from ``eval/retrieval/LABEL.json`` when it is
    of this checkpoint, split and data and the run did not train in this call (``fresh``); and
    whether it was computed. InputError when the data cannot be queried (e.g. no chip of the split)."""
    from salibi.errors import SalibiError
    from salibi.eval.retrieval.evaluate import evaluate_retrieval
    from salibi.eval.retrieval.report import read_retrieval, write_retrieval
    from salibi.eval.retrieval.settings import RetrievalSettings
    from salibi.models import resolve_checkpoint

    path = layout.retrieval(label)
    resolved = str(resolve_checkpoint(checkpoint))
    if path.is_file() and not fresh:
        try:
            previous = read_retrieval(path)
        except SalibiError:
            previous = None
        wanted = (resolved, settings.retrieval_split, list(settings.data))
        if previous is not None and (previous["checkpoint"], previous["split"], previous["sets"]) == wanted:
            return previous, False
    evaluation = RetrievalSettings(
        split=settings.retrieval_split, batch_size=settings.eval_batch_size, device=settings.device
    )
    document = evaluate_retrieval(settings.data, resolved, evaluation, log=lambda message: log(f"  {label}: {message}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_retrieval(document, path)
    return document, True


def _put(tree: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def retrieval_section(documents: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The ``retrieval`` section from each name's retrieval documents (one per seed, in seed order)."""
    reference = documents[REFERENCE]
    first = reference[0]
    variants: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    differences: dict[str, Any] = {}
    for name, docs in documents.items():
        for pair in first["results"]:
            for metric in METRICS:
                mine = [pair_result(d, pair, metric) for d in docs]
                value = combine_seeds(mine)
                _put(variants, (name, pair, metric), value.value)
                _put(intervals, (name, pair, metric), [value.low, value.high])
                if name != REFERENCE:
                    theirs = [pair_result(d, pair, metric) for d in reference]
                    _put(differences, (name, pair, metric), difference_entry(mine, theirs))
    return {
        "split": first["split"],
        "sets": list(first["sets"]),
        "modalities": list(first["modalities"]),
        "n_queries": int(first["n_queries"]),
        "chance": first["chance"],
        "variants": variants,
        "intervals": intervals,
        "differences": differences,
        "bootstrap": first.get("bootstrap", {}),
    }


def _names(section: Mapping[str, Any]) -> list[str]:
    names = list(section["variants"])
    return [n for n in names if n != RANDOM_INIT] + [n for n in names if n == RANDOM_INIT]


def retrieval_text(section: Mapping[str, Any]) -> str:
    """The retrieval table and its reading (or why retrieval was skipped)."""
    if "skipped" in section:
        return f"Cross-modal retrieval: skipped: {section['skipped']}\n"
    n = section["n_queries"]
    lines = [
        f"Cross-modal retrieval ({n} chips of the {section['split']} split per pair; chip i of the first modality "
        f"finds chip i among all {n} of the second by cosine similarity of the shared contrastive projections, a "
        f"tie counting against the query). Value: mean over seeds; {CONFIDENCE_LABEL} interval: bootstrap over "
        f"queries (and seeds); Δ: the row minus `{REFERENCE}` on the same queries, with its paired interval; lower "
        "median ranks are better.",
        "",
        f"| pair | metric | model | value | {CONFIDENCE_LABEL} interval | Δ vs {REFERENCE} | paired "
        f"{CONFIDENCE_LABEL} interval | chance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in section["chance"]:
        for metric in METRICS:
            for name in _names(section):
                value = section["variants"][name][pair][metric]
                interval = section["intervals"][name][pair][metric]
                diff = section["differences"].get(name, {}).get(pair, {}).get(metric)
                delta = format_value(metric, diff["delta"], True) if diff else "–"
                paired = format_metric_interval(metric, diff["interval"]) if diff else "–"
                lines.append(
                    f"| {pair} | {metric} | {name} | {format_value(metric, value)} | "
                    f"{format_metric_interval(metric, interval)} | {delta} | {paired} | "
                    f"{format_value(metric, section['chance'][pair][metric])} |"
                )
    lines += ["", "Reading (retrieval):", ""]
    for pair in section["chance"]:
        apart: list[str] = []
        overlapping: list[str] = []
        for name in _names(section):
            diff = section["differences"].get(name, {}).get(pair, {}).get(HEADLINE)
            if not diff:
                continue
            text = f"{name} {diff['delta']:+.3f} {format_interval(diff['interval'])}"
            (apart if diff["excludes_zero"] else overlapping).append(text)
        lines.append(f"- {pair}, {HEADLINE} ({n} queries): " + reading_against_reference(apart, overlapping) + ".")
    return "\n".join(lines) + "\n"
