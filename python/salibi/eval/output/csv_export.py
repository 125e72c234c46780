"""The runs of a results document as CSV rows in torchgeo-bench's column layout.

One row per run and metric, so they can be concatenated with torchgeo-bench's
``results/*.csv``: its columns first (``dataset, method, metric_name, metric_value, ci_lower,
ci_upper, feature_dim, best_c, best_lr, best_batch_size, n_train, n_val, n_test, seed, model,
name, normalization, image_size, interpolation, partition, bands, c_range_start,
c_range_stop, c_range_num, merge_val, bootstrap``), then salibi's (``protocol, kind,
checkpoint, knn_metric, blocks``). ``method`` is torchgeo-bench's name (``knn5``, ``linear``,
``seg-fpn``, ...); ``metric_name`` its name where it has one (``accuracy``, ``micro_mAP``,
``mIoU``) and salibi's otherwise (``f1_micro``, ``f1_macro``, ``pixel_accuracy``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from salibi.fileio import write_atomic

__all__ = ["CSV_COLUMNS", "csv_rows", "write_csv"]

CSV_COLUMNS = (
    "dataset",
    "method",
    "metric_name",
    "metric_value",
    "ci_lower",
    "ci_upper",
    "feature_dim",
    "best_c",
    "best_lr",
    "best_batch_size",
    "n_train",
    "n_val",
    "n_test",
    "seed",
    "model",
    "name",
    "normalization",
    "image_size",
    "interpolation",
    "partition",
    "bands",
    "c_range_start",
    "c_range_stop",
    "c_range_num",
    "merge_val",
    "bootstrap",
    "protocol",
    "kind",
    "checkpoint",
    "knn_metric",
    "blocks",
)
#: salibi metric -> torchgeo-bench's metric_name.
TORCHGEO_BENCH_METRIC = {"accuracy": "accuracy", "map_micro": "micro_mAP", "miou": "mIoU"}


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per (run, metric), keyed by :data:`CSV_COLUMNS`."""
    checkpoint = str(results.get("checkpoint", ""))
    resamples = results.get("bootstrap", {}).get("resamples", "")
    rows = []
    for run in results.get("runs", []):
        parameters = run.get("parameters", {})
        c_range = parameters.get("c_grid") if run["protocol"] == "linear" else None
        seg = run["protocol"].startswith("seg-")
        for metric, value in run.get("metrics", {}).items():
            low, high = run.get("intervals", {}).get(metric, [None, None])
            row = {
                "dataset": run["task"],
                "method": run.get("method", run["protocol"]),
                "metric_name": TORCHGEO_BENCH_METRIC.get(metric, metric),
                "metric_value": value,
                "ci_lower": low,
                "ci_upper": high,
                "feature_dim": run.get("feature_dim"),
                "best_c": run.get("best_c"),
                "best_lr": parameters.get("lr") if seg else None,
                "best_batch_size": parameters.get("batch") if seg else None,
                "n_train": run.get("n_train"),
                "n_val": run.get("n_val"),
                "n_test": run.get("n_test"),
                "seed": run.get("seed"),
                "model": "salibi",
                "name": Path(checkpoint).name,
                "normalization": "band_stats_zscore",
                "image_size": None,
                "interpolation": "none",
                "partition": run["partition"],
                "bands": run.get("bands"),
                "c_range_start": math.log10(c_range[0]) if c_range else None,
                "c_range_stop": math.log10(c_range[1]) if c_range else None,
                "c_range_num": c_range[2] if c_range else None,
                "merge_val": True if run["protocol"] == "linear" else None,
                "bootstrap": resamples,
                "protocol": run["protocol"],
                "kind": run.get("kind"),
                "checkpoint": checkpoint,
                "knn_metric": parameters.get("metric") if run["protocol"] == "knn" else None,
                "blocks": " ".join(str(b) for b in run.get("blocks") or []) or None,
            }
            rows.append({k: _cell(v) for k, v in row.items()})
    return rows


def write_csv(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`csv_rows` with a header line to ``path`` (atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(results))
    return write_atomic(Path(path), buffer.getvalue())
