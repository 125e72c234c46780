"""Absurd sizes given to the Rust core (salibi._core) are a ValueError when no memory could hold
them (a size that overflows 64 bits or the largest possible allocation) and a MemoryError when
the machine refuses the allocation -- never an abort, a panic or a size that wraps round to a
small one. Each call fails before any work is done, and the interpreter goes on: every test
builds a small table afterwards.

The MemoryError cases ask for 2**49 bytes or more, beyond the 47-bit user address space of
x86-64 and the 48-bit one of arm64, so no overcommit setting can grant them.
"""

from __future__ import annotations

import numpy as np
import pytest

from salibi import _core, bias
from salibi.bias import PatchGrid
from salibi.errors import InputError

SMALL = PatchGrid(2, 2, 16, 1.0)
INDEX = np.zeros((1, 1), dtype=np.int64)


def square(patches: int) -> PatchGrid:
    return PatchGrid(patches, patches, 16, 1.0)


def one_pixel_source() -> tuple[list[np.ndarray], list[tuple[float, float, float, float]], np.ndarray]:
    return [np.ones((1, 2, 2), np.float32)], [(0.0, 2.0, 1.0, 1.0)], np.array([[0.0, 2.0]])


CASES = {
    # 2**40 x 2**40 patches: the count itself overflows 64 bits (it wrapped to 0 patches).
    "patch grid of 2**40 x 2**40": (lambda: PatchGrid(2**40, 2**40, 16, 1.0), ValueError, "rows"),
    "grid spec of 2**40 x 2**40": (lambda: bias.parse_grid(f"{2**40}x{2**40}@10"), InputError, "grid"),
    # 2**48 x 2**48 values: the product overflows.
    "distance table of 2**48 x 2**48": (
        lambda: bias.ground_distance_table(square(2**24), square(2**24)),
        ValueError,
        "query, key",
    ),
    # 2**24 x 2**24 float32 = 2**50 bytes: representable, never allocatable (it aborted).
    "distance table of 2**50 bytes": (
        lambda: bias.ground_distance_table(square(2**12), square(2**12)),
        MemoryError,
        "query, key",
    ),
    "bias of 2**62 heads": (lambda: bias.scale_alibi_bias(SMALL, SMALL, 2**62), ValueError, "heads"),
    "slopes of 2**48 heads": (lambda: bias.alibi_slopes(2**48), MemoryError, "heads"),
    "masked bias of 2**48 heads": (
        lambda: bias.masked_scale_alibi_bias(SMALL, SMALL, 2**48, INDEX, INDEX),
        MemoryError,
        "heads",
    ),
    "centres of 2**46 patches": (lambda: square(2**23).centres(), MemoryError, "centres"),
    # 1e303 x 1e303 chips: more than a 64-bit count (it saturated to 2**64 - 1 a side, len 1).
    "tile grid of 1e303 x 1e303 chips": (
        lambda: _core.plan_tile_grid((0.0, 0.0, 1e300, 1e300), 1e-3, [("a", 1e-3)]),
        ValueError,
        "tile_size_m",
    ),
    # 2**22 x 2**22 chips: a valid grid whose 2**44 bounds (2**49 bytes) cannot be allocated.
    "bounds of 2**44 chips": (
        lambda: _core.plan_tile_grid((0.0, 0.0, 2.0**22, 2.0**22), 1.0, [("a", 1.0)]).bounds(),
        MemoryError,
        "bounds",
    ),
    # 2**32 x 2**32 pixels a chip: overflows (it wrapped to 0 and failed as an internal error).
    "chips of 2**32 px": (lambda: _core.resample_chips(*one_pixel_source(), 1.0, 2**32), ValueError, "size_px"),
    # One chip of 2**24 x 2**24 float32 pixels = 2**50 bytes (it aborted).
    "chips of 2**24 px": (lambda: _core.resample_chips(*one_pixel_source(), 1.0, 2**24), MemoryError, "origins"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_absurd_size_is_an_error_and_the_core_goes_on(case):
    call, exception, argument = CASES[case]
    with pytest.raises(exception, match=f"^{argument}") as raised:
        call()
    assert type(raised.value) is exception  # not a subclass: no PanicException, no RuntimeError
    np.testing.assert_array_equal(bias.ground_distance_table(SMALL, SMALL).shape, (4, 4))


def test_bias_png_of_absurd_grids_is_an_input_error_naming_them(tmp_path):
    grid = square(2**12)
    with pytest.raises(
        InputError,
        match=r"^4096x4096 query patches against 4096x4096 key patches: heads, query, key: .*use smaller sizes",
    ):
        bias.render_bias_png(grid, grid, tmp_path / "bias.png")
    assert list(tmp_path.iterdir()) == []
