"""The study's pretraining runs: the shared initial weights, checked before and after; each run
trained (or resumed, or found finished); the untrained reference model of each seed.

- :func:`check_shared_initialisation`: before any step, every variant's model is built the way
  ``salibi pretrain`` builds it (:func:`salibi.train.initial_weights.initial_model`) and its
  parameter digests compared; any shared parameter that differs stops the study. The digests go
  to ``shared_initial_weights.json``.
- :func:`train_run`: ``salibi pretrain ... --resume`` in a child process (a run not started
  starts; an interrupted one resumes from its newest checkpoint; a finished one is not started at
  all); its output goes to ``log`` line by line.
- :func:`check_run_initialisation`: each run's own record (written by the run before its first
  step) must equal the study's digests: what trained is what was checked.
- :func:`write_random_init`: the untrained reference, checked against the same digests.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salibi.ablate.study_plan import AblationSettings, RunSpec, StudyLayout, pretrain_command
from salibi.errors import DataFormatError, SalibiError
from salibi.fileio import write_atomic
from salibi.runs import RUN_JSON
from salibi.vocabulary import STUDY_INITIAL_WEIGHTS_FORMAT, STUDY_INITIAL_WEIGHTS_FORMAT_VERSION

__all__ = [
    "check_run_initialisation",
    "check_runs_alike",
    "check_shared_initialisation",
    "run_progress",
    "train_run",
    "write_random_init",
]

Log = Callable[[str], None]


def run_progress(folder: Path) -> tuple[int, int | None]:
    """(steps in the newest complete checkpoint, steps the run is planned for) of a run folder;
    (0, None) when it has not started."""
    from salibi.models.checkpoint import check_checkpoint
    from salibi.runs import checkpoints_dir, newest_complete, step_of

    run_json = folder / RUN_JSON
    if not run_json.is_file():
        return 0, None
    try:
        total = int(json.loads(run_json.read_text(encoding="utf-8"))["total_steps"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"{run_json}: unreadable ({err}); remove {folder} to train the run again") from None
    if not checkpoints_dir(folder).is_dir():
        return 0, total
    newest = newest_complete(checkpoints_dir(folder), check_checkpoint, [])
    return ((step_of(newest) or 0) if newest is not None else 0), total


def _variant_digests(settings: AblationSettings, seed: int, variant: str) -> dict[str, Any]:
    from salibi.train import PretrainConfig
    from salibi.train.data_facts import read_data_facts
    from salibi.train.initial_weights import initial_model, parameter_digests

    facts = read_data_facts(settings.data)
    channels = {m: facts.files[0].modalities[m].channels for m in facts.modalities}
    config = PretrainConfig(data=list(settings.data), out="", model=settings.model, variant=variant, seed=seed)
    return parameter_digests(initial_model(config, facts.modalities, channels, facts.coarsest_gsd()))


def check_shared_initialisation(settings: AblationSettings, layout: StudyLayout, log: Log) -> dict[str, Any]:
    """Build every variant's initial model for every seed as ``salibi pretrain`` will; SalibiError
    when a parameter they share differs. Writes and returns the ``shared_initial_weights.json`` document."""
    from salibi.train.initial_weights import compare_initial_weights

    seeds: dict[str, Any] = {}
    for seed in range(settings.seeds):
        digests = {v: _variant_digests(settings, seed, v) for v in settings.variants}
        found = compare_initial_weights(digests)
        if found["different"]:
            raise SalibiError(
                f"seed {seed}: the variants {', '.join(settings.variants)} would not start from the same weights "
                f"({len(found['different'])} of {len(found['shared'])} shared parameters differ, e.g. "
                f"{', '.join(found['different'][:3])}); the ablation would not isolate the position information"
            )
        reference = digests[settings.variants[0]]
        seeds[str(seed)] = {
            "variants": list(settings.variants),
            "shared": len(found["shared"]),
            "equal": len(found["equal"]),
            "only_in": found["unshared"],
            "parameters": {name: reference[name]["sha256"] for name in found["shared"]},
        }
        log(
            f"seed {seed}: {len(found['equal'])} of {len(found['shared'])} shared parameters identical at "
            f"initialisation in {', '.join(settings.variants)}"
            + (f"; not shared: {found['unshared']}" if found["unshared"] else "")
        )
    document = {
        "format": STUDY_INITIAL_WEIGHTS_FORMAT,
        "format_version": STUDY_INITIAL_WEIGHTS_FORMAT_VERSION,
        "seeds": seeds,
    }
    write_atomic(layout.shared_initial_weights, json.dumps(document, indent=1) + "\n")
    return document


def check_run_initialisation(spec: RunSpec, shared: dict[str, Any]) -> None:
    """SalibiError unless the run's own record of its initial weights has the study's digests."""
    from salibi.train.initial_weights import read_initial_weights

    record = read_initial_weights(spec.folder)["parameters"]
    expected = shared["seeds"][str(spec.seed)]["parameters"]
    different = sorted(n for n, digest in expected.items() if n not in record or record[n]["sha256"] != digest)
    if different:
        raise SalibiError(
            f"{spec.folder}: the run started from other weights than the study's {spec.variant} seed {spec.seed} "
            f"({len(different)} parameters differ, e.g. {', '.join(different[:3])}); remove the folder so the "
            "study trains it again"
        )


def check_runs_alike(specs: list[RunSpec]) -> list[str]:
    """SalibiError unless the runs (one seed, several variants) were planned alike: every
    run-defining setting but the variant (data, batch, schedule, mask ratio, seed, ...), the
    schedule's steps and the data's fingerprint, as each run's ``run.json`` records them -- the
    data order and the masks are functions of these. Returns the names compared."""
    from salibi.train.config import RUN_DEFINING
    from salibi.train.run_plan import read_run

    described = {}
    for spec in specs:
        document = read_run(spec.folder)
        config = document.get("config", {})
        described[spec.label] = {
            **{name: config.get(name) for name in RUN_DEFINING if name != "variant"},
            "total_steps": document.get("total_steps"),
            "steps_per_epoch": document.get("steps_per_epoch"),
            "data_fingerprint": document.get("data_fingerprint"),
        }
    first, *others = described.values()
    for label, values in zip(list(described)[1:], others):
        different = sorted(name for name in first if first[name] != values[name])
        if different:
            raise SalibiError(
                f"{label} was not planned like {next(iter(described))}: {', '.join(different)} differ (see their "
                "run.json); remove the study's runs folder and start the study again"
            )
    return sorted(first)


def train_run(settings: AblationSettings, spec: RunSpec, log: Log) -> bool:
    """Train, resume or skip one run; True when it trained. SalibiError when the child fails or
    stops before the end (the next call resumes it)."""
    done, total = run_progress(spec.folder)
    if total is not None and done >= total:
        log(f"{spec.label}: finished earlier ({done}/{total} steps); not trained again")
        return False
    log(f"{spec.label}: " + (f"resuming at step {done} of {total}" if total else "training"))
    command = pretrain_command(settings, spec)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    previous = signal.getsignal(signal.SIGTERM)

    def forward(signum: int, frame: Any) -> None:  # the run saves and stops; so do we, afterwards
        process.send_signal(signum)

    try:
        signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: the run takes its own signals
        previous = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            log(f"  {spec.label}: {line.rstrip()}")
        status = process.wait()
    except KeyboardInterrupt:  # the child got the Ctrl-C too: let it save
        process.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    done, total = run_progress(spec.folder)
    if status != 0 or total is None or done < total:
        where = f"stopped at step {done} of {total}" if total else "did not start"
        raise SalibiError(
            f"{spec.folder}: salibi pretrain {where} (exit status {status}); run the same salibi ablate command "
            "to resume it"
        )
    return True


def write_random_init(spec: RunSpec, folder: Path, shared: dict[str, Any], log: Log) -> Path:
    """The untrained model of ``spec``'s run (same configuration, bands and statistics, its initial
    weights) as a checkpoint folder, checked against the study's digests; kept when already there."""
    from salibi.eval.baseline import check_twin, untrained_twin
    from salibi.models import load_checkpoint, resolve_checkpoint, save_checkpoint
    from salibi.models.checkpoint import CONFIG
    from salibi.train.initial_weights import parameter_digests

    expected = shared["seeds"][str(spec.seed)]["parameters"]
    if (folder / CONFIG).is_file():
        existing = load_checkpoint(folder)
        if {n: d["sha256"] for n, d in parameter_digests(existing).items() if n in expected} == expected:
            return folder
    checkpoint = resolve_checkpoint(spec.folder)
    twin = untrained_twin(load_checkpoint(checkpoint), spec.seed)
    check_twin(twin, {n: {"sha256": d} for n, d in expected.items()}, str(spec.folder))
    save_checkpoint(  # bands, GSD and statistics: the twin's own, those of the run it mirrors
        twin,
        folder,
        step=0,
        random_init=True,
        seed=spec.seed,
        twin_of=str(checkpoint),
    )
    log(f"random-init-seed{spec.seed}: the untrained model (the runs' initial weights) -> {folder}")
    return folder
