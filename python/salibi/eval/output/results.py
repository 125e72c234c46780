"""The results document of ``salibi eval geobench`` (format ``salibi-eval-results``, version 2).

One *run* is one (task, protocol, partition, seed): its metrics on the whole test split, their
95 % bootstrap intervals and bootstrap replicates, the protocol's parameters and the split
sizes. Runs are the unit of resuming: a finished run whose parameters are unchanged is not
computed again. The per-task summaries are derived from the runs (:func:`summarise`)::

    tasks[TASK][PROTOCOL][METRIC]      = value (mean over seeds; + METRIC_std, METRIC_iqm over seeds)
    intervals[TASK][PROTOCOL][METRIC]  = [low, high]

for the headline ``partition``; ``partition_results`` / ``partition_intervals`` hold the same
for every partition evaluated. docs/EVAL_RESULTS.md documents every field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, MissingInputError
from salibi.eval.scoring.bootstrap import iqm, percentile_interval
from salibi.eval.scoring.task_metrics import METRICS_BY_KIND
from salibi.fileio import write_json
from salibi.vocabulary import EVAL_RESULTS_FORMAT, EVAL_RESULTS_FORMAT_VERSION

__all__ = [
    "RunKey",
    "finished_runs",
    "load_results",
    "new_document",
    "run_key",
    "summarise",
    "upgrade_document",
    "write_results",
]

RunKey = tuple[str, str, str, int]
#: Digits kept of bootstrap replicates in the JSON (they only feed intervals).
REPLICATE_DIGITS = 5


def new_document(
    checkpoint: str,
    partition: str,
    partitions: list[str],
    seeds: int,
    protocols: dict[str, dict[str, Any]],
    bootstrap: dict[str, Any],
) -> dict[str, Any]:
    """An empty results document (DESIGN.md's keys first, for readers of version 1)."""
    return {
        "checkpoint": checkpoint,
        "partition": partition,
        "tasks": {},
        "skipped": {},
        "failed": {},
        "format": EVAL_RESULTS_FORMAT,
        "format_version": EVAL_RESULTS_FORMAT_VERSION,
        "intervals": {},
        "partitions": partitions,
        "seeds": seeds,
        "bootstrap": bootstrap,
        "protocols": protocols,
        "partition_results": {},
        "partition_intervals": {},
        "runs": [],
    }


def run_key(run: dict[str, Any]) -> RunKey:
    return (str(run["task"]), str(run["protocol"]), str(run["partition"]), int(run["seed"]))


def finished_runs(document: dict[str, Any] | None) -> dict[RunKey, dict[str, Any]]:
    """The runs of a previous document by key (empty for none)."""
    if not document:
        return {}
    return {run_key(run): run for run in document.get("runs", [])}


def upgrade_document(document: dict[str, Any], source: str) -> dict[str, Any]:
    """A loaded document checked to be this format (version 2) and able to be resumed."""
    if document.get("format") != EVAL_RESULTS_FORMAT or document.get("format_version") != EVAL_RESULTS_FORMAT_VERSION:
        found = document.get("format_version", 1 if "tasks" in document else "none")
        raise DataFormatError(
            f"{source} is not a {EVAL_RESULTS_FORMAT} version {EVAL_RESULTS_FORMAT_VERSION} document "
            f"(version {found}); it cannot be resumed: pass --overwrite or another --output"
        )
    if not isinstance(document.get("runs"), list):
        raise DataFormatError(f'{source}: no "runs" list; pass --overwrite or another --output')
    return document


def rounded(values: Iterable[float]) -> list[float | None]:
    return [round(float(v), REPLICATE_DIGITS) if np.isfinite(v) else None for v in values]


def _metric_names(kind: str, runs: list[dict[str, Any]]) -> list[str]:
    present = {m for run in runs for m in run.get("metrics", {})}
    return [m for m in METRICS_BY_KIND.get(kind, ()) if m in present] or sorted(present)


def _summary(runs: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics (mean over seeds, with std and IQM when several) and intervals of the seed-mean."""
    runs = sorted(runs, key=lambda r: int(r["seed"]))
    kind = str(runs[0].get("kind", ""))
    metrics: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    for name in _metric_names(kind, runs):
        values = [r["metrics"].get(name) for r in runs]
        finite = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
        metrics[name] = float(finite.mean()) if finite.size else float("nan")
        if len(runs) > 1:
            metrics[f"{name}_std"] = float(finite.std()) if finite.size else float("nan")
            metrics[f"{name}_iqm"] = iqm(finite)
        if len(runs) == 1 and name in runs[0].get("intervals", {}):
            low, high = runs[0]["intervals"][name]
            intervals[name] = [
                float("nan") if low is None else low,
                float("nan") if high is None else high,
            ]
            continue
        series = [r.get("replicates", {}).get(name) for r in runs]
        if all(s for s in series) and len({len(s) for s in series}) == 1:
            table = np.array([[np.nan if v is None else v for v in s] for s in series], dtype=np.float64)
            intervals[name] = list(percentile_interval(np.nanmean(table, axis=0)))
    return metrics, intervals


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """Fill ``tasks``, ``intervals``, ``partition_results`` and ``partition_intervals`` from
    the runs (``tasks``/``intervals``: the headline ``partition``)."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in document.get("runs", []):
        grouped.setdefault((run["partition"], run["task"], run["protocol"]), []).append(run)
    by_partition: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    by_partition_intervals: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {}
    for (partition, task, protocol), runs in sorted(grouped.items()):
        metrics, intervals = _summary(runs)
        by_partition.setdefault(partition, {}).setdefault(task, {})[protocol] = metrics
        by_partition_intervals.setdefault(partition, {}).setdefault(task, {})[protocol] = intervals
    headline = document.get("partition", "default")
    document["tasks"] = by_partition.get(headline, {})
    document["intervals"] = by_partition_intervals.get(headline, {})
    document["partition_results"] = by_partition
    document["partition_intervals"] = by_partition_intervals
    return document


def write_results(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``results`` as strict JSON (NaN as null) to ``path``."""
    path = Path(path)
    write_json(path, results)
    return path


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results document read from ``path`` (any version: at least its ``tasks``)."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"results file {path} does not exist; write one with salibi eval geobench --output")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path} is not JSON ({err}); pass files written by salibi eval geobench") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise DataFormatError(f'{path}: no "tasks" object; pass files written by salibi eval geobench --output')
    return data
