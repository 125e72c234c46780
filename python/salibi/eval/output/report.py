"""Results of ``salibi eval geobench`` for people: Markdown tables and PNG charts.

Every number is printed beside its 95 % bootstrap interval and the chance reference (the
``majority`` protocol on the same task): the results table, the data-efficiency table, the
comparison of several results files and GEO-Bench's aggregate of them
(:mod:`salibi.eval.scoring.aggregation`). Charts are written through
:func:`salibi.fileio.write_atomic`: under a temporary name beside the target, flushed to disk,
then renamed.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError
from salibi.eval.geobench.tasks import BENCHMARK_FOLDER
from salibi.eval.output.results import load_results
from salibi.eval.scoring.aggregation import Normalizer, aggregate_scores
from salibi.eval.scoring.bootstrap import AGGREGATE_REPEATS, BOOTSTRAP_SEED, CONFIDENCE_LABEL
from salibi.eval.scoring.task_metrics import headline_metric
from salibi.fileio import write_atomic

__all__ = [
    "aggregate_table",
    "compare_table",
    "file_labels",
    "format_interval",
    "format_number",
    "load_normalizer",
    "markdown_table",
    "partition_table",
    "write_bar_chart",
    "write_partition_chart",
]

_METRIC_ORDER = ("accuracy", "f1_micro", "map_micro", "f1_macro", "miou", "pixel_accuracy")
_SUMMARY_SUFFIXES = ("_std", "_iqm")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value: Any, signed: bool = False) -> str:
    """A metric in a table: three decimals (with its sign for a difference), "n/a" when missing."""
    if _missing(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def format_interval(pair: Any) -> str:
    """An interval in a table, "[low, high]"; "–" when there is none."""
    if not pair or any(_missing(v) for v in pair):
        return "–"
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _format(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    if _missing(value):
        return "n/a"
    std = metrics.get(f"{name}_std")
    return f"{value:.3f} ± {std:.3f}" if std is not None and f"{name}_std" in metrics else f"{value:.3f}"


def _interval(intervals: dict[str, Any], name: str) -> str:
    return format_interval(intervals.get(name))


def _metrics_of(result: dict[str, Any]) -> list[str]:
    names = [m for m in result if not m.endswith(_SUMMARY_SUFFIXES)]
    return [m for m in _METRIC_ORDER if m in names] + sorted(m for m in names if m not in _METRIC_ORDER)


def _seeds_cell(results: dict[str, Any], protocol: str, metrics: dict[str, Any], metric: str) -> str:
    info = results.get("protocols", {}).get(protocol, {})
    if info.get("deterministic"):
        return "deterministic"
    if f"{metric}_iqm" in metrics:
        return f"{results.get('seeds', '?')} (IQM {format_number(metrics[f'{metric}_iqm'])})"
    return "1"


def _protocol_rows(results: dict[str, Any], tasks: dict[str, Any], intervals: dict[str, Any]) -> list[str]:
    rows = []
    for task in sorted(tasks):
        chance = tasks[task].get("majority", {})
        for protocol, metrics in sorted(tasks[task].items()):
            for metric in _metrics_of(metrics):
                interval = _interval(intervals.get(task, {}).get(protocol, {}), metric)
                reference = "–" if protocol == "majority" else format_number(chance.get(metric))
                seeds = _seeds_cell(results, protocol, metrics, metric)
                rows.append(
                    f"| {task} | {protocol} | {metric} | {_format(metrics, metric)} | {interval} | {reference} | {seeds} |"
                )
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    """One row per task, protocol and metric: value, 95 % interval, chance; then skipped and failed tasks."""
    bootstrap = results.get("bootstrap", {})
    name = _BENCHMARK_NAMES.get(str(results.get("benchmark", "geobench")), "GEO-Bench")
    lines = [
        f"{name}, partition `{results.get('partition', '?')}`, checkpoint `{results.get('checkpoint', '?')}`; "
        f"interval: {CONFIDENCE_LABEL} percentile bootstrap over test samples ({bootstrap.get('resamples', '?')} resamples); "
        "chance: the majority protocol",
        "",
    ]
    rows = _protocol_rows(results, results.get("tasks", {}), results.get("intervals", {}))
    if rows:
        lines += [
            f"| task | protocol | metric | value | {CONFIDENCE_LABEL} interval | chance | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += rows
    else:
        lines.append("No task was evaluated.")
    fed = {t: r for t, r in results.get("inputs", {}).items() if r.get("modalities")}
    if fed:
        lines += ["", "Inputs:"] + [f"- {t}: {_describe_inputs(r)}" for t, r in sorted(fed.items())]
    for title, key in (("Skipped", "skipped"), ("Failed", "failed")):
        if results.get(key):
            lines += ["", f"{title}:"] + [f"- {t}: {reason}" for t, reason in sorted(results[key].items())]
    return "\n".join(lines) + "\n"


_BENCHMARK_NAMES = {"geobench": "GEO-Bench", "geobench2": "GEO-Bench-2"}


def _describe_inputs(record: dict[str, Any]) -> str:
    """``joint: sar <- s1 (VV<-VV, VH<-VH) at 10 m + lores <- s2 (...) at 10 m`` (GEO-Bench-2's ``inputs[TASK]``)."""
    parts = []
    for m in record.get("modalities", []):
        bands = ", ".join(f"{k}<-{v.split(':', 1)[-1]}" if v else f"{k}<-zeros" for k, v in m.get("bands", {}).items())
        parts.append(f"{m.get('modality')} <- {m.get('source')} ({bands}) at {m.get('gsd'):g} m")
    return f"{record.get('features', '?')}: " + " + ".join(parts)


def partition_table(results: dict[str, Any]) -> str:
    """The data-efficiency curve: one row per task, protocol and partition (headline metric,
    interval, chance); empty when only one partition was evaluated."""
    by_partition = results.get("partition_results", {})
    if len(by_partition) < 2:
        return ""
    lines = [
        f"| task | protocol | partition | n_train | metric | value | {CONFIDENCE_LABEL} interval | chance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sizes = {(r["task"], r["partition"]): r.get("n_train") for r in results.get("runs", [])}
    keys = sorted({(t, p) for part in by_partition.values() for t in part for p in part[t] if p != "majority"})
    for task, protocol in keys:
        for partition in _partition_order(by_partition):
            metrics = by_partition[partition].get(task, {}).get(protocol)
            if not metrics or (found := headline_metric(metrics)) is None:
                continue
            metric = found[0]
            interval = _interval(results["partition_intervals"][partition][task][protocol], metric)
            chance = format_number(by_partition[partition][task].get("majority", {}).get(metric))
            lines.append(
                f"| {task} | {protocol} | {partition} | {sizes.get((task, partition), '?')} | {metric} | "
                f"{_format(metrics, metric)} | {interval} | {chance} |"
            )
    return "\n".join(lines) + "\n"


def _partition_order(by_partition: dict[str, Any]) -> list[str]:
    def fraction(name: str) -> float:
        try:
            return float(name.split("x_", 1)[0])
        except ValueError:
            return math.inf

    return sorted(by_partition, key=lambda n: (fraction(n), n))


def file_labels(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{Path(p).parent.name}/{Path(p).stem}" for p in paths]


def compare_table(paths: Sequence[str | os.PathLike[str]]) -> str:
    """One row per task, protocol and metric; one column per results file (the ablation view),
    each cell the value and its 95 % interval."""
    documents = [load_results(p) for p in paths]
    labels = file_labels(paths)
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
                interval = _interval(doc.get("intervals", {}).get(task, {}).get(protocol, {}), metric)
                cell = _format(doc["tasks"][task][protocol], metric)
                cells.append(cell if interval == "–" else f"{cell} {interval}")
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
        f"Interval: {CONFIDENCE_LABEL} stratified bootstrap ({repeats} repeats; seeds redrawn within each task, each run "
        "contributing its test-sample bootstrap replicate), as GEO-Bench's plot_tools.",
        *notes,
    ]
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return write_atomic(Path(path), buffer.getvalue())


def _error_bar(value: float, pair: Any) -> tuple[float, float]:
    if not pair or any(_missing(v) for v in pair):
        return 0.0, 0.0
    return max(0.0, value - pair[0]), max(0.0, pair[1] - value)


def write_bar_chart(results: dict[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """Grouped bars of each task's headline metric per protocol with their 95 % intervals as
    error bars; None when there is nothing to plot."""
    tasks = sorted(results.get("tasks", {}))
    protocols = sorted({p for t in tasks for p in results["tasks"][t]})
    if not tasks or not protocols:
        return None
    plt = _pyplot()
    colours = {p: f"C{i}" for i, p in enumerate(protocols)}
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(tasks) + 2), 3.6), dpi=120)
    labelled: set[str] = set()
    for j, task in enumerate(tasks):
        bars = []  # (protocol, value, error below, error above) of the protocols this task has
        for protocol in protocols:
            metrics = results["tasks"][task].get(protocol) or {}
            found = headline_metric(metrics)
            if found is not None:
                pair = results.get("intervals", {}).get(task, {}).get(protocol, {}).get(found[0])
                bars.append((protocol, found[1], *_error_bar(found[1], pair)))
        width = 0.8 / max(1, len(bars))
        for i, (protocol, value, below, above) in enumerate(bars):
            x = j + (i - (len(bars) - 1) / 2) * width
            drawn = ax.bar(
                [x],
                [value],
                width,
                yerr=[[below], [above]],
                capsize=2,
                color=colours[protocol],
                label=None if protocol in labelled else protocol,
            )
            labelled.add(protocol)
            ax.bar_label(drawn, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy / micro-F1 / mIoU")
    ax.set_title(
        f"GEO-Bench ({results.get('partition', '?')}): {Path(str(results.get('checkpoint', ''))).name}; "
        f"bars: {CONFIDENCE_LABEL} bootstrap intervals",
        fontsize=8,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_partition_chart(results: dict[str, Any], path: str | os.PathLike[str]) -> Path | None:
    """The data-efficiency curve: headline metric against training samples (log scale), one
    line per task and protocol with its 95 % interval as a band; None for one partition."""
    by_partition = results.get("partition_results", {})
    if len(by_partition) < 2:
        return None
    sizes = {(r["task"], r["partition"]): r.get("n_train") for r in results.get("runs", [])}
    curves: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for partition in _partition_order(by_partition):
        for task, per_protocol in by_partition[partition].items():
            for protocol, metrics in per_protocol.items():
                found = headline_metric(metrics)
                n = sizes.get((task, partition))
                if found is None or not n:
                    continue
                pair = results["partition_intervals"][partition][task][protocol].get(found[0]) or [None, None]
                low, high = (found[1], found[1]) if None in pair else pair
                curves.setdefault((task, protocol), []).append((float(n), found[1], low, high))
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for i, ((task, protocol), points) in enumerate(sorted(curves.items())):
        points.sort()
        x, y, low, high = (list(v) for v in zip(*points))
        style = ":" if protocol == "majority" else "-"
        ax.plot(x, y, style, marker="o", markersize=3, color=f"C{i % 10}", label=f"{task} {protocol}")
        ax.fill_between(x, low, high, color=f"C{i % 10}", alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("training samples (partition)")
    ax.set_ylabel("accuracy / micro-F1 / mIoU")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"data efficiency; bands: {CONFIDENCE_LABEL} bootstrap intervals; dotted: chance", fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return _save(fig, path)
