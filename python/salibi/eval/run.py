"""``salibi eval geobench`` as a library call: every requested task, every applicable protocol.

::

    from salibi.eval.run import evaluate_geobench
    results = evaluate_geobench("runs/first", root="~/dataset/geobench", tasks=["m-eurosat"],
                                protocols=("knn", "linear"), seeds=3)
    results["tasks"]["m-eurosat"]["linear"]["accuracy"]

The result is the JSON document of DESIGN.md::

    {"checkpoint": str, "partition": str,
     "tasks": {TASK: {PROTOCOL: {METRIC: mean, METRIC + "_std": std over seeds}}},
     "skipped": {TASK: reason}, "failed": {TASK: reason}}

A task is *skipped* when no requested protocol applies to its kind or its bands match no
modality of the checkpoint, *failed* when reading or evaluating it raised; neither stops the
other tasks.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salibi.devices import resolve_device
from salibi.errors import InputError, SalibiError
from salibi.eval import protocols as P
from salibi.eval.bands import TaskInputs, default_band_names, map_task_bands
from salibi.eval.features import SplitFeatures, band_normalisation, extract_features
from salibi.eval.geobench import Task, default_root, discover_tasks
from salibi.vocabulary import PROTOCOLS

__all__ = ["PROTOCOLS", "APPLIES_TO", "evaluate_geobench", "evaluate_task", "checkpoint_bands"]

#: The task kinds each protocol of :data:`salibi.vocabulary.PROTOCOLS` applies to.
APPLIES_TO = {
    "knn": ("classification", "multilabel"),
    "linear": ("classification", "multilabel"),
    "seg": ("segmentation",),
    # The chance reference: the most frequent training class, whatever the input.
    "majority": ("classification", "multilabel", "segmentation"),
}
METRIC = {"classification": "accuracy", "multilabel": "f1_macro", "segmentation": "miou"}

#: Where progress lines go (the command line passes one that prints them; by default, nowhere).
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def checkpoint_bands(model: Any) -> tuple[dict[str, list[str]], dict[str, float | None]]:
    """Band names and GSD per modality of a loaded model (assumed names where it has none)."""
    bands, gsd = {}, {}
    for modality in model.modalities:
        info = getattr(model, "modality_info", {}).get(modality, {}) or {}
        channels = int(model.config.channels[modality])
        names = info.get("bands")
        bands[modality] = list(names) if names else default_band_names(modality, channels)
        gsd[modality] = info.get("gsd")
    return bands, gsd


def _summary(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std()) if len(array) > 1 else 0.0


def evaluate_task(
    model: Any,
    task: Task,
    inputs: TaskInputs,
    protocols: Sequence[str],
    partition: str = "default",
    seeds: int = 1,
    batch_size: int = 64,
    device: Any = "cpu",
    log: Log = _quiet,
    seg_steps: int = P.SEG_STEPS,
    num_workers: int = 0,
) -> dict[str, dict[str, float]]:
    """``{protocol: {metric: mean, metric_std: std}}`` of one task whose ``inputs`` are mapped."""
    specs = task.specs
    kind = specs.label.kind
    splits = task.partition(partition)
    if not splits["train"] or not splits["test"]:
        raise InputError(f"task {task.name}: partition {partition!r} has an empty train or test split")
    valid_names = splits["valid"] or splits["train"]
    stats = band_normalisation(task, inputs, splits["train"])
    want_tokens = "seg" in protocols

    features: dict[str, SplitFeatures] = {}
    try:
        for split, names in (("train", splits["train"]), ("valid", valid_names), ("test", splits["test"])):
            if split == "valid" and valid_names is splits["train"]:
                features[split] = features["train"]
                continue
            if split == "valid" and want_tokens and "knn" not in protocols and "linear" not in protocols:
                continue  # the segmentation head is trained a fixed number of steps: no validation
            started = time.perf_counter()
            features[split] = extract_features(
                model, task, inputs, names, stats, batch_size, device, want_tokens, num_workers=num_workers
            )
            elapsed = time.perf_counter() - started
            log(
                f"  {task.name}: {split} {len(names)} samples encoded in {elapsed:.1f} s "
                f"({len(names) / max(elapsed, 1e-9):.0f} samples/s)"
            )
        return _run_protocols(task, kind, features, protocols, seeds, device, log, seg_steps)
    finally:
        for split_features in features.values():
            split_features.close()


def _run_protocols(
    task: Task,
    kind: str,
    features: dict[str, SplitFeatures],
    protocols: Sequence[str],
    seeds: int,
    device: Any,
    log: Log,
    seg_steps: int,
) -> dict[str, dict[str, float]]:
    n_classes = task.specs.label.n_classes
    train, test = features["train"], features["test"]
    out: dict[str, dict[str, float]] = {}
    for protocol in protocols:
        scores: dict[str, list[float]] = {}
        if protocol == "knn":
            predicted = P.knn_predict(train.pooled, train.labels, test.pooled, kind, n_classes)
            value = P.f1_macro(test.labels, predicted) if kind == "multilabel" else P.accuracy(test.labels, predicted)
            scores[METRIC[kind]] = [value]  # deterministic: one run whatever the seeds
        elif protocol == "linear":
            valid = features["valid"]
            for seed in range(seeds):
                predicted, c = P.linear_probe(
                    (train.pooled, train.labels), (valid.pooled, valid.labels), (test.pooled, test.labels), kind, seed
                )
                value = (
                    P.f1_macro(test.labels, predicted) if kind == "multilabel" else P.accuracy(test.labels, predicted)
                )
                scores.setdefault(METRIC[kind], []).append(value)
                log(f"  {task.name}: linear seed {seed}: C = {c:g}, {METRIC[kind]} {value:.4f}")
        elif protocol == "seg":
            assert train.tokens is not None and test.tokens is not None and train.grid is not None
            for seed in range(seeds):
                predicted = P.segmentation_probe(
                    train.tokens,
                    train.labels,
                    test.tokens,
                    train.grid,
                    train.label_px_per_token,
                    n_classes,
                    seed=seed,
                    steps=seg_steps,
                    device=device,
                )
                scores.setdefault("miou", []).append(P.mean_iou(test.labels, predicted, n_classes))
                valid_px = test.labels >= 0
                scores.setdefault("pixel_accuracy", []).append(P.accuracy(test.labels[valid_px], predicted[valid_px]))
        elif protocol == "majority":
            predicted = P.majority_predict(train.labels, test.labels, kind)
            if kind == "segmentation":
                valid_px = test.labels >= 0
                scores["miou"] = [P.mean_iou(test.labels, predicted, n_classes)]
                scores["pixel_accuracy"] = [P.accuracy(test.labels[valid_px], predicted[valid_px])]
            else:
                value = (
                    P.f1_macro(test.labels, predicted) if kind == "multilabel" else P.accuracy(test.labels, predicted)
                )
                scores[METRIC[kind]] = [value]
        metrics: dict[str, float] = {}
        for name, values in scores.items():
            mean, std = _summary(values)
            metrics[name], metrics[f"{name}_std"] = mean, std
        out[protocol] = metrics
    return out


def _parse_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def evaluate_geobench(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    tasks: str | Iterable[str] | None = None,
    partition: str = "default",
    protocols: str | Iterable[str] = PROTOCOLS,
    seeds: int = 1,
    batch_size: int = 64,
    device: str = "auto",
    log: Log = _quiet,
    model: Any = None,
    seg_steps: int = P.SEG_STEPS,
    num_workers: int = 0,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a checkpoint or run folder) on GEO-Bench tasks under ``root``.

    ``tasks``: names (list or comma-separated); default every task found. ``model``: an
    already loaded model to use instead of loading ``checkpoint`` (its path is still reported).
    ``seg_steps``: training steps of the segmentation head. ``num_workers``: reader processes.
    ``log``: receives one line per step and task (default: dropped). Raises
    :class:`~salibi.errors.SalibiError` for arguments it cannot use; a task that fails is
    reported under ``"failed"`` instead.
    """
    protocol_list = _parse_list(protocols)
    unknown = [p for p in protocol_list if p not in PROTOCOLS]
    if unknown or not protocol_list:
        raise InputError(f"--protocol {','.join(protocol_list)}: choose among {', '.join(PROTOCOLS)}")
    if seeds < 1:
        raise InputError(f"--seeds {seeds}: must be at least 1")
    root_path = Path(root).expanduser() if root is not None else default_root()
    available = discover_tasks(root_path)
    wanted = _parse_list(tasks) or sorted(available)
    missing = [t for t in wanted if t not in available]
    if missing:
        raise InputError(
            f"unknown GEO-Bench task(s) {', '.join(missing)} under {root_path}; available: {', '.join(sorted(available))}"
        )

    torch_device = resolve_device(device)
    if model is None:
        from salibi.models import load_checkpoint, resolve_checkpoint

        checkpoint_path = resolve_checkpoint(checkpoint)
        model = load_checkpoint(checkpoint_path, map_location=torch_device)
    else:
        checkpoint_path = Path(checkpoint)
        model = model.to(torch_device).eval()
    bands, gsd = checkpoint_bands(model)
    log(f"checkpoint {checkpoint_path}: " + "; ".join(f"{m} {' '.join(b)}" for m, b in bands.items()))

    results: dict[str, Any] = {
        "checkpoint": str(checkpoint_path),
        "partition": partition,
        "tasks": {},
        "skipped": {},
        "failed": {},
    }
    for name in wanted:
        task = Task(available[name])
        try:
            kind = task.kind
            applicable = [p for p in protocol_list if kind in APPLIES_TO[p]]
            if not applicable:
                useful = [p for p in PROTOCOLS if kind in APPLIES_TO[p]]
                results["skipped"][name] = (
                    f"no requested protocol applies to a {kind} task "
                    f"(requested {','.join(protocol_list)}; use --protocol {','.join(useful)})"
                )
                log(f"{name}: skipped: {results['skipped'][name]}")
                continue
            inputs = map_task_bands(task.specs, bands, gsd, task_name=name)
            if not inputs.modalities:
                results["skipped"][name] = inputs.reason
                log(f"{name}: skipped: {inputs.reason}")
                continue
            log(
                f"{name} ({kind}, {task.specs.spatial_resolution:g} m): "
                + " | ".join(m.describe() for m in inputs.modalities)
            )
            results["tasks"][name] = evaluate_task(
                model, task, inputs, applicable, partition, seeds, batch_size, torch_device, log, seg_steps, num_workers
            )
        except KeyboardInterrupt:
            raise
        except SalibiError as err:
            results["failed"][name] = str(err)
            log(f"{name}: failed: {err}")
        except Exception as err:  # one task's surprise must not lose the others' results
            results["failed"][name] = f"{type(err).__name__}: {err}"
            log(f"{name}: failed: {type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}")
    return results


def main_metric(protocol_result: dict[str, float]) -> tuple[str, float] | None:
    """The headline metric of one protocol's result (accuracy, f1_macro or miou)."""
    for name in ("accuracy", "f1_macro", "miou"):
        if name in protocol_result and not math.isnan(protocol_result[name]):
            return name, protocol_result[name]
    return None
