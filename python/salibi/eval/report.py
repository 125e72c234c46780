"""Results of ``salibi eval geobench``: JSON file, Markdown tables, bar chart.

All files are written through :func:`salibi.fileio.write_atomic`: under a temporary name beside
the target, flushed to disk, then renamed, so a results file is whole or absent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.fileio import write_atomic

__all__ = ["compare_table", "load_results", "markdown_table", "results_paths", "write_bar_chart", "write_results"]

_METRIC_ORDER = ("accuracy", "f1_macro", "miou", "pixel_accuracy")
_SHORT = {"accuracy": "acc", "f1_macro": "F1", "miou": "mIoU", "pixel_accuracy": "px acc"}


def _json_safe(value: Any) -> Any:
    """NaN and infinities (a metric with nothing to measure) become null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def results_paths(output: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, Path]:
    """The results JSON ``output`` and the chart beside it (``.png``), checked before any work:
    a ``.json`` name, and nothing there unless ``overwrite``."""
    output = Path(output)
    if output.suffix.lower() != ".json":
        raise InputError(f"--output {output}: give a .json file name (the chart goes beside it as .png)")
    chart = output.with_suffix(".png")
    if not overwrite:
        for path in (output, chart):
            if path.exists():
                raise OutputExistsError(f"{path} exists; pass --overwrite to replace it, or choose another --output")
    return output, chart


def write_results(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``results`` as strict JSON (NaN as null) to ``path``."""
    path = Path(path)
    write_atomic(path, (json.dumps(_json_safe(results), indent=2, allow_nan=False) + "\n").encode())
    return path


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
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


def _format(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    std = metrics.get(f"{name}_std")
    return f"{value:.3f} ± {std:.3f}" if std else f"{value:.3f}"


def _metrics_of(result: dict[str, float]) -> list[str]:
    return [m for m in _METRIC_ORDER if m in result] + sorted(
        m for m in result if m not in _METRIC_ORDER and not m.endswith("_std")
    )


def markdown_table(results: dict[str, Any]) -> str:
    """One row per task and protocol, one column per metric; then skipped and failed tasks."""
    lines = [
        f"GEO-Bench, partition `{results.get('partition', '?')}`, checkpoint `{results.get('checkpoint', '?')}`",
        "",
    ]
    rows = []
    for task in sorted(results.get("tasks", {})):
        for protocol, metrics in sorted(results["tasks"][task].items()):
            for metric in _metrics_of(metrics):
                rows.append((task, protocol, metric, _format(metrics, metric)))
    if rows:
        lines += ["| task | protocol | metric | value |", "|---|---|---|---|"]
        lines += [f"| {t} | {p} | {m} | {v} |" for t, p, m, v in rows]
    else:
        lines.append("No task was evaluated.")
    for title, key in (("Skipped", "skipped"), ("Failed", "failed")):
        if results.get(key):
            lines += ["", f"{title}:"] + [f"- {t}: {reason}" for t, reason in sorted(results[key].items())]
    return "\n".join(lines) + "\n"


def _labels(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(p).parent.name}/{Path(p).stem}" for p in paths]


def compare_table(paths: Sequence[str | os.PathLike[str]]) -> str:
    """One row per task, protocol and metric; one column per results file (the ablation view)."""
    documents = [load_results(p) for p in paths]
    labels = _labels(paths)
    keys: dict[tuple[str, str, str], None] = {}
    for doc in documents:
        for task, per_protocol in doc["tasks"].items():
            for protocol, metrics in per_protocol.items():
                for metric in _metrics_of(metrics):
                    keys[(task, protocol, metric)] = None
    lines = ["| task | protocol | metric | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for task, protocol, metric in sorted(keys):
        cells = []
        for doc in documents:
            if task in doc["tasks"] and protocol in doc["tasks"][task]:
                cells.append(_format(doc["tasks"][task][protocol], metric))
            elif task in doc.get("skipped", {}):
                cells.append("skipped")
            elif task in doc.get("failed", {}):
                cells.append("failed")
            else:
                cells.append("–")
        lines.append(f"| {task} | {protocol} | {metric} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Checkpoints: "
        + "; ".join(f"{label} = `{doc.get('checkpoint', '?')}`" for label, doc in zip(labels, documents)),
    ]
    return "\n".join(lines) + "\n"


def write_bar_chart(results: dict[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """Grouped bars of each task's headline metric per protocol; None when there is nothing to plot."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(results.get("tasks", {}))
    protocols = sorted({p for t in tasks for p in results["tasks"][t]})
    if not tasks or not protocols:
        return None
    colours = {p: f"C{i}" for i, p in enumerate(protocols)}
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(tasks) + 2), 3.6), dpi=120)
    labelled: set[str] = set()
    for j, task in enumerate(tasks):
        bars = []  # (protocol, value, std) of the protocols this task has, centred on the tick
        for protocol in protocols:
            metrics = results["tasks"][task].get(protocol) or {}
            metric = next((m for m in ("accuracy", "f1_macro", "miou") if m in metrics), None)
            if metric is not None and metrics[metric] is not None and not math.isnan(metrics[metric]):
                bars.append((protocol, metrics[metric], metrics.get(f"{metric}_std") or 0.0))
        width = 0.8 / max(1, len(bars))
        for i, (protocol, value, std) in enumerate(bars):
            x = j + (i - (len(bars) - 1) / 2) * width
            drawn = ax.bar(
                [x],
                [value],
                width,
                yerr=[std],
                capsize=2,
                color=colours[protocol],
                label=None if protocol in labelled else protocol,
            )
            labelled.add(protocol)
            ax.bar_label(drawn, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy / F1 / mIoU")
    ax.set_title(
        f"GEO-Bench ({results.get('partition', '?')}): {Path(str(results.get('checkpoint', ''))).name}", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    path = Path(path)
    write_atomic(path, buffer.getvalue())
    return path
