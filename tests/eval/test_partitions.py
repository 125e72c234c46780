"""salibi.eval.partitions: which partitions run, and the rows of each within the train union."""

from __future__ import annotations

import numpy as np
import pytest

from salibi.errors import InputError
from salibi.eval.geobench.tasks import open_task
from salibi.eval.partitions import plan_task, resolve_partitions, subset
from salibi.eval.protocols.registry import ProtocolSettings
from salibi.vocabulary import TRAIN_SIZE_PARTITIONS


def test_resolve_partitions():
    assert resolve_partitions("0.10x_train", None) == ["0.10x_train"]
    assert resolve_partitions("default", "all") == list(TRAIN_SIZE_PARTITIONS)
    assert resolve_partitions("default", " 0.50x_train, ,default,0.50x_train") == ["0.50x_train", "default"]
    with pytest.raises(InputError, match="give 'all' alone"):
        resolve_partitions("default", "all,default")


def test_smaller_partitions_are_rows_of_the_largest_train_split(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-s2")
    plan = plan_task(task, ["0.50x_train", "1.00x_train"], ["knn"], 1, {}, ProtocolSettings(), False)
    train = task.partition("1.00x_train")["train"]
    assert plan.splits["train"] == train and plan.splits["test"] == task.partition()["test"]
    half = plan.partition_rows["0.50x_train"]
    assert [plan.splits["train"][i] for i in half] == task.partition("0.50x_train")["train"]
    assert sorted(plan.pending) == [("0.50x_train", "knn", 0), ("1.00x_train", "knn", 0)]
    assert subset(np.arange(len(train)) * 10, half).tolist() == [i * 10 for i in half]


def test_all_keeps_the_partitions_a_task_has(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-s2")  # has 0.50x_train and 1.00x_train only
    plan = plan_task(task, list(TRAIN_SIZE_PARTITIONS), ["knn"], 1, {}, ProtocolSettings(), True)
    assert sorted(plan.partition_rows) == ["0.50x_train", "1.00x_train"]
