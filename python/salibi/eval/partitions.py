"""Which training samples each requested partition of a task uses.

A GEO-Bench task's partition ``P`` takes its train split from ``P_partition.json`` and its
validation and test splits from the default partition. Features are extracted once, for the
union of the requested train splits (the largest partition's; the smaller ones are subsets of
it), and each partition is a set of rows of that union. ``--partitions all`` is every
train-size partition the task has; a task with none of them (GEO-Bench-2) is one point, its
whole train split, as the largest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.errors import InputError
from salibi.eval.geobench.tasks import Task
from salibi.eval.output import results as R
from salibi.eval.protocols import registry as P
from salibi.vocabulary import TRAIN_SIZE_PARTITIONS

__all__ = ["TaskPlan", "parse_list", "plan_task", "resolve_partitions", "subset"]


def parse_list(value: str | Iterable[str] | None) -> list[str]:
    """The names of a comma-separated option (or a list of them), stripped, empty ones dropped."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def resolve_partitions(partition: str, partitions: str | Iterable[str] | None) -> list[str]:
    """The partitions to evaluate: ``partitions`` (``all`` = every train-size partition) or the one ``partition``."""
    wanted = parse_list(partitions)
    if not wanted:
        return [partition]
    if wanted == ["all"]:
        return list(TRAIN_SIZE_PARTITIONS)
    if "all" in wanted:
        raise InputError(f"--partitions {','.join(wanted)}: give 'all' alone or a list of partition names")
    return list(dict.fromkeys(wanted))


class _Rows:
    """Rows ``rows`` of a (possibly memory-mapped) array, indexed lazily by the heads."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])
        self.ndim = array.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, pick: Any) -> np.ndarray:
        return np.asarray(self.array[self.rows[pick]])


def subset(array: np.ndarray | None, rows: np.ndarray) -> Any:
    if array is None or (len(rows) == len(array) and np.array_equal(rows, np.arange(len(array)))):
        return array
    if isinstance(array, np.memmap) or array.ndim > 2:
        return _Rows(array, rows)
    return array[rows]


@dataclass
class TaskPlan:
    splits: dict[str, list[str]]  # train (union over partitions), valid, test
    partition_rows: dict[str, np.ndarray]  # partition -> rows of the train union
    pending: list[tuple[str, str, int]]  # (partition, protocol, seed)


def plan_task(
    task: Task,
    partitions: list[str],
    protocols: Sequence[str],
    seeds: int,
    finished: dict[R.RunKey, dict[str, Any]],
    settings: P.ProtocolSettings,
    all_partitions: bool,
) -> TaskPlan:
    default = task.partition("default")
    train: dict[str, None] = {}
    rows: dict[str, list[str]] = {}
    available = set(task.partitions())
    source = {name: name for name in partitions}
    if all_partitions and not available.intersection(partitions):
        # No train-size partitions (GEO-Bench-2): the curve is one point, the whole train split.
        source = {partitions[-1]: "default"}
    for name in partitions:
        if name not in source or (all_partitions and source[name] not in available and name != "default"):
            continue  # --partitions all: the train-size partitions this task has
        names = task.partition(source[name])["train"]
        if not names:
            raise InputError(f"task {task.name}: partition {name!r} has an empty train split")
        rows[name] = names
        train.update(dict.fromkeys(names))
    if not rows:
        raise InputError(f"task {task.name} has none of the partitions {', '.join(partitions)}")
    if not default["test"]:
        raise InputError(f"task {task.name}: the default partition has an empty test split")
    union = list(train)
    position = {n: i for i, n in enumerate(union)}
    pending = []
    for name in rows:
        for protocol in protocols:
            for seed in [0] if protocol in P.DETERMINISTIC else range(seeds):
                done = finished.get((task.name, protocol, name, seed))
                if done is None or done.get("parameters") != settings.parameters(protocol):
                    pending.append((name, protocol, seed))
    return TaskPlan(
        {"train": union, "valid": default["valid"], "test": default["test"]},
        {name: np.array([position[n] for n in names], dtype=np.int64) for name, names in rows.items()},
        pending,
    )
