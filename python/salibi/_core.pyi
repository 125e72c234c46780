"""Type stub for the Rust extension ``salibi._core`` (hand-written; checked by mypy.stubtest)."""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "PatchGrid",
    "TableOwner",
    "alibi_slopes",
    "build_info",
    "cache_clear",
    "cache_info",
    "ground_distance_table",
    "masked_distance_table",
    "masked_scale_alibi_bias",
    "scale_alibi_bias",
]

@final
class PatchGrid:
    """A chip cut into square patches, placed on the ground (origin = top-left corner, metres)."""

    def __new__(
        cls, rows: int, cols: int, patch_px: int, gsd: float, origin: tuple[float, float] = ...
    ) -> PatchGrid: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def patch_px(self) -> int: ...
    @property
    def gsd(self) -> float: ...
    @property
    def origin(self) -> tuple[float, float]: ...
    @property
    def num_patches(self) -> int: ...
    @property
    def footprint(self) -> float: ...
    def centres(self) -> npt.NDArray[np.float64]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[int, int, int, float, tuple[float, float]]]: ...

@final
class TableOwner:
    """Keeps a cached table alive while numpy arrays view it (not constructible from Python)."""

def alibi_slopes(heads: int) -> npt.NDArray[np.float32]: ...
def ground_distance_table(
    query: PatchGrid, key: PatchGrid, ref_length: float | None = None
) -> npt.NDArray[np.float32]: ...
def scale_alibi_bias(
    query: PatchGrid, key: PatchGrid, heads: int, ref_length: float | None = None
) -> npt.NDArray[np.float32]: ...
def masked_distance_table(
    query: PatchGrid,
    key: PatchGrid,
    query_idx: npt.NDArray[np.integer[Any]],
    key_idx: npt.NDArray[np.integer[Any]],
    ref_length: float | None = None,
) -> npt.NDArray[np.float32]: ...
def masked_scale_alibi_bias(
    query: PatchGrid,
    key: PatchGrid,
    heads: int,
    query_idx: npt.NDArray[np.integer[Any]],
    key_idx: npt.NDArray[np.integer[Any]],
    ref_length: float | None = None,
) -> npt.NDArray[np.float32]: ...
def cache_info() -> dict[str, int]: ...
def cache_clear(max_bytes: int | None = None) -> None: ...
def build_info() -> dict[str, str | int]: ...
