"""The study's results: ``ablation.json`` (the document), ``ablation.md`` (one table and a reading),
``ablation.png`` (values and paired differences with their intervals).

``ablation.json`` (format ``salibi-ablation``, version 1)::

    {"variants":    {NAME: {TASK: {PROTOCOL: {METRIC: value}}}},      # NAME: each variant, random-init
     "intervals":   {NAME: {TASK: {PROTOCOL: {METRIC: [low, high]}}}},
     "differences": {NAME: {TASK: {PROTOCOL: {METRIC: {"delta": d, "interval": [low, high],
                                                      "excludes_zero": bool}}}}},   # NAME minus scale-alibi
     "runs":        {NAME: [run or checkpoint folders, one per seed]},
     "commands":    ["salibi pretrain ...", "salibi eval geobench ...", ...],
     "reference": "scale-alibi", "seeds": [0], "n_test": {TASK: n}, "skipped": {TASK: why},
     "failed": {NAME: {TASK: why}}, "settings": {...}, "bootstrap": {...},
     "retrieval": {...}}                                               # salibi.ablate.retrieval

Values are means over seeds; intervals and paired intervals come from :mod:`salibi.eval.scoring.differences`.
The ``majority`` protocol (chance) appears under every name and has no difference.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from salibi.ablate.retrieval import retrieval_text
from salibi.ablate.study_plan import REFERENCE, reading_against_reference
from salibi.eval.output.report import format_interval, format_number
from salibi.eval.scoring.differences import paired_difference, run_result, variant_value
from salibi.eval.scoring.task_metrics import headline_metric
from salibi.fileio import write_atomic, write_json
from salibi.vocabulary import ABLATION_FORMAT, ABLATION_FORMAT_VERSION, RANDOM_INIT

__all__ = ["build_document", "markdown_report", "summary_text", "write_chart", "write_document"]

_SUFFIXES = ("_std", "_iqm")


def _keys(documents: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    keys: dict[tuple[str, str, str], None] = {}
    for document in documents:
        for task, protocols in sorted(document.get("tasks", {}).items()):
            for protocol, metrics in sorted(protocols.items()):
                for metric in metrics:
                    if not metric.endswith(_SUFFIXES):
                        keys[(task, protocol, metric)] = None
    return list(keys)


def _put(tree: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def build_document(
    documents: Mapping[str, Sequence[Mapping[str, Any]]],
    runs: Mapping[str, Sequence[str]],
    commands: Sequence[str],
    seeds: Sequence[int],
    settings: Mapping[str, Any],
    retrieval: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ablation document from the results documents of each name (one per seed, in ``seeds``
    order; none when GEO-Bench was not evaluated) and the ``retrieval`` section, if any."""
    keys = _keys(documents.get(REFERENCE, []))
    variants: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    differences: dict[str, Any] = {}
    for name, docs in documents.items():
        for task, protocol, metric in keys:
            value = variant_value(docs, task, protocol, metric)
            if value is None:
                continue
            _put(variants, (name, task, protocol, metric), value.value)
            _put(intervals, (name, task, protocol, metric), [value.low, value.high])
            if name == REFERENCE or protocol == "majority":
                continue
            mine = [run_result(d, task, protocol, metric) for d in docs]
            theirs = [run_result(d, task, protocol, metric) for d in documents[REFERENCE]]
            if any(r is None for r in [*mine, *theirs]):
                continue
            delta = paired_difference([r for r in mine if r], [r for r in theirs if r])
            entry = {"delta": delta.value, "interval": [delta.low, delta.high], "excludes_zero": _excludes_zero(delta)}
            _put(differences, (name, task, protocol, metric), entry)
    reference_runs = [r for d in documents.get(REFERENCE, []) for r in d.get("runs", [])]
    first = documents[REFERENCE][0] if documents.get(REFERENCE) else {}
    document = {
        "format": ABLATION_FORMAT,
        "format_version": ABLATION_FORMAT_VERSION,
        "reference": REFERENCE,
        "variants": variants,
        "intervals": intervals,
        "differences": differences,
        "runs": {name: list(folders) for name, folders in runs.items()},
        "commands": list(commands),
        "seeds": list(seeds),
        "n_test": {r["task"]: int(r["n_test"]) for r in reference_runs if "n_test" in r},
        "skipped": dict(first.get("skipped", {})),
        "failed": {
            name: dict(d.get("failed", {})) for name, docs in documents.items() for d in docs if d.get("failed")
        },
        "bootstrap": first.get("bootstrap", {}),
        "settings": dict(settings),
    }
    if retrieval is not None:
        document["retrieval"] = dict(retrieval)
    return document


def _excludes_zero(interval: Any) -> bool:
    return bool(interval.low > 0 or interval.high < 0)


def write_document(document: Mapping[str, Any], path: Path) -> Path:
    return write_json(path, dict(document))


def _names(document: Mapping[str, Any]) -> list[str]:
    names = list(document["variants"])
    return [n for n in names if n != RANDOM_INIT] + [n for n in names if n == RANDOM_INIT]


def _rows(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    reference = document["variants"].get(REFERENCE, {})
    return [
        (task, protocol, metric)
        for task in sorted(reference)
        for protocol in sorted(reference[task])
        if protocol != "majority"
        for metric in reference[task][protocol]
    ]


def _describe(document: Mapping[str, Any]) -> str:
    settings = document.get("settings", {})
    steps = f"{settings.get('max_steps')} steps" if settings.get("max_steps") else f"{settings.get('epochs')} epochs"
    data = settings.get("data") or []
    seeds = document.get("seeds", [])
    compared = {task for task, _, _ in _rows(document)}
    tasks = ", ".join(f"{t} ({n} test samples)" for t, n in sorted(document.get("n_test", {}).items()) if t in compared)
    return (
        f"Model `{settings.get('model')}`, {steps} of {settings.get('batch_size')} chips, lr {settings.get('lr')}, "
        f"on {len(data)} aligned file(s); {len(seeds)} pretraining seed(s); evaluated on {tasks or 'no task'}."
    )


def markdown_report(document: Mapping[str, Any], title: str) -> str:
    """``ablation.md``: the settings, one table (every name, value, interval, difference, paired
    interval, chance), one sentence per task and protocol saying which differences exclude 0, and
    the commands."""
    lines = [f"# Position-information ablation: `{title}`", "", _describe(document), "", summary_text(document)]
    lines += ["Commands (in order):", "", "```sh", *document.get("commands", []), "```"]
    return "\n".join(lines) + "\n"


def summary_text(document: Mapping[str, Any]) -> str:
    """The tables and their readings (what ``salibi ablate`` prints): GEO-Bench's, then retrieval's."""
    parts = []
    if "geobench" in document.get("settings", {}).get("evals", ("geobench",)):
        parts.append(_geobench_text(document))
    if "retrieval" in document:
        parts.append(retrieval_text(document["retrieval"]))
    return "\n".join(parts) or "Nothing was evaluated.\n"


def _geobench_text(document: Mapping[str, Any]) -> str:
    names = _names(document)
    variants, intervals, differences = document["variants"], document["intervals"], document["differences"]
    lines = [
        "Value: mean over seeds; 95 % interval: bootstrap over test samples (and seeds). Δ: the row minus "
        f"`{REFERENCE}` on the same test samples (seed with seed), with its paired 95 % interval. `random-init`: the "
        "same model untrained (the runs' shared initial weights); chance: the majority class.",
        "",
        "| task | protocol | metric | model | value | 95 % interval | Δ vs scale-alibi | paired 95 % interval | chance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, protocol, metric in _rows(document):
        chance = variants.get(REFERENCE, {}).get(task, {}).get("majority", {}).get(metric)
        for name in names:
            value = variants.get(name, {}).get(task, {}).get(protocol, {}).get(metric)
            if value is None:
                continue
            interval = intervals[name][task][protocol].get(metric)
            diff = differences.get(name, {}).get(task, {}).get(protocol, {}).get(metric)
            delta = format_number(diff["delta"], True) if diff else "–"
            paired = format_interval(diff["interval"]) if diff else "–"
            lines.append(
                f"| {task} | {protocol} | {metric} | {name} | {format_number(value)} | {format_interval(interval)} | {delta} | "
                f"{paired} | {format_number(chance)} |"
            )
    chance_only = sorted(set(variants.get(REFERENCE, {})) - {task for task, _, _ in _rows(document)})
    if chance_only:
        lines += [
            "",
            f"Only chance was computed on {', '.join(chance_only)}: no protocol of --protocol applies to it "
            "(segmentation tasks need seg-linear or seg-fpn).",
        ]
    lines += ["", "Reading:", ""]
    lines += _reading(document) or ["No task was evaluated."]
    if document.get("skipped"):
        lines += ["", "Skipped:"] + [f"- {t}: {why}" for t, why in sorted(document["skipped"].items())]
    if document.get("failed"):
        lines += ["", "Failed:"] + [f"- {n}: {t}: {why}" for n, f in document["failed"].items() for t, why in f.items()]
    return "\n".join(lines) + "\n"


def _reading(document: Mapping[str, Any]) -> list[str]:
    sentences = []
    differences = document["differences"]
    seen: set[tuple[str, str]] = set()
    for task, protocol, metric in _rows(document):
        if (task, protocol) in seen or (found := headline_metric({metric: 0.0})) is None or found[0] != metric:
            continue
        seen.add((task, protocol))
        apart: list[str] = []
        overlapping: list[str] = []
        for name in _names(document):
            diff = differences.get(name, {}).get(task, {}).get(protocol, {}).get(metric)
            if not diff:
                continue
            text = f"{name} {format_number(diff['delta'], True)} {format_interval(diff['interval'])}"
            (apart if diff["excludes_zero"] else overlapping).append(text)
        n = document.get("n_test", {}).get(task, "?")
        sentences.append(
            f"- {task}, {protocol} {metric} ({n} test samples): " + reading_against_reference(apart, overlapping) + "."
        )
    return sentences


def write_chart(document: Mapping[str, Any], path: Path) -> Path | None:
    """Per task and protocol (headline metric): each name's value with its interval and the chance
    line (left); each difference from scale-alibi with its paired interval and the zero line (right)."""
    panels = []
    for task, protocol, metric in _rows(document):
        found = headline_metric({metric: 0.0})
        if found is not None and found[0] == metric:
            panels.append((task, protocol, metric))
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _names(document)
    fig, axes = plt.subplots(len(panels), 2, figsize=(9.0, 0.6 + 0.45 * len(names) * len(panels)), squeeze=False)
    for row, (task, protocol, metric) in enumerate(panels):
        left, right = axes[row]
        ys = list(range(len(names)))[::-1]
        for y, name in zip(ys, names):
            value = document["variants"].get(name, {}).get(task, {}).get(protocol, {}).get(metric)
            if value is None:
                continue
            low, high = document["intervals"][name][task][protocol][metric]
            left.errorbar(
                value, y, xerr=[[max(0, value - low)], [max(0, high - value)]], fmt="o", color="C0", capsize=3
            )
            diff = document["differences"].get(name, {}).get(task, {}).get(protocol, {}).get(metric)
            if diff:
                d, (dl, dh) = diff["delta"], diff["interval"]
                colour = "C3" if diff["excludes_zero"] else "C7"
                right.errorbar(d, y, xerr=[[max(0, d - dl)], [max(0, dh - d)]], fmt="o", color=colour, capsize=3)
        chance = document["variants"].get(REFERENCE, {}).get(task, {}).get("majority", {}).get(metric)
        if chance is not None:
            left.axvline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
            left.legend(loc="lower right", fontsize=7)
        right.axvline(0.0, color="black", linewidth=1)
        for ax in (left, right):
            ax.set_yticks(ys)
            ax.set_yticklabels(names, fontsize=8)
        left.set_title(f"{task} {protocol}: {metric}, 95 % interval", fontsize=8)
        right.set_title(f"minus {REFERENCE}, paired 95 % interval", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_atomic(path, buffer.getvalue())
