"""The alignment functions of salibi._core as Python sees them: values, errors, no copies."""

from __future__ import annotations

import numpy as np
import pytest

from salibi import _core


def test_plan_tile_grid_snaps_to_the_anchor():
    grid = _core.plan_tile_grid((3.0, -95.0, 100.0, 2.0), 20.0, [("hires", 5.0), ("lores", 10.0)], (0.5, 0.5))
    assert (grid.left, grid.top, grid.rows, grid.cols, grid.unit) == (10.5, 0.5, 4, 4, 10.0)
    assert len(grid) == 16 and grid.extent() == (10.5, -79.5, 90.5, 0.5)
    bounds = grid.bounds()
    assert bounds.shape == (16, 4) and bounds.dtype == np.float64
    np.testing.assert_array_equal(bounds[5], [30.5, -39.5, 50.5, -19.5])


@pytest.mark.parametrize(
    "args, message",
    [
        (((0, 0, 100, 100), 0.0, [("a", 1.0)]), "tile_size_m: must be a finite number > 0"),
        (((0, 0, 100, 100), 10.0, [("a", -1.0)]), "gsd of a: must be a finite number > 0"),
        (((0, 0, 100, 100), 10.0, [("lores", 3.0)]), "not a whole number of lores pixels"),
        (((0, 0, 5, 5), 10.0, [("a", 1.0)]), "smaller than one 10 m chip"),
        (((0, 0, -5, 5), 10.0, [("a", 1.0)]), "footprint: is empty"),
    ],
)
def test_plan_tile_grid_errors_name_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        _core.plan_tile_grid(*args)


def test_resample_chips_copies_averages_and_counts_invalid():
    source = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    source[1, 0, 0] = -1.0  # nodata
    origins = np.array([[0.0, 4.0], [2.0, 4.0]])
    chips, invalid = _core.resample_chips([source], [(0.0, 4.0, 1.0, 1.0)], origins, 1.0, 2, nodata=[-1.0])
    assert chips.shape == (2, 2, 2, 2) and chips.dtype == np.float32 and chips.flags.c_contiguous
    np.testing.assert_array_equal(chips[1], source[:, :2, 2:])
    assert np.isnan(chips[0, :, 0, 0]).all()  # invalid in one band -> invalid in every band
    np.testing.assert_array_equal(invalid, [0.25, 0.0])
    averaged, _ = _core.resample_chips([source], [(0.0, 4.0, 1.0, 1.0)], origins[1:], 2.0, 1)
    np.testing.assert_allclose(averaged[0, :, 0, 0], source[:, :2, 2:].mean(axis=(1, 2)))


def test_resample_chips_concatenates_sources_and_applies_zero_fill():
    a = np.ones((1, 2, 2), np.float32)
    b = np.zeros((2, 2, 2), np.float32)
    b[:, 0, 0] = 5.0
    chips, invalid = _core.resample_chips(
        [a, b], [(0, 2, 1, 1)] * 2, np.array([[0.0, 2.0]]), 1.0, 2, zero_fill=[False, True]
    )
    assert chips.shape == (1, 3, 2, 2) and invalid[0] == 0.75
    assert chips[0, 2, 0, 0] == 5.0 and np.isnan(chips[0, 0, 1, 1])


@pytest.mark.parametrize(
    "sources, transforms, origins, error, message",
    [
        ([np.ones((1, 2, 2))], [(0, 2, 1, 1)], [[0.0, 2.0]], TypeError, r"sources\[0\]: expected dtype float32"),
        ([np.ones((2, 2), np.float32)], [(0, 2, 1, 1)], [[0.0, 2.0]], ValueError, r"sources\[0\]: expected 3"),
        (["x"], [(0, 2, 1, 1)], [[0.0, 2.0]], TypeError, r"sources\[0\]: expected a numpy float32 array"),
        ([np.ones((1, 2, 4), np.float32)[:, :, ::2]], [(0, 2, 1, 1)], [[0.0, 2.0]], ValueError, "C-contiguous"),
        ([np.ones((1, 2, 2), np.float32)], [], [[0.0, 2.0]], ValueError, "transforms: has 0 entries for 1"),
        ([np.ones((1, 2, 2), np.float32)], [(0, 2, 0, 1)], [[0.0, 2.0]], ValueError, r"transforms\[0\]"),
        ([np.ones((1, 2, 2), np.float32)], [(0, 2, 1, 1)], [[0.0, 2.0, 1.0]], ValueError, "origins: expected shape"),
        ([np.ones((1, 0, 2), np.float32)], [(0, 2, 1, 1)], [[0.0, 2.0]], ValueError, "empty raster"),
    ],
)
def test_resample_chips_errors_name_the_argument(sources, transforms, origins, error, message):
    with pytest.raises(error, match=message):
        _core.resample_chips(sources, transforms, np.array(origins), 1.0, 2)
