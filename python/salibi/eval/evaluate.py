"""``salibi eval geobench`` as a library call: every requested task, partition, protocol and seed.

::

    from salibi.eval.evaluate import evaluate_geobench
    from salibi.eval.settings import GeoBenchSettings
    settings = GeoBenchSettings(root="~/dataset/geobench", tasks=["m-eurosat"], protocols=("knn", "linear"),
                                partitions="all")
    results = evaluate_geobench("runs/first", settings)
    results["tasks"]["m-eurosat"]["linear"]["accuracy"], results["intervals"]["m-eurosat"]["linear"]["accuracy"]

The result is the document of :mod:`salibi.eval.output.results`. Per task, the features of every
split are extracted once (the train split of the largest partition requested; smaller
partitions are subsets of it), then each protocol runs on arrays (:mod:`salibi.eval.protocols`)
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salibi.distributed.ranks import resolve_device
from salibi.errors import InputError, SalibiError, TasksFailedError
from salibi.eval.band_matching import TaskInputs, default_band_names
from salibi.eval.benchmarks import Benchmark, open_benchmark
from salibi.eval.features import SplitFeatures, extract_features
from salibi.eval.geobench.tasks import Task, default_root
from salibi.eval.model_inputs import band_normalisation
from salibi.eval.output import results as R
from salibi.eval.output.feature_store import features_path, write_features
from salibi.eval.partitions import TaskPlan, parse_list, plan_task, resolve_partitions, subset
from salibi.eval.protocols import registry as P
from salibi.eval.scoring.bootstrap import CONFIDENCE
from salibi.eval.settings import GeoBenchSettings
from salibi.vocabulary import PROTOCOLS

__all__ = ["RunOutput", "checkpoint_bands", "evaluate_geobench"]

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


@dataclass
class _Evaluation:
    """What every task of one :func:`evaluate_geobench` call shares."""

    model: Any
    bands: dict[str, list[str]]  # the checkpoint's, per modality (checkpoint_bands)
    gsd: dict[str, float | None]
    settings: GeoBenchSettings
    parameters: P.ProtocolSettings
    protocols: list[str]  # canonical names
    partitions: list[str]  # the headline one last
    benchmark: Benchmark
    device: Any
    log: _HeldLog
    outputs: dict[R.RunKey, RunOutput] | None
    finished: dict[R.RunKey, dict[str, Any]]  # the runs of the results resumed
    #: attributes of the saved features: the checkpoint, and the bands of the task at hand
    describe: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, name: str, task: Any, document: dict[str, Any]) -> bool:
        """Evaluate one task into ``document`` (its runs, or why it is skipped); whether it has
        results (evaluated now, or every run already finished)."""
        kind = task.kind
        applicable = [p for p in self.protocols if kind in P.APPLIES_TO[p]]
        if not applicable:
            useful = [p for p in PROTOCOLS if kind in P.APPLIES_TO[p]]
            document["skipped"][name] = (
                f"no requested protocol applies to a {kind} task "
                f"(requested {','.join(self.protocols)}; use --protocol {','.join(useful)})"
            )
            self.log(f"{name}: skipped: {document['skipped'][name]}")
            return False
        task, inputs, record = self.benchmark.inputs(task, self.bands, self.gsd, self.settings.features)
        if record is not None:
            document["inputs"][name] = record
        if not inputs.modalities:
            document["skipped"][name] = inputs.reason
            self.log(f"{name}: skipped: {inputs.reason}")
            return False
        all_partitions = parse_list(self.settings.partitions) == ["all"]
        plan = plan_task(
            task, self.partitions, applicable, self.settings.seeds, self.finished, self.parameters, all_partitions
        )
        save = self.settings.save_features
        needs_features = save is not None and not features_path(save, name, "test").exists()
        if not plan.pending and not needs_features:
            self.log(f"{name}: every run already in the results; skipped")
            return True
        used = " | ".join(m.describe() for m in inputs.modalities)
        self.log(f"{name} ({kind}, {task.specs.spatial_resolution:g} m): {used}")
        self.describe["bands"] = used
        records = self.evaluate_task(task, inputs, plan, applicable)
        replaced = {R.run_key(r) for r in records}
        document["runs"] = [r for r in document["runs"] if R.run_key(r) not in replaced] + records
        return True

    def extract(
        self, task: Task, inputs: TaskInputs, plan: TaskPlan, protocols: Sequence[str]
    ) -> dict[str, SplitFeatures]:
        """The features of every split the plan reads (the union of the partitions' train splits)."""
        stats = band_normalisation(task, inputs, plan.splits["train"])
        depth = max(len(self.model.encoders[m.modality].blocks) for m in inputs.modalities)
        blocks = P.fpn_blocks(depth) if "seg-fpn" in protocols else []
        features: dict[str, SplitFeatures] = {}
        try:
            for split, names in plan.splits.items():
                if split == "valid" and not names:
                    continue
                started = time.perf_counter()
                features[split] = extract_features(
                    self.model,
                    task,
                    inputs,
                    names,
                    stats,
                    self.settings.batch_size,
                    self.device,
                    keep_tokens="seg-linear" in protocols,
                    num_workers=self.settings.num_workers,
                    token_blocks=blocks,
                )
                elapsed = time.perf_counter() - started
                self.log(
                    f"  {task.name}: {split} {len(names)} samples encoded in {elapsed:.1f} s "
                    f"({len(names) / max(elapsed, 1e-9):.0f} samples/s)"
                )
        except BaseException:
            for split_features in features.values():
                split_features.close()
            raise
        return features

    def save_features(self, task: Task, features: dict[str, SplitFeatures]) -> None:
        """``settings.save_features``: each split's pooled features, labels and sample names."""
        assert self.settings.save_features is not None
        for split, split_features in features.items():
            attributes = {"kind": task.kind, "n_classes": task.specs.label.n_classes, **self.describe}
            path = write_features(
                self.settings.save_features,
                task.name,
                split,
                split_features.pooled,
                split_features.labels,
                split_features.names,
                attributes,
            )
            self.log(f"  {task.name}: {split} features -> {path}")

    def evaluate_task(
        self, task: Task, inputs: TaskInputs, plan: TaskPlan, protocols: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The run records of ``plan.pending`` for one task whose ``inputs`` are mapped."""
        features = self.extract(task, inputs, plan, protocols)
        records = []
        try:
            if self.settings.save_features is not None:
                self.save_features(task, features)
            kind, n_classes = task.kind, task.specs.label.n_classes
            blocks = features["train"].blocks
            for partition, protocol, seed in plan.pending:
                rows = plan.partition_rows[partition]
                data = _inputs_for(kind, n_classes, features, rows)
                started = time.perf_counter()
                output = P.run_protocol(protocol, data, self.parameters, seed, self.device)
                scores = P.score_output(kind, data.test_y, output, n_classes, self.parameters)
                record: dict[str, Any] = {
                    "task": task.name,
                    "protocol": protocol,
                    "method": self.parameters.method(protocol),
                    "partition": partition,
                    "seed": seed,
                    "kind": kind,
                    "metrics": {m: s.value for m, s in scores.items()},
                    "intervals": {m: [s.low, s.high] for m, s in scores.items()},
                    "parameters": self.parameters.parameters(protocol),
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
                if self.outputs is not None:
                    test_ids = features["test"].names
                    self.outputs[R.run_key(record)] = RunOutput(kind, n_classes, test_ids, data.test_y, output)
                shown = ", ".join(f"{m} {s.value:.4f} [{s.low:.4f}, {s.high:.4f}]" for m, s in scores.items())
                extra = f", C = {record['best_c']:.3g}" if record["best_c"] is not None else ""
                self.log(f"  {task.name}: {protocol} ({partition}, seed {seed}{extra}): {shown}")
        finally:
            for split_features in features.values():
                split_features.close()
        return records


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


def _wanted_tasks(settings: GeoBenchSettings) -> tuple[Benchmark, list[str]]:
    """The benchmark under ``settings.root`` and the names of the tasks to evaluate."""
    root_path = Path(settings.root).expanduser() if settings.root is not None else default_root()
    found = open_benchmark(root_path, settings.benchmark, settings.features)
    wanted = parse_list(settings.tasks) or sorted([*found.tasks, *found.skipped])
    missing = [t for t in wanted if t not in found.tasks and t not in found.skipped]
    if missing:
        raise InputError(
            f"unknown GEO-Bench task(s) {', '.join(missing)} under {root_path}; "
            f"available: {', '.join(sorted(found.tasks))}"
        )
    return found, wanted


def _load_model(checkpoint: str | os.PathLike[str], model: Any, attention: str, device: Any) -> tuple[Any, Path]:
    """``model`` on ``device`` in eval mode, or the one of ``checkpoint``; and the checkpoint's path."""
    if model is None:
        from salibi.models import load_checkpoint, resolve_checkpoint

        checkpoint_path = resolve_checkpoint(checkpoint)
        return load_checkpoint(checkpoint_path, map_location=device, attention=attention), checkpoint_path
    return model.to(device).eval(), Path(checkpoint)


def _start_document(
    checkpoint: Path,
    evaluation: _Evaluation,
    previous: dict[str, Any] | None,
    wanted: list[str],
) -> dict[str, Any]:
    """A results document for this evaluation, holding what ``previous`` has of other tasks and runs."""
    parameters = evaluation.parameters
    document = R.new_document(
        str(checkpoint),
        evaluation.partitions[-1],
        evaluation.partitions,
        evaluation.settings.seeds,
        {
            p: {"deterministic": p in P.DETERMINISTIC, "parameters": parameters.parameters(p)}
            for p in evaluation.protocols
        },
        {
            "resamples": parameters.resamples,
            "seed": parameters.bootstrap_seed,
            "confidence": CONFIDENCE,
            "over": "test samples",
        },
    )
    document["benchmark"], document["inputs"] = evaluation.benchmark.name, {}
    if previous is not None:
        document["runs"] = list(previous.get("runs", []))
        document["protocols"] = {**previous.get("protocols", {}), **document["protocols"]}
        document["skipped"] = {k: v for k, v in previous.get("skipped", {}).items() if k not in wanted}
        document["failed"] = {k: v for k, v in previous.get("failed", {}).items() if k not in wanted}
        document["inputs"] = {k: v for k, v in previous.get("inputs", {}).items() if k not in wanted}
    return document


def evaluate_geobench(
    checkpoint: str | os.PathLike[str],
    settings: GeoBenchSettings | None = None,
    *,
    model: Any = None,
    previous: dict[str, Any] | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    outputs: dict[R.RunKey, RunOutput] | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a checkpoint or run folder) on the GEO-Bench tasks ``settings``
    name (:class:`~salibi.eval.settings.GeoBenchSettings`; default: every task under the default
    root, every protocol).

    ``model``: an already loaded model to use instead of loading ``checkpoint`` (its path is still
    reported). ``previous``: a results document to resume. ``on_update``: receives the document
    after each task (e.g. to write it). ``outputs``: a dict filled with each run's per-test-sample
    output (:class:`RunOutput`). ``log``: one line per step. Raises
    :class:`~salibi.errors.SalibiError` for settings it cannot use; a task that fails is reported
    under ``"failed"`` instead, unless no task gave a result: then
    :class:`~salibi.errors.TasksFailedError` (the first failure, the others named; its ``failed``
    has every reason), with nothing passed to ``on_update`` and the held lines not logged.
    """
    settings = settings or GeoBenchSettings()
    protocols = P.normalise_protocols(parse_list(settings.protocols))
    if settings.seeds < 1:
        raise InputError(f"--seeds {settings.seeds}: must be at least 1")
    parameters = settings.protocol_parameters()
    partitions = resolve_partitions(settings.partition, settings.partitions)
    found, wanted = _wanted_tasks(settings)

    device = resolve_device(settings.device)
    model, checkpoint_path = _load_model(checkpoint, model, settings.attention, device)
    bands, gsd = checkpoint_bands(model)
    say = _HeldLog(log)
    say.hold(f"checkpoint {checkpoint_path}: " + "; ".join(f"{m} {' '.join(b)}" for m, b in bands.items()))
    if previous is not None and previous.get("checkpoint") != str(checkpoint_path):
        raise InputError(
            f"the results to resume are of checkpoint {previous.get('checkpoint')}, not {checkpoint_path}; "
            "pass --overwrite or another --output"
        )
    evaluation = _Evaluation(
        model=model,
        bands=bands,
        gsd=gsd,
        settings=settings,
        parameters=parameters,
        protocols=protocols,
        partitions=partitions,
        benchmark=found,
        device=device,
        log=say,
        outputs=outputs,
        finished=R.finished_runs(previous),
        describe={"checkpoint": str(checkpoint_path)},
    )
    document = _start_document(checkpoint_path, evaluation, previous, wanted)
    failed: dict[str, str] = {}  # in this call
    errors: list[BaseException] = []
    succeeded = 0  # tasks evaluated, or found finished in ``previous``
    for name in wanted:
        if name in found.skipped:
            document["skipped"][name] = found.skipped[name]
            say(f"{name}: skipped: {found.skipped[name]}")
            continue
        try:
            if not evaluation.evaluate(name, found.tasks[name], document):
                continue
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
