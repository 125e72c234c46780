"""``salibi eval geobench`` as a library call: every requested task, partition, protocol and seed.

::

    from salibi.eval.evaluate import evaluate_geobench
    results = evaluate_geobench("runs/first", root="~/dataset/geobench", tasks=["m-eurosat"],
                                protocols=("knn", "linear"), partitions="all")
    results["tasks"]["m-eurosat"]["linear"]["accuracy"], results["intervals"]["m-eurosat"]["linear"]["accuracy"]

The result is the document of :mod:`salibi.eval.output.results`. Per task, the features of every
split are extracted once (the train split of the largest partition requested; smaller
partitions are subsets of it), then each protocol runs on arrays (:mod:`salibi.eval.protocols.registry`)
once per seed when it is seeded, once otherwise. A partition ``P`` takes its train split from
``P_partition.json`` and validation and test from the default partition.

GEO-Bench-2 roots (tortilla files; :mod:`salibi.eval.benchmarks`) are evaluated the same way:
their datasets are the tasks, with the inputs chosen by sensor routing (joint features when
two or more encoders match, ``features``) and recorded as ``inputs[TASK]``.

A task is *skipped* when no requested protocol applies to its kind or its bands match no
modality of the checkpoint, *failed* when reading or evaluating it raised; neither stops the
other tasks. When no task gives a result and some failed, there is nothing to report: a
:class:`~salibi.errors.TasksFailedError` says why (the first failure, the others named) and
``on_update`` is never called. Given ``previous`` (a document of the same checkpoint), runs
finished there with the same parameters are kept, not computed again.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.devices import resolve_device
from salibi.errors import InputError, SalibiError, TasksFailedError
from salibi.eval.band_matching import TaskInputs, default_band_names
from salibi.eval.benchmarks import open_benchmark
from salibi.eval.features import SplitFeatures, band_normalisation, extract_features
from salibi.eval.geobench.tasks import Task, default_root
from salibi.eval.output import results as R
from salibi.eval.output.feature_store import features_path, write_features
from salibi.eval.partitions import TaskPlan, parse_list, plan_task, resolve_partitions, subset
from salibi.eval.protocols import registry as P
from salibi.eval.protocols.segmentation_heads import SEG_STEPS
from salibi.eval.scoring.bootstrap import CONFIDENCE
from salibi.vocabulary import PROTOCOLS

__all__ = ["APPLIES_TO", "PROTOCOLS", "RunOutput", "checkpoint_bands", "evaluate_geobench", "evaluate_task"]

APPLIES_TO = P.APPLIES_TO

#: Where progress lines go (the command line passes one that prints them; by default, nowhere).
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class _HeldLog:
    """``log``, holding back the lines given to :meth:`hold` (the checkpoint line, failures) until
    another line is logged: when every task fails before anything else is said, the error alone
    says it, in one line."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.held: list[str] = []
        self.open = False  # a line was logged: nothing is held any more

    def hold(self, message: str) -> None:
        if self.open:
            self.log(message)
        else:
            self.held.append(message)

    def __call__(self, message: str) -> None:
        self.flush()
        self.log(message)

    def flush(self) -> None:
        """Log what is held; from now on nothing is."""
        self.open = True
        for line in self.held:
            self.log(line)
        self.held.clear()


def _all_failed(failed: dict[str, str]) -> TasksFailedError:
    """The error of an evaluation where no task gave a result: the first failure, the others named."""
    (first, reason), *others = failed.items()
    message = f"{first}: {reason}"
    if others:
        names = ", ".join(name for name, _ in others)
        message += f" (and {len(others)} more task{'s' if len(others) > 1 else ''} failed: {names})"
    return TasksFailedError(message, dict(failed))


@dataclass
class RunOutput:
    """The per-test-sample output of one run, kept in memory for paired comparisons
    (:func:`salibi.eval.scoring.bootstrap.paired_bootstrap_difference`)."""

    kind: str
    n_classes: int
    test_ids: list[str]
    truth: np.ndarray
    output: P.ProtocolOutput


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


def _extract(
    model: Any,
    task: Task,
    inputs: TaskInputs,
    plan: TaskPlan,
    protocols: Sequence[str],
    batch_size: int,
    device: Any,
    num_workers: int,
    log: Log,
) -> dict[str, SplitFeatures]:
    stats = band_normalisation(task, inputs, plan.splits["train"])
    depth = max(len(model.encoders[m.modality].blocks) for m in inputs.modalities)
    blocks = P.fpn_blocks(depth) if "seg-fpn" in protocols else []
    features: dict[str, SplitFeatures] = {}
    try:
        for split, names in plan.splits.items():
            if split == "valid" and not names:
                continue
            started = time.perf_counter()
            features[split] = extract_features(
                model,
                task,
                inputs,
                names,
                stats,
                batch_size,
                device,
                keep_tokens="seg-linear" in protocols,
                num_workers=num_workers,
                token_blocks=blocks,
            )
            elapsed = time.perf_counter() - started
            log(
                f"  {task.name}: {split} {len(names)} samples encoded in {elapsed:.1f} s "
                f"({len(names) / max(elapsed, 1e-9):.0f} samples/s)"
            )
    except BaseException:
        for split_features in features.values():
            split_features.close()
        raise
    return features


def _inputs_for(kind: str, n_classes: int, features: dict[str, SplitFeatures], rows: np.ndarray) -> P.ProtocolInputs:
    train, test = features["train"], features["test"]
    valid = features.get("valid")
    empty = np.zeros((0, train.pooled.shape[1]), dtype=np.float32)
    return P.ProtocolInputs(
        kind=kind,
        n_classes=n_classes,
        train_x=train.pooled[rows],
        train_y=train.labels[rows],
        valid_x=valid.pooled if valid is not None else empty,
        valid_y=valid.labels if valid is not None else train.labels[:0],
        test_x=test.pooled,
        test_y=test.labels,
        train_tokens=subset(train.tokens, rows),
        test_tokens=test.tokens,
        train_blocks=subset(train.block_tokens, rows),
        test_blocks=test.block_tokens,
        grid=train.grid,
        label_px_per_token=train.label_px_per_token,
    )


def evaluate_task(
    model: Any,
    task: Task,
    inputs: TaskInputs,
    plan: TaskPlan,
    protocols: Sequence[str],
    settings: P.ProtocolSettings,
    batch_size: int = 64,
    device: Any = "cpu",
    log: Log = _quiet,
    num_workers: int = 0,
    save_features: str | os.PathLike[str] | None = None,
    outputs: dict[R.RunKey, RunOutput] | None = None,
    describe: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The run records of ``plan.pending`` for one task whose ``inputs`` are mapped."""
    kind, n_classes = task.kind, task.specs.label.n_classes
    features = _extract(model, task, inputs, plan, protocols, batch_size, device, num_workers, log)
    records = []
    try:
        if save_features is not None:
            for split, split_features in features.items():
                attributes = {"kind": kind, "n_classes": n_classes, **(describe or {})}
                path = write_features(
                    save_features,
                    task.name,
                    split,
                    split_features.pooled,
                    split_features.labels,
                    split_features.names,
                    attributes,
                )
                log(f"  {task.name}: {split} features -> {path}")
        blocks = features["train"].blocks
        for partition, protocol, seed in plan.pending:
            rows = plan.partition_rows[partition]
            data = _inputs_for(kind, n_classes, features, rows)
            started = time.perf_counter()
            output = P.run_protocol(protocol, data, settings, seed, device)
            scores = P.score_output(kind, data.test_y, output, n_classes, settings)
            record: dict[str, Any] = {
                "task": task.name,
                "protocol": protocol,
                "method": settings.method(protocol),
                "partition": partition,
                "seed": seed,
                "kind": kind,
                "metrics": {m: s.value for m, s in scores.items()},
                "intervals": {m: [s.low, s.high] for m, s in scores.items()},
                "parameters": settings.parameters(protocol),
                "n_train": int(len(rows)),
                "n_val": int(len(data.valid_y)),
                "n_test": int(len(data.test_y)),
                "feature_dim": int(data.train_x.shape[1]),
                "best_c": output.details.get("best_c"),
                "blocks": list(blocks) if protocol == "seg-fpn" else None,
                "bands": " | ".join(m.describe() for m in inputs.modalities),
                "seconds": round(time.perf_counter() - started, 3),
                "replicates": {m: R.rounded(s.replicates) for m, s in scores.items()},
            }
            records.append(record)
            if outputs is not None:
                outputs[R.run_key(record)] = RunOutput(kind, n_classes, features["test"].names, data.test_y, output)
            shown = ", ".join(f"{m} {s.value:.4f} [{s.low:.4f}, {s.high:.4f}]" for m, s in scores.items())
            extra = f", C = {record['best_c']:.3g}" if record["best_c"] is not None else ""
            log(f"  {task.name}: {protocol} ({partition}, seed {seed}{extra}): {shown}")
    finally:
        for split_features in features.values():
            split_features.close()
    return records


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
    seg_steps: int = SEG_STEPS,
    num_workers: int = 0,
    partitions: str | Iterable[str] | None = None,
    settings: P.ProtocolSettings | None = None,
    previous: dict[str, Any] | None = None,
    save_features: str | os.PathLike[str] | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    outputs: dict[R.RunKey, RunOutput] | None = None,
    benchmark: str = "auto",
    features: str = "auto",
    attention: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a checkpoint or run folder) on GEO-Bench tasks under ``root``.

    ``tasks``: names (list or comma-separated); default every task found. ``partitions``:
    ``"all"`` (every train-size partition, the data-efficiency curve) or a list; otherwise the
    one ``partition``. ``seeds``: runs of each seeded protocol. ``model``: an already loaded
    model to use instead of loading ``checkpoint`` (its path is still reported).
    ``settings``: protocol parameters (default: torchgeo-bench's; ``seg_steps`` sets the
    linear segmentation head's steps when ``settings`` is not given). ``previous``: a results
    document to resume. ``save_features``: a folder for each task's split features (HDF5).
    ``on_update``: receives the document after each task (e.g. to write it). ``outputs``: a
    dict filled with each run's per-test-sample output (:class:`RunOutput`). ``log``: one line
    per step. ``benchmark``: ``auto``, ``geobench`` or ``geobench2``; ``features`` (GEO-Bench-2):
    ``auto``, ``joint`` or one encoder. ``attention``: the loaded model's attention backend
    (``auto``, ``sdpa``, ``flex``; :func:`salibi.models.build`). Raises :class:`~salibi.errors.SalibiError` for arguments
    it cannot use; a task that fails is reported under ``"failed"`` instead, unless no task gave a
    result: then :class:`~salibi.errors.TasksFailedError` (the first failure, the others named; its
    ``failed`` has every reason), with nothing passed to ``on_update`` and the held lines not logged.
    """
    protocol_list = P.normalise_protocols(parse_list(protocols))
    if seeds < 1:
        raise InputError(f"--seeds {seeds}: must be at least 1")
    settings = settings or P.ProtocolSettings(seg_linear_steps=seg_steps)
    partition_list = resolve_partitions(partition, partitions)
    all_partitions = parse_list(partitions) == ["all"]
    root_path = Path(root).expanduser() if root is not None else default_root()
    found = open_benchmark(root_path, benchmark, features)
    available = found.tasks
    wanted = parse_list(tasks) or sorted([*available, *found.skipped])
    missing = [t for t in wanted if t not in available and t not in found.skipped]
    if missing:
        raise InputError(
            f"unknown GEO-Bench task(s) {', '.join(missing)} under {root_path}; available: {', '.join(sorted(available))}"
        )

    torch_device = resolve_device(device)
    if model is None:
        from salibi.models import load_checkpoint, resolve_checkpoint

        checkpoint_path = resolve_checkpoint(checkpoint)
        model = load_checkpoint(checkpoint_path, map_location=torch_device, attention=attention)
    else:
        checkpoint_path = Path(checkpoint)
        model = model.to(torch_device).eval()
    bands, gsd = checkpoint_bands(model)
    say = _HeldLog(log)
    say.hold(f"checkpoint {checkpoint_path}: " + "; ".join(f"{m} {' '.join(b)}" for m, b in bands.items()))

    if previous is not None and previous.get("checkpoint") != str(checkpoint_path):
        raise InputError(
            f"the results to resume are of checkpoint {previous.get('checkpoint')}, not {checkpoint_path}; "
            "pass --overwrite or another --output"
        )
    document = R.new_document(
        str(checkpoint_path),
        partition_list[-1],
        partition_list,
        seeds,
        {p: {"deterministic": p in P.DETERMINISTIC, "parameters": settings.parameters(p)} for p in protocol_list},
        {
            "resamples": settings.resamples,
            "seed": settings.bootstrap_seed,
            "confidence": CONFIDENCE,
            "over": "test samples",
        },
    )
    document["benchmark"], document["inputs"] = found.name, {}
    finished = R.finished_runs(previous)
    if previous is not None:
        document["runs"] = list(previous.get("runs", []))
        document["protocols"] = {**previous.get("protocols", {}), **document["protocols"]}
        document["skipped"] = {k: v for k, v in previous.get("skipped", {}).items() if k not in wanted}
        document["failed"] = {k: v for k, v in previous.get("failed", {}).items() if k not in wanted}
        document["inputs"] = {k: v for k, v in previous.get("inputs", {}).items() if k not in wanted}
    describe = {"checkpoint": str(checkpoint_path)}
    failed: dict[str, str] = {}  # in this call
    errors: list[BaseException] = []
    succeeded = 0  # tasks evaluated, or found finished in ``previous``
    for name in wanted:
        if name in found.skipped:
            document["skipped"][name] = found.skipped[name]
            say(f"{name}: skipped: {found.skipped[name]}")
            continue
        task = available[name]
        try:
            kind = task.kind
            applicable = [p for p in protocol_list if kind in APPLIES_TO[p]]
            if not applicable:
                useful = [p for p in PROTOCOLS if kind in APPLIES_TO[p]]
                document["skipped"][name] = (
                    f"no requested protocol applies to a {kind} task "
                    f"(requested {','.join(protocol_list)}; use --protocol {','.join(useful)})"
                )
                say(f"{name}: skipped: {document['skipped'][name]}")
                continue
            task, inputs, record = found.inputs(task, bands, gsd, features)
            if record is not None:
                document["inputs"][name] = record
            if not inputs.modalities:
                document["skipped"][name] = inputs.reason
                say(f"{name}: skipped: {inputs.reason}")
                continue
            plan = plan_task(task, partition_list, applicable, seeds, finished, settings, all_partitions)
            needs_features = save_features is not None and not features_path(save_features, name, "test").exists()
            if not plan.pending and not needs_features:
                say(f"{name}: every run already in the results; skipped")
                succeeded += 1
                continue
            say(
                f"{name} ({kind}, {task.specs.spatial_resolution:g} m): "
                + " | ".join(m.describe() for m in inputs.modalities)
            )
            describe["bands"] = " | ".join(m.describe() for m in inputs.modalities)
            records = evaluate_task(
                model,
                task,
                inputs,
                plan,
                applicable,
                settings,
                batch_size,
                torch_device,
                say,
                num_workers,
                save_features,
                outputs,
                describe,
            )
            replaced = {R.run_key(r) for r in records}
            document["runs"] = [r for r in document["runs"] if R.run_key(r) not in replaced] + records
            succeeded += 1
        except KeyboardInterrupt:
            raise
        except SalibiError as err:
            document["failed"][name] = failed[name] = str(err)
            errors.append(err)
            say.hold(f"{name}: failed: {err}")
        except Exception as err:  # one task's surprise must not lose the others' results
            document["failed"][name] = failed[name] = f"{type(err).__name__}: {err}"
            errors.append(err)
            say.hold(f"{name}: failed: {type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}")
        R.summarise(document)
        if on_update is not None and succeeded:  # failures alone are not worth a file (see below)
            on_update(document)
    if failed and not succeeded:
        raise _all_failed(failed) from errors[0]
    say.flush()
    return R.summarise(document)
