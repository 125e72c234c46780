"""``salibi ablate`` as a library call: train every variant and seed, evaluate, compare.

::

    from salibi.ablate import AblationSettings, run_ablation
    study = run_ablation(AblationSettings(data=["demo-out/aligned"], out="studies/demo",
                                          variants=("scale-alibi", "alibi"), max_steps=300, batch_size=16))
    study.document["differences"]["alibi"]["raleigh-landcover"]["knn"]["accuracy"]   # {"delta", "interval", ...}

Order: (1) the study's settings are recorded or checked (``study.json``); (2) every variant's
initial model is built and its parameters checked identical where shared (before any step);
(3) each run is trained, resumed or found finished, and its own record of its initial weights
checked; (4) the untrained model of each seed is written as a checkpoint; (5) each final
checkpoint and each untrained model is evaluated -- ``evals``: GEO-Bench-style probes, and
cross-modal retrieval on the study's own data (:mod:`~salibi.ablate.retrieval`) -- (results resumed
per run; a run trained in this call is evaluated afresh); (6) ``ablation.json``, ``ablation.md``,
``ablation.png``.
A second identical call trains and evaluates nothing and writes the same report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salibi.ablate import retrieval, training
from salibi.ablate.report import build_document, markdown_report, write_chart, write_document
from salibi.ablate.study_plan import (
    REFERENCE,
    AblationSettings,
    StudyLayout,
    check_study,
    expand_data,
    pretrain_arguments,
    shown_command,
)
from salibi.errors import InputError, SalibiError, TasksFailedError
from salibi.fileio import write_atomic
from salibi.vocabulary import RANDOM_INIT

__all__ = ["AblationStudy", "run_ablation"]

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class AblationStudy:
    """What :func:`run_ablation` did and wrote."""

    layout: StudyLayout
    document: dict[str, Any]
    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.document.get("failed"))


def _check_not_a_rank() -> None:
    """InputError under torchrun: the study's runs would inherit this process's rank and rendezvous."""
    from salibi.distributed.ranks import TorchrunEnv

    if TorchrunEnv.from_environ() is not None:
        raise InputError(
            "salibi ablate starts its own pretraining runs: run it outside torchrun (with --gpus N on one node), or "
            "run the commands of salibi ablate --dry-run under torchrun, then salibi ablate again to evaluate"
        )


def _task_root(settings: AblationSettings, layout: StudyLayout, log: Log) -> Path:
    """The GEO-Bench root to evaluate on: ``--root``, or the shipped tasks written into the study."""
    from salibi.eval.geobench.sample_tasks import SHIPPED_TASKS, write_shipped_tasks
    from salibi.eval.geobench.tasks import discover_tasks

    if settings.root is not None:
        return Path(settings.root).expanduser()
    found = discover_tasks(layout.tasks) if layout.tasks.is_dir() else {}
    if not all(name in found for name in SHIPPED_TASKS):
        log(f"evaluation tasks: the ones shipped with salibi ({', '.join(SHIPPED_TASKS)}) -> {layout.tasks}")
        write_shipped_tasks(layout.tasks)
    return layout.tasks


def eval_arguments(settings: AblationSettings, checkpoint: str, root: Path, output: Path) -> list[str]:
    """The ``salibi eval geobench`` arguments equivalent to one evaluation of the study."""
    args = ["eval", "geobench", "--checkpoint", checkpoint, "--root", str(root)]
    if settings.tasks:
        args += ["--tasks", settings.tasks]
    args += ["--protocol", ",".join([*settings.protocols, "majority"]), "--output", str(output)]
    return args + ["--batch-size", str(settings.eval_batch_size), "--device", settings.device]


def _evaluate(
    settings: AblationSettings, label: str, checkpoint: str, root: Path, layout: StudyLayout, fresh: bool, log: Log
) -> tuple[dict[str, Any], bool]:
    """The results of one checkpoint, resumed from ``eval/LABEL.json`` unless ``fresh`` (it trained
    in this call) or the file is of another checkpoint; and whether anything was computed."""
    from salibi.eval.evaluate import evaluate_geobench
    from salibi.eval.output.results import load_results, upgrade_document, write_results
    from salibi.eval.settings import GeoBenchSettings
    from salibi.models import resolve_checkpoint

    path = layout.results(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    resolved = str(resolve_checkpoint(checkpoint))
    previous = None
    if path.is_file() and not fresh:
        previous = upgrade_document(load_results(path), str(path))
        if previous.get("checkpoint") != resolved:
            previous = None
    before = len(previous.get("runs", [])) if previous else 0

    def save(document: dict[str, Any]) -> None:
        write_results(document, path)

    try:
        evaluation = GeoBenchSettings(
            root=root,
            tasks=settings.tasks,
            protocols=(*settings.protocols, "majority"),
            batch_size=settings.eval_batch_size,
            device=settings.device,
        )
        results = evaluate_geobench(
            resolved,
            evaluation,
            previous=previous,
            on_update=save,
            log=lambda message: log(f"  {label}: {message}"),
        )
    except TasksFailedError as err:  # no task gave a result: nothing to compare, say which checkpoint
        raise TasksFailedError(f"evaluating {label}: {err}", err.failed) from err
    write_results(results, path)
    return results, previous is None or len(results.get("runs", [])) != before


def _retrieval(
    settings: AblationSettings,
    checkpoints: dict[str, list[tuple[str, str]]],
    layout: StudyLayout,
    study: AblationStudy,
    commands: list[str],
    log: Log,
) -> dict[str, Any]:
    """Every checkpoint ranked on the study's data; the ``retrieval`` section (or why it was skipped:
    data retrieval cannot query, such as a split without chips, skips it with the reason)."""
    documents: dict[str, list[dict[str, Any]]] = {}
    for name, entries in checkpoints.items():
        for label, checkpoint in entries:
            try:
                document, computed = retrieval.evaluate_checkpoint(
                    settings, label, checkpoint, layout, label in study.trained, log
                )
            except InputError as err:
                reason = f"{err} (salibi ablate's option: --retrieval-split)"
                log(f"retrieval: skipped: {reason}")
                return {"skipped": reason}
            documents.setdefault(name, []).append(document)
            output = str(layout.retrieval(label))
            commands.append(shown_command(retrieval.retrieval_arguments(settings, checkpoint, output)))
            if computed:
                study.evaluated.append(f"{label} (retrieval)")
    try:
        return retrieval.retrieval_section(documents)
    except SalibiError as err:  # documents of another salibi: say so rather than compare them
        return {"skipped": str(err)}


def run_ablation(settings: AblationSettings, log: Log = _quiet, dry_run: bool = False) -> AblationStudy:
    """Run (or continue) the study ``settings`` describes; see the module docstring. ``dry_run``:
    only record the settings and return the commands (``document["commands"]``), training nothing."""
    _check_not_a_rank()
    settings.data = expand_data(settings.data)
    layout = StudyLayout(settings.out)
    check_study(settings, layout)
    seeds = list(range(settings.seeds))
    specs = [layout.run(variant, seed) for seed in seeds for variant in settings.variants]
    commands = [shown_command(["pretrain", *pretrain_arguments(settings, spec)]) for spec in specs]
    if dry_run:
        return AblationStudy(layout, {"commands": commands})

    shared = training.check_shared_initialisation(settings, layout, log)
    study = AblationStudy(layout, {})
    for spec in specs:
        if training.train_run(settings, spec, log):
            study.trained.append(spec.label)
        training.check_run_initialisation(spec, shared)
    for seed in seeds:
        compared = training.check_runs_alike([s for s in specs if s.seed == seed])
        log(f"seed {seed}: the runs were planned alike but for the variant ({', '.join(compared)})")

    # name -> (label, checkpoint or run folder) per seed, in seed order; the untrained model last
    checkpoints: dict[str, list[tuple[str, str]]] = {v: [] for v in settings.variants}
    for spec in specs:
        checkpoints[spec.variant].append((spec.label, str(spec.folder)))
    checkpoints[RANDOM_INIT] = [
        (
            f"{RANDOM_INIT}-seed{seed}",
            str(training.write_random_init(layout.run(REFERENCE, seed), layout.random_init(seed), shared, log)),
        )
        for seed in seeds
    ]

    documents: dict[str, list[dict[str, Any]]] = {}
    if "geobench" in settings.evals:
        root = _task_root(settings, layout, log)
        for name, entries in checkpoints.items():
            for label, checkpoint in entries:
                # A run trained in this call is evaluated afresh; the untrained model never changes.
                results, computed = _evaluate(settings, label, checkpoint, root, layout, label in study.trained, log)
                documents.setdefault(name, []).append(results)
                commands.append(shown_command(eval_arguments(settings, checkpoint, root, layout.results(label))))
                if computed:
                    study.evaluated.append(label)
    section = _retrieval(settings, checkpoints, layout, study, commands, log) if "retrieval" in settings.evals else None
    runs = {name: [checkpoint for _, checkpoint in entries] for name, entries in checkpoints.items()}
    study.document = build_document(documents, runs, commands, seeds, asdict(settings), section)
    write_document(study.document, layout.json)
    write_atomic(layout.markdown, markdown_report(study.document, str(layout.root)))
    study.files = [layout.json, layout.markdown]
    chart = write_chart(study.document, layout.chart)
    if chart is not None:
        study.files.append(chart)
    return study
