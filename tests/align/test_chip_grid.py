"""The one chip grid of salibi (align's chips, embed's scene chips): the core's grid, with a stride."""

from __future__ import annotations

import numpy as np
import pytest

from salibi import _core
from salibi.align.grid import plan_chip_grid
from salibi.errors import InputError

FOOTPRINT = (694414.3, 4217327.3, 698570.7, 4222528.8)


@pytest.mark.parametrize("anchor", [(0.0, 0.0), (694411.7, 4222531.1)])
def test_side_by_side_chips_are_the_cores_grid_bit_for_bit(anchor):
    core = _core.plan_tile_grid(FOOTPRINT, 320.0, [("sar", 10.0), ("lores", 10.0)], anchor)
    grid = plan_chip_grid(FOOTPRINT, 320.0, [("sar", 10.0), ("lores", 10.0)], anchor)
    assert (grid.rows, grid.cols, grid.left, grid.top) == (core.rows, core.cols, core.left, core.top)
    np.testing.assert_array_equal(grid.bounds(), core.bounds())
    assert grid.extent() == core.extent() and len(grid) == len(core)


def test_a_stride_overlaps_chips_on_the_same_lattice_inside_the_footprint():
    grid = plan_chip_grid(FOOTPRINT, 320.0, [("scene", 10.0)], (694411.7, 4222531.1), stride_m=160.0)
    side = plan_chip_grid(FOOTPRINT, 320.0, [("scene", 10.0)], (694411.7, 4222531.1))
    bounds = grid.bounds()
    assert (grid.left, grid.top) == (side.left, side.top)
    assert (grid.rows, grid.cols) == (31, 24)  # 2 * 16 - 1 rows; 24 columns as 4148.9 m leave room for one more
    assert grid.cols >= 2 * side.cols - 1 and grid.rows >= 2 * side.rows - 1
    np.testing.assert_allclose(bounds[:, 2] - bounds[:, 0], 320.0)
    np.testing.assert_allclose(np.diff(bounds[: grid.cols, 0]), 160.0)
    assert bounds[:, 0].min() >= FOOTPRINT[0] and bounds[:, 2].max() <= FOOTPRINT[2]
    assert bounds[:, 1].min() >= FOOTPRINT[1] and bounds[:, 3].max() <= FOOTPRINT[3]
    # one more step would leave the footprint
    assert bounds[:, 2].max() + 160.0 > FOOTPRINT[2] and bounds[:, 1].min() - 160.0 < FOOTPRINT[1]
    # corners on the anchor's pixel lattice: whole pixels from it
    offsets = (bounds[:, 0] - 694411.7) / 10.0
    np.testing.assert_allclose(offsets, np.round(offsets), atol=1e-6)


@pytest.mark.parametrize(
    "chip, stride, words",
    [
        (325.0, None, "--chip-size-m 325 m is not a whole number of scene pixels"),
        (320.0, 165.0, "--stride-m 165 m is not a whole number of scene pixels"),
        (320.0, 480.0, "--stride-m 480: must be above 0 and at most the chip size"),
        (32000.0, None, "smaller than one 32000 m chip; use a chip size of at most 4150 m"),
    ],
)
def test_errors_name_the_option(chip, stride, words):
    with pytest.raises(InputError, match=words):
        plan_chip_grid(FOOTPRINT, chip, [("scene", 10.0)], (0.0, 0.0), stride_m=stride)
