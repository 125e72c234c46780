"""GEO-Bench's aggregate score of one results document (``salibi eval geobench --compare A.json
B.json --aggregate`` prints it: :func:`salibi.eval.output.report.aggregate_table`).

For each protocol, over the tasks of the document's headline partition:

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

from typing import Any

from salibi.eval.scoring.bootstrap import AGGREGATE_REPEATS, BOOTSTRAP_SEED, Interval, stratified_bootstrap_iqm
from salibi.eval.scoring.task_metrics import headline_metric

__all__ = ["Normalizer", "aggregate_scores"]

#: Task -> (min, max) of its headline metric (GEO-Bench's ``normalizer.json``).
Normalizer = dict[str, tuple[float, float]]


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
