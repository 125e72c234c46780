"""Which benchmark a root holds, its tasks, and how a task's inputs are chosen: the one place
``salibi eval geobench`` tells GEO-Bench (v1, HDF5 task folders) from GEO-Bench-2 (tortillas).

- ``geobench``: :func:`salibi.eval.geobench.tasks.discover_tasks`; inputs by band matching
  (:func:`salibi.eval.band_matching.map_task_bands`: one optical modality, plus SAR, features concatenated).
- ``geobench2``: :func:`salibi.eval.geobench2.reader.discover_datasets`; inputs by sensor routing
  (:func:`salibi.eval.geobench2.modality_routing.route_inputs`: every matching encoder, joint features),
  recorded per task as ``inputs[TASK]``; datasets salibi does not evaluate are listed as skipped.
- ``auto``: GEO-Bench-2 when the root (or a folder in it) holds ``.tortilla`` files, else GEO-Bench.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salibi.errors import InputError
from salibi.eval.band_matching import TaskInputs, map_task_bands
from salibi.vocabulary import BENCHMARKS

__all__ = ["BENCHMARKS", "Benchmark", "open_benchmark"]


@dataclass
class Benchmark:
    """The tasks found under a root (name -> task object) and those skipped there (name -> reason)."""

    name: str
    tasks: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)

    def inputs(
        self,
        task: Any,
        bands: Mapping[str, Sequence[str]],
        gsd: Mapping[str, float | None],
        features: str = "auto",
    ) -> tuple[Any, TaskInputs, dict[str, Any] | None]:
        """``(task, inputs, record)``: the task narrowed to what it reads, the encoders it feeds,
        and what ``inputs[TASK]`` records (None for GEO-Bench, whose runs name their bands)."""
        if self.name == "geobench2":
            from salibi.eval.geobench2.modality_routing import route_inputs

            routed = route_inputs(task, bands, gsd, features)
            narrowed = task.with_sources(routed.sources.values()) if routed.modalities else task
            return narrowed, routed, routed.record
        return task, map_task_bands(task.specs, bands, gsd, task_name=task.name), None


def open_benchmark(root: Path, benchmark: str = "auto", features: str = "auto") -> Benchmark:
    """The benchmark under ``root`` (see the module docstring)."""
    if benchmark not in BENCHMARKS:
        raise InputError(f"--benchmark {benchmark}: choose among {', '.join(BENCHMARKS)}")
    if benchmark == "auto":
        from salibi.eval.geobench2.reader import is_geobench2_root

        benchmark = "geobench2" if is_geobench2_root(root) else "geobench"
    if benchmark == "geobench2":
        from salibi.eval.geobench2.modality_routing import FEATURES
        from salibi.eval.geobench2.reader import discover_datasets

        if features not in FEATURES:
            raise InputError(f"--features {features}: choose among {', '.join(FEATURES)}")
        tasks, skipped = discover_datasets(root)
        return Benchmark("geobench2", dict(tasks), skipped)
    if features != "auto":
        raise InputError(
            f"--features {features} applies to GEO-Bench-2 roots; GEO-Bench (v1) tasks feed one optical "
            "encoder plus SAR, features concatenated"
        )
    from salibi.eval.geobench.tasks import Task, discover_tasks

    return Benchmark("geobench", {name: Task(path) for name, path in discover_tasks(root).items()})
