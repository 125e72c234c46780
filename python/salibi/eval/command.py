"""``salibi eval geobench`` as calls, with the files it writes and the tables it prints.

- :func:`evaluate_to_files`: the evaluation, resumed from and written to ``--output`` (results
  JSON, torchgeo-bench's CSV, charts: :func:`~salibi.eval.output.files.write_outputs`), and its tables;
- :func:`add_random_init`: ``--baseline random-init``, the untrained twin through the same
  evaluation (:mod:`salibi.eval.baseline`) and the table comparing both.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salibi.eval.baseline import baseline_output, comparison_rows, comparison_table, evaluate_random_init
from salibi.eval.evaluate import evaluate_geobench
from salibi.eval.output.files import open_output, write_outputs
from salibi.eval.output.report import markdown_table, partition_table
from salibi.eval.output.results import write_results
from salibi.eval.settings import GeoBenchSettings

__all__ = ["EvaluationFiles", "add_random_init", "evaluate_to_files"]

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class EvaluationFiles:
    """One evaluation written to its files."""

    output: Path  # the results JSON (``--output``)
    results: dict[str, Any]
    written: list[Path]  # every file written, the results first
    report: str  # what the command prints: the results table (and the data-efficiency table)

    @property
    def failed(self) -> dict[str, str]:
        """Task -> why it failed (with a baseline, its failures too, named ``TASK (random init)``)."""
        failed: dict[str, str] = self.results["failed"]
        return failed


def evaluate_to_files(
    checkpoint: str | os.PathLike[str],
    settings: GeoBenchSettings,
    output: str | os.PathLike[str],
    overwrite: bool = False,
    log: Log = _quiet,
) -> EvaluationFiles:
    """Evaluate ``checkpoint`` as ``settings`` say, resuming the results at ``output`` unless
    ``overwrite``; the results are written after every task, and with every file made from them
    at the end."""
    paths, previous = open_output(output, overwrite)
    if previous is not None:
        log(f"resuming {output}: {len(previous.get('runs', []))} finished runs are kept")

    def save(document: dict[str, Any]) -> None:
        write_results(document, paths.results)

    results = evaluate_geobench(checkpoint, settings, previous=previous, on_update=save, log=log)
    report = markdown_table(results)
    curve = partition_table(results)
    if curve:
        report += "\nData efficiency (train-size partitions):\n\n" + curve
    return EvaluationFiles(Path(output), results, write_outputs(results, paths), report)


def add_random_init(
    evaluation: EvaluationFiles,
    checkpoint: str | os.PathLike[str],
    settings: GeoBenchSettings,
    overwrite: bool = False,
    log: Log = _quiet,
) -> str:
    """Evaluate the untrained twin of ``checkpoint`` beside ``evaluation`` (same settings; its
    results in :func:`~salibi.eval.baseline.baseline_output`, added to ``evaluation.written``,
    its failures to ``evaluation.failed``); what the command prints for it: the line saying what
    the twin is and the table comparing both models, each difference with its paired interval."""
    untrained, description = evaluate_random_init(checkpoint, settings, evaluation.output, overwrite, log)
    table = comparison_table(comparison_rows(evaluation.results, untrained), label="checkpoint")
    evaluation.written.append(baseline_output(evaluation.output))
    evaluation.failed.update({f"{task} (random init)": why for task, why in untrained["failed"].items()})
    return f"\n{description}\n\n{table}"
