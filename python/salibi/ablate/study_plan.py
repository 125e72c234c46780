"""What a study is: :class:`AblationSettings`, the folder layout, the runs and their commands.

A study folder ``studies/NAME``::

    study.json                      the settings that define its runs (a later call must agree)
    runs/VARIANT-seedS/             one salibi pretrain run per variant and seed
    random-init/seedS/              checkpoint: the same model, untrained (the runs' initial weights)
    eval/VARIANT-seedS.json         salibi eval geobench results of each run's final checkpoint
    eval/random-init-seedS.json     ... and of the untrained model
    eval/retrieval/LABEL.json       salibi eval retrieval results of each (on the study's data)
    tasks/                          the evaluation tasks shipped with salibi (without --root)
    shared_initial_weights.json     per seed: every variant's parameter digests, checked equal
    ablation.json  ablation.md  ablation.png

Runs of one seed differ only in ``--variant``: same data and order, masks, schedule and initial
weights (checked: :mod:`salibi.ablate.training`).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salibi.errors import InputError, MissingInputError
from salibi.eval.retrieval.settings import RETRIEVAL_SPLITS
from salibi.fileio import write_atomic
from salibi.vocabulary import EVALUATIONS, STUDY_FORMAT, STUDY_FORMAT_VERSION, VARIANTS

__all__ = [
    "REFERENCE",
    "AblationSettings",
    "RunSpec",
    "StudyLayout",
    "check_study",
    "expand_data",
    "reading_against_reference",
]

#: The variant every difference is taken against.
REFERENCE = "scale-alibi"
#: Settings that define the runs: a later call on the same folder must give the same ones.
RUN_DEFINING = ("data", "model", "max_steps", "epochs", "batch_size", "lr", "pretrain_args")
#: pretrain options the study sets itself for each run.
STUDY_OWNED = (
    "--out",
    "--variant",
    "--seed",
    "--resume",
    "--model",
    "--max-steps",
    "--epochs",
    "--gpus",
    "--cpu-procs",
)


def reading_against_reference(apart: Sequence[str], overlapping: Sequence[str]) -> str:
    """What the paired differences from :data:`REFERENCE` show: ``apart`` and ``overlapping`` are
    the variants (each with its difference and interval, as text) whose paired interval excludes
    and includes 0. Both GEO-Bench's and retrieval's readings of a study say it this way."""
    parts = []
    if apart:
        parts.append(f"the paired interval excludes 0 for {', '.join(apart)}")
    if overlapping:
        subject = "it" if apart else "the paired interval"
        parts.append(
            f"{subject} includes 0 for {', '.join(overlapping)}: no difference from {REFERENCE} is shown "
            "(nor shown to be absent) at this size"
        )
    return "; ".join(parts)


@dataclass
class AblationSettings:
    """Everything ``salibi ablate`` takes."""

    data: list[str]
    out: str
    variants: tuple[str, ...] = VARIANTS
    seeds: int = 1
    model: str = "tiny"
    max_steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    #: further ``salibi pretrain`` options, passed through to every run
    pretrain_args: list[str] = field(default_factory=list)
    gpus: int | None = None
    cpu_procs: int | None = None
    #: GEO-Bench root; None: the Raleigh land-cover tasks shipped with salibi, written into the study
    root: str | None = None
    tasks: str | None = None
    protocols: tuple[str, ...] = ("knn", "linear")
    eval_batch_size: int = 64
    device: str = "auto"
    #: what each checkpoint is evaluated with (:data:`salibi.vocabulary.EVALUATIONS`)
    evals: tuple[str, ...] = EVALUATIONS
    #: the chips of the study's data that retrieval queries (a split, or all)
    retrieval_split: str = "validation"

    def __post_init__(self) -> None:
        self.evals = tuple(dict.fromkeys(self.evals))
        if not self.evals or any(e not in EVALUATIONS for e in self.evals):
            raise InputError(f"--evals {','.join(self.evals)}: a comma-separated list of {', '.join(EVALUATIONS)}")
        if self.retrieval_split not in RETRIEVAL_SPLITS:
            raise InputError(f"--retrieval-split {self.retrieval_split}: choose one of {', '.join(RETRIEVAL_SPLITS)}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InputError(
                f"--variants {','.join(self.variants)}: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
            )
        if REFERENCE not in self.variants:
            raise InputError(
                f"--variants {','.join(self.variants)}: include {REFERENCE}, the reference every difference is taken against"
            )
        self.variants = tuple(dict.fromkeys(self.variants))
        if self.seeds < 1:
            raise InputError(f"--seeds {self.seeds}: must be at least 1")
        if self.max_steps is not None and self.epochs is not None:
            raise InputError("give --max-steps or --epochs, not both")
        owned = [a for a in self.pretrain_args if a.split("=", 1)[0] in STUDY_OWNED]
        if owned:
            raise InputError(
                f"--pretrain-args {shlex.join(self.pretrain_args)}: {', '.join(owned)} is set by salibi ablate itself "
                "(use its own options)"
            )
        self.protocols = tuple(p for p in dict.fromkeys(self.protocols) if p != "majority")

    def defining(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUN_DEFINING}


@dataclass(frozen=True)
class RunSpec:
    """One pretraining run of the study."""

    variant: str
    seed: int
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.variant}-seed{self.seed}"


class StudyLayout:
    """The paths of a study folder."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.study = self.root / "study.json"
        self.runs = self.root / "runs"
        self.eval = self.root / "eval"
        self.tasks = self.root / "tasks"
        self.shared_initial_weights = self.root / "shared_initial_weights.json"
        self.json = self.root / "ablation.json"
        self.markdown = self.root / "ablation.md"
        self.chart = self.root / "ablation.png"

    def run(self, variant: str, seed: int) -> RunSpec:
        return RunSpec(variant, seed, self.runs / f"{variant}-seed{seed}")

    def random_init(self, seed: int) -> Path:
        return self.root / "random-init" / f"seed{seed}"

    def results(self, label: str) -> Path:
        return self.eval / f"{label}.json"

    def retrieval(self, label: str) -> Path:
        return self.eval / "retrieval" / f"{label}.json"


def expand_data(paths: list[str]) -> list[str]:
    """The aligned files given: files as they are, a folder as its ``*.h5`` files (sorted), so the
    demo's ``DIR/aligned`` can be given as it is."""
    files: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(str(p) for p in path.glob("*.h5"))
            if not found:
                raise MissingInputError(f"{path}: a folder without *.h5 files; give aligned sets (salibi align -o)")
            files += found
        elif not path.exists():
            raise MissingInputError(
                f"{path}: no such aligned set; make one with salibi align or salibi demo --only align"
            )
        else:
            files.append(str(path))
    if not files:
        raise InputError("no aligned set given")
    return files


def pretrain_arguments(settings: AblationSettings, spec: RunSpec) -> list[str]:
    """The ``salibi pretrain`` arguments of one run (always ``--resume``: a run that is not there starts)."""
    args = [*settings.data, "--out", str(spec.folder), "--model", settings.model, "--variant", spec.variant]
    args += ["--seed", str(spec.seed), "--batch-size", str(settings.batch_size), "--lr", repr(settings.lr)]
    if settings.max_steps is not None:
        args += ["--max-steps", str(settings.max_steps)]
    if settings.epochs is not None:
        args += ["--epochs", repr(settings.epochs)]
    if settings.gpus is not None:
        args += ["--gpus", str(settings.gpus)]
    if settings.cpu_procs is not None:
        args += ["--cpu-procs", str(settings.cpu_procs)]
    return [*args, *settings.pretrain_args, "--resume"]


def pretrain_command(settings: AblationSettings, spec: RunSpec) -> list[str]:
    """The process that trains one run: this Python's ``-m salibi pretrain ...``."""
    return [sys.executable, "-m", "salibi", "pretrain", *pretrain_arguments(settings, spec)]


def shown_command(args: list[str]) -> str:
    """A command as a person would type it (``salibi ...``)."""
    return shlex.join(["salibi", *args])


def check_study(settings: AblationSettings, layout: StudyLayout) -> None:
    """Record the study's run-defining settings in ``study.json``, or check them against the
    ones recorded there: InputError naming each difference."""
    wanted = settings.defining()
    if layout.study.is_file():
        try:
            stored = json.loads(layout.study.read_text(encoding="utf-8"))["settings"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(
                f"{layout.study}: unreadable ({err}); remove {layout.root} or choose another --out"
            ) from None
        different = [
            f"{name} {wanted[name]!r} (the study has {stored.get(name)!r})"
            for name in RUN_DEFINING
            if _comparable(stored.get(name)) != _comparable(wanted[name])
        ]
        if different:
            raise InputError(
                f"{layout.root} was started with other settings: {'; '.join(different)}. Give the same ones to "
                "continue it, or choose another --out"
            )
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    document = {"format": STUDY_FORMAT, "format_version": STUDY_FORMAT_VERSION, "settings": asdict(settings)}
    write_atomic(layout.study, json.dumps(document, indent=1, default=list) + "\n")


def _comparable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
