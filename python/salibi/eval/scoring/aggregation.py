"""``salibi eval geobench --compare A.json B.json --aggregate``: GEO-Bench's aggregate score.

For each results file and protocol, over the tasks of the file's headline partition:

1. each run's headline metric (accuracy, micro-F1, mIoU) is min-max normalised per task with
   the benchmark's ``normalizer.json`` (``{task: [min, max]}``, looked for at ``ROOT/`` and in
   ``ROOT/classification_v1.0/``, ``ROOT/segmentation_v1.0/``, ...) when one is found: ``(v -
   min) / (max - min)``; tasks it does not list are left out and named. Without one the raw
   scores are aggregated, and the table says so;
2. the interquartile mean over all tasks and seeds;
3. its stratified bootstrap interval as GEO-Bench's ``plot_tools.bootstrap_iqm_aggregate``:
   100 repeats, each redrawing every task's seed runs with replacement; each drawn run
   contributes its test-sample bootstrap replicate of that repeat, so deterministic protocols
   (one run per task) still get the uncertainty of their test sets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError
from salibi.eval.geobench.tasks import BENCHMARK_FOLDER
from salibi.eval.report import file_labels, load_results
from salibi.eval.scoring.bootstrap import AGGREGATE_REPEATS, BOOTSTRAP_SEED, Interval, stratified_bootstrap_iqm
from salibi.eval.scoring.task_metrics import headline_metric

__all__ = ["aggregate_scores", "aggregate_table", "load_normalizer"]

Normalizer = dict[str, tuple[float, float]]


def load_normalizer(root: str | os.PathLike[str] | None) -> tuple[Normalizer, list[Path]]:
    """Per-task (min, max) from every ``normalizer.json`` under ``root`` (the root itself and
    its benchmark folders), and the files read; empty when there is none."""
    if root is None:
        return {}, []
    root = Path(root).expanduser()
    candidates = [root / "normalizer.json"]
    if root.is_dir():
        candidates += sorted(p / "normalizer.json" for p in root.iterdir() if BENCHMARK_FOLDER.match(p.name))
    ranges: Normalizer = {}
    read = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            entries = {str(task): (float(pair[0]), float(pair[1])) for task, pair in data.items()}
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError) as err:
            raise DataFormatError(
                f"{path}: expected {{task: [min, max]}} as GEO-Bench writes it ({err}); fix or remove the file"
            ) from None
        ranges.update(entries)
        read.append(path)
    return ranges, read


def _strata(document: dict[str, Any], protocol: str) -> dict[str, list[tuple[float, list[float | None] | None]]]:
    """Task -> [(value, replicates)] of one protocol's runs in the headline partition."""
    partition = document.get("partition", "default")
    strata: dict[str, list[tuple[float, list[float | None] | None]]] = {}
    runs = [r for r in document.get("runs", []) if r["protocol"] == protocol and r["partition"] == partition]
    for run in runs:
        found = headline_metric(run.get("metrics", {}), str(run.get("kind", "")))
        if found is not None:
            metric, value = found
            strata.setdefault(run["task"], []).append((value, run.get("replicates", {}).get(metric)))
    if not runs:  # a version-1 document: its per-task summaries, without replicates
        for task, per_protocol in document.get("tasks", {}).items():
            found = headline_metric(per_protocol.get(protocol) or {})
            if found is not None:
                strata[task] = [(found[1], None)]
    return strata


def aggregate_scores(
    document: dict[str, Any],
    protocol: str,
    normalizer: Normalizer,
    repeats: int = AGGREGATE_REPEATS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[Interval, list[str], list[str]]:
    """The IQM interval of one protocol of one document, the tasks in it and the tasks left
    out for want of a normalisation range."""
    strata = _strata(document, protocol)
    values: dict[str, list[float]] = {}
    replicates: dict[str, list[Any]] = {}
    left_out = []
    for task, runs in sorted(strata.items()):
        if normalizer and task not in normalizer:
            left_out.append(task)
            continue
        low, high = normalizer.get(task, (0.0, 1.0))
        span = (high - low) or 1.0

        def scale(v: float | None, low: float = low, span: float = span) -> float:
            return float("nan") if v is None else (v - low) / span

        values[task] = [scale(v) for v, _ in runs]
        replicates[task] = [[scale(x) for x in r] if r else None for _, r in runs]
    return stratified_bootstrap_iqm(values, repeats, seed, replicates=replicates), sorted(values), left_out


def aggregate_table(
    paths: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str] | None = None,
    repeats: int = AGGREGATE_REPEATS,
    seed: int = BOOTSTRAP_SEED,
) -> str:
    """One row per protocol, one column per results file: IQM [95 % interval] (tasks)."""
    documents = [load_results(p) for p in paths]
    labels = file_labels(paths)
    normalizer, sources = load_normalizer(root)
    protocols = sorted({p for doc in documents for t in doc["tasks"].values() for p in t})
    lines = [
        "| protocol | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    notes: list[str] = []
    for protocol in protocols:
        cells = []
        for label, doc in zip(labels, documents):
            interval, tasks, left_out = aggregate_scores(doc, protocol, normalizer, repeats, seed)
            if not tasks:
                cells.append("–")
                continue
            cells.append(
                f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}] ({len(tasks)} task"
                f"{'s' if len(tasks) != 1 else ''})"
            )
            if left_out:
                notes.append(f"- {label} {protocol}: left out (not in normalizer.json): {', '.join(left_out)}")
        lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
    scores = (
        "scores min-max normalised per task with " + ", ".join(str(s) for s in sources)
        if sources
        else f"raw scores (no normalizer.json under {root if root is not None else '--root'}): not normalised per task"
    )
    lines += [
        "",
        f"Interquartile mean over tasks and seeds of each task's headline metric (accuracy, micro-F1, mIoU); {scores}.",
        f"Interval: 95 % stratified bootstrap ({repeats} repeats; seeds redrawn within each task, each run "
        "contributing its test-sample bootstrap replicate), as GEO-Bench's plot_tools.",
        *notes,
    ]
    return "\n".join(lines) + "\n"
