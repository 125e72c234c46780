"""The reference every pretrained number needs: the same model, untrained (``random-init``).

:func:`untrained_twin` rebuilds a loaded model's configuration (size, variant, bands, GSDs,
normalisation statistics, reference length) with the initial weights ``salibi pretrain`` gives a
run of that seed (``torch.manual_seed(seed)`` then the model's constructor). When the run recorded
its initial weights (``RUN/initial_weights.json``), :func:`run_initial_weights` finds them and
:func:`check_twin` proves the twin *is* that run before its first step.

:func:`comparison_rows` / :func:`comparison_table` put a checkpoint's results beside the
untrained model's on the same test samples: each value with its 95 % interval, the difference
with its paired 95 % interval, and the majority-class chance. ``salibi demo`` and
``salibi eval geobench --baseline random-init`` print it; ``salibi ablate`` evaluates the same
twin beside its variants.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError
from salibi.eval.output.report import format_interval, format_number
from salibi.eval.scoring.bootstrap import CONFIDENCE_LABEL
from salibi.eval.scoring.differences import paired_difference, run_result
from salibi.eval.scoring.task_metrics import headline_metric
from salibi.eval.settings import GeoBenchSettings
from salibi.runs import RUN_JSON
from salibi.vocabulary import RANDOM_INIT

__all__ = [
    "RANDOM_INIT",
    "Comparison",
    "baseline_label",
    "baseline_output",
    "check_twin",
    "comparison_rows",
    "comparison_table",
    "describe_twin",
    "evaluate_random_init",
    "random_init_reference",
    "run_initial_weights",
    "run_seed",
    "untrained_twin",
]


def untrained_twin(model: Any, seed: int) -> Any:
    """A model of ``model``'s configuration (and bands, GSDs, statistics) with the initial weights
    of a ``salibi pretrain`` run of ``seed``, on the CPU, in eval mode."""
    import torch

    from salibi.models import ModelConfig

    config = ModelConfig.from_dict(model.config.to_dict())
    attention = getattr(model, "attention", None)
    torch.manual_seed(int(seed))
    twin = type(model)(config) if attention is None else type(model)(config, attention=attention)
    twin.modality_info = copy.deepcopy(model.modality_info)
    twin.checkpoint_metadata = {"random_init": True, "seed": int(seed)}
    return twin.eval()


def _run_folder(checkpoint: Path) -> Path | None:
    """The run folder of a checkpoint folder ``RUN/checkpoints/step_XXXXXXX``, if it is one."""
    run = checkpoint.parent.parent
    return run if checkpoint.parent.name == "checkpoints" and (run / RUN_JSON).is_file() else None


def run_seed(checkpoint: Path) -> int | None:
    """The ``--seed`` of the run a checkpoint folder belongs to (its ``run.json``), or None."""
    run = _run_folder(checkpoint)
    if run is None:
        return None
    try:
        return int(json.loads((run / RUN_JSON).read_text())["config"]["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_initial_weights(checkpoint: Path) -> dict[str, Any] | None:
    """The initial-weight record of the run a checkpoint folder belongs to, or None."""
    from salibi.runs import INITIAL_WEIGHTS_JSON
    from salibi.train.initial_weights import read_initial_weights

    run = _run_folder(checkpoint)
    if run is None or not (run / INITIAL_WEIGHTS_JSON).is_file():
        return None
    return read_initial_weights(run)


def check_twin(twin: Any, record: Mapping[str, Any], where: str) -> None:
    """DataFormatError unless ``twin``'s parameters are the ones ``record`` (an initial-weight
    record or its ``parameters``) lists, digest for digest."""
    from salibi.train.initial_weights import compare_initial_weights, parameter_digests

    found = compare_initial_weights({"twin": parameter_digests(twin), "run": dict(record.get("parameters", record))})
    if found["different"] or found["unshared"]:
        names = found["different"] + sorted({n for names in found["unshared"].values() for n in names})
        raise DataFormatError(
            f"{where}: the untrained model does not reproduce the run's recorded initial weights "
            f"({len(names)} parameters differ, e.g. {', '.join(names[:3])}); the run was started by another "
            "salibi or another torch: train it again in a new folder"
        )


@dataclass(frozen=True)
class Comparison:
    """One metric of one (task, protocol): the checkpoint and the untrained model on the same test samples."""

    task: str
    protocol: str
    metric: str
    value: float
    interval: tuple[float, float]
    baseline: float
    baseline_interval: tuple[float, float]
    delta: float
    delta_interval: tuple[float, float]
    chance: float | None
    n_test: int

    @property
    def apart(self) -> bool:
        """Whether the paired interval of the difference excludes 0."""
        low, high = self.delta_interval
        return bool(low > 0 or high < 0)


def comparison_rows(results: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[Comparison]:
    """Every (task, protocol, metric) of ``results`` that ``baseline`` also has (majority excluded)."""
    rows = []
    for task in sorted(results.get("tasks", {})):
        protocols = results["tasks"][task]
        chance = protocols.get("majority", {})
        for protocol in sorted(protocols):
            if protocol == "majority":
                continue
            for metric in [m for m in protocols[protocol] if not m.endswith(("_std", "_iqm"))]:
                mine, theirs = run_result(results, task, protocol, metric), run_result(baseline, task, protocol, metric)
                if mine is None or theirs is None:
                    continue
                if mine.n_test != theirs.n_test:
                    raise DataFormatError(
                        f"{task}: the checkpoint was scored on {mine.n_test} test samples, the untrained model on "
                        f"{theirs.n_test}; evaluate both on the same task folder"
                    )
                own = results["intervals"][task][protocol].get(metric, [float("nan")] * 2)
                base = baseline["intervals"][task][protocol].get(metric, [float("nan")] * 2)
                delta = paired_difference([mine], [theirs])
                rows.append(
                    Comparison(
                        task,
                        protocol,
                        metric,
                        mine.value,
                        (own[0], own[1]),
                        theirs.value,
                        (base[0], base[1]),
                        delta.value,
                        (delta.low, delta.high),
                        chance.get(metric),
                        mine.n_test,
                    )
                )
    return rows


def comparison_table(rows: list[Comparison], label: str = "pretrained") -> str:
    """A Markdown table of :func:`comparison_rows` and one sentence per (task, protocol) headline metric."""
    if not rows:
        return "No task was evaluated with both models.\n"
    lines = [
        f"| task | protocol | metric | {label} | {CONFIDENCE_LABEL} interval | random init | {CONFIDENCE_LABEL} interval | "
        f"difference | paired {CONFIDENCE_LABEL} interval | chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.task} | {r.protocol} | {r.metric} | {format_number(r.value)} | {format_interval(r.interval)} | "
            f"{format_number(r.baseline)} | {format_interval(r.baseline_interval)} | {format_number(r.delta, True)} | "
            f"{format_interval(r.delta_interval)} | {format_number(r.chance)} |"
        )
    lines.append("")
    headline = [r for r in rows if (found := headline_metric({r.metric: r.value})) and found[0] == r.metric]
    for r in headline:
        if r.apart:
            verdict = "better" if r.delta > 0 else "worse"
            lines.append(
                f"- {r.task} {r.protocol}: {label} is {verdict} than random init by {abs(r.delta):.3f} {r.metric} "
                f"(paired interval {format_interval(r.delta_interval)} excludes 0; {r.n_test} test samples)."
            )
        else:
            lines.append(
                f"- {r.task} {r.protocol}: no difference shown between {label} and random init "
                f"({r.delta:+.3f} {r.metric}, paired interval {format_interval(r.delta_interval)} includes 0; "
                f"{r.n_test} test samples)."
            )
    return "\n".join(lines) + "\n"


def describe_twin(checkpoint: Path, seed: int, verified: bool) -> str:
    """One line saying what the untrained reference is."""
    if verified:
        return f"random init: the initial weights of the run of {checkpoint} (seed {seed}, checked digest by digest)"
    return (
        f"random init: the configuration, bands and statistics of {checkpoint} with the initial weights "
        f"salibi pretrain draws for seed {seed} (the run recorded no initial weights to check them against)"
    )


def random_init_reference(checkpoint: Path, model: Any) -> tuple[Any, str]:
    """The untrained twin of a loaded ``model`` (from checkpoint folder ``checkpoint``) and one line
    describing it: its run's seed (0 outside a run), checked against the run's record when it has one."""
    seed = run_seed(checkpoint)
    twin = untrained_twin(model, 0 if seed is None else seed)
    record = run_initial_weights(checkpoint)
    if record is not None:
        check_twin(twin, record, str(checkpoint))
    return twin, describe_twin(checkpoint, 0 if seed is None else seed, record is not None)


def baseline_label(checkpoint: Path) -> str:
    """What the untrained model's results document names as its checkpoint."""
    return f"{checkpoint} ({RANDOM_INIT})"


def baseline_output(output: Path) -> Path:
    """Where ``--baseline random-init`` writes the untrained model's results beside ``output``."""
    return output.with_name(f"{output.stem}.{RANDOM_INIT}{output.suffix}")


def evaluate_random_init(
    checkpoint: str | os.PathLike[str],
    settings: GeoBenchSettings,
    output: str | os.PathLike[str],
    overwrite: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[dict[str, Any], str]:
    """``salibi eval geobench --baseline random-init``: the untrained twin of ``checkpoint`` through
    :func:`~salibi.eval.evaluate.evaluate_geobench` with the checkpoint's ``settings`` (its features
    are not saved), its results written (and resumed) at :func:`baseline_output` of ``output``.
    Returns the results and the line describing the twin."""
    from salibi.eval.evaluate import evaluate_geobench
    from salibi.eval.output.files import open_output
    from salibi.eval.output.results import write_results
    from salibi.models import load_checkpoint, resolve_checkpoint

    resolved = resolve_checkpoint(checkpoint)
    twin, description = random_init_reference(resolved, load_checkpoint(resolved, attention=settings.attention))
    paths, previous = open_output(baseline_output(Path(output)), overwrite)

    def save(document: dict[str, Any]) -> None:
        write_results(document, paths.results)

    untrained = dataclasses.replace(settings, save_features=None)
    results = evaluate_geobench(
        baseline_label(resolved), untrained, model=twin, previous=previous, on_update=save, log=log
    )
    write_results(results, paths.results)
    return results, description
