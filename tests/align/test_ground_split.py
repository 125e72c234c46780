"""The split of several chip grids over one ground (the groups of a fetch folder): the same place is
never in training and validation, whichever grids it appears in (each group had its own split, so a
place seen at two times could be a training chip in one and a validation chip in the other)."""

from __future__ import annotations

import numpy as np

from salibi.align.grid import ChipGrid
from salibi.align.split import BUFFER, TRAIN, VAL, GroundSplit


def _grid(left: float, top: float, rows: int, cols: int) -> ChipGrid:
    return ChipGrid(left, top, rows, cols, 100.0, 100.0, 10.0)


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether boxes a and b (min_x, min_y, max_x, max_y) neither overlap nor touch."""
    return bool(a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def test_no_training_chip_of_any_grid_touches_a_validation_chip_of_any_other():
    grids = [_grid(0, 3000, 30, 30), _grid(1050, 2050, 20, 20), _grid(0, 3000, 30, 30)]  # overlapping; one twice
    split = GroundSplit(grids, val_fraction=0.2, seed=3)
    labels = [split.labels(g) for g in grids]
    boxes = [g.bounds() for g in grids]
    val = np.concatenate([b[lab == VAL] for b, lab in zip(boxes, labels)])
    train = np.concatenate([b[lab == TRAIN] for b, lab in zip(boxes, labels)])
    assert len(val) and len(train)
    for v in val:
        assert all(_apart(v, t) for t in train)
    np.testing.assert_array_equal(labels[0], labels[2])  # the same ground, the same labels
    # About the share asked for, and buffer only where validation is near.
    total = sum(len(g) for g in grids)
    assert 0.1 < len(val) / total < 0.3
    assert (np.concatenate(labels) == BUFFER).sum() < total / 2


def test_no_validation_without_a_fraction():
    grids = [_grid(0, 1000, 5, 5)]
    assert (GroundSplit(grids, val_fraction=0.0, seed=0).labels(grids[0]) == TRAIN).all()
