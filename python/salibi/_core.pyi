"""Type stub for the Rust extension ``salibi._core`` (hand-written; checked by mypy.stubtest)."""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "__version__",
    "PatchGrid",
    "TableOwner",
    "TileGrid",
    "alibi_slopes",
    "build_info",
    "cache_clear",
    "cache_info",
    "ground_distance_table",
    "masked_distance_table",
    "masked_scale_alibi_bias",
    "plan_tile_grid",
    "resample_chips",
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

@final
class TileGrid:
    """Square chips over the common footprint of aligned rasters; chip ``i`` is row-major."""

    @property
    def left(self) -> float: ...
    @property
    def top(self) -> float: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def tile_size(self) -> float: ...
    @property
    def unit(self) -> float: ...
    def __len__(self) -> int: ...
    def bounds(self) -> npt.NDArray[np.float64]: ...
    def extent(self) -> tuple[float, float, float, float]: ...

def plan_tile_grid(
    footprint: tuple[float, float, float, float],
    tile_size_m: float,
    gsds: list[tuple[str, float]],
    anchor: tuple[float, float] = ...,
) -> TileGrid: ...
def resample_chips(
    sources: list[npt.NDArray[np.float32]],
    transforms: list[tuple[float, float, float, float]],
    origins: npt.NDArray[np.float64],
    gsd: float,
    size_px: int,
    nodata: list[float | None] | None = None,
    zero_fill: list[bool] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]: ...
