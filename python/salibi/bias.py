"""Scale-ALiBi geometry: patch grids on the ground and the attention-bias tables between them.

For query patch ``a`` and key patch ``b`` (same or different chips, any GSDs), head ``h`` adds

    bias_h(a, b) = -m_h * ||centre_a - centre_b||_2 / L

to the attention logit, where ``m_h`` are the ALiBi slopes of Press et al. and ``L`` defaults
to the larger patch footprint ``patch_px * gsd`` of the two grids. Tables are built by the
Rust core in parallel, cached per geometry (bounded LRU) and returned as read-only numpy
arrays that share the cached memory.
"""

from __future__ import annotations

import re
from pathlib import Path

from salibi._core import (
    PatchGrid,
    alibi_slopes,
    cache_clear,
    cache_info,
    ground_distance_table,
    masked_distance_table,
    masked_scale_alibi_bias,
    scale_alibi_bias,
)
from salibi.errors import InputError, OutputError
from salibi.fileio import staging_file

__all__ = [
    "PatchGrid",
    "alibi_slopes",
    "cache_clear",
    "cache_info",
    "ground_distance_table",
    "masked_distance_table",
    "masked_scale_alibi_bias",
    "scale_alibi_bias",
    "parse_grid",
    "render_bias_png",
]

_GRID_SPEC = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*@\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


def parse_grid(spec: str, patch_px: int = 16, origin: tuple[float, float] = (0.0, 0.0)) -> PatchGrid:
    """A grid from ``"ROWSxCOLS@GSD"`` (patches, metres per pixel), e.g. ``"16x16@10"``."""
    match = _GRID_SPEC.match(spec)
    if not match:
        raise InputError(f"grid {spec!r}: expected ROWSxCOLS@GSD in patches and metres per pixel, e.g. 16x16@10")
    rows, cols, gsd = int(match[1]), int(match[2]), float(match[3])
    try:
        return PatchGrid(rows, cols, patch_px, gsd, origin)
    except ValueError as err:
        raise InputError(f"grid {spec!r}: {err}") from None


def render_bias_png(
    query: PatchGrid,
    key: PatchGrid,
    path: str | Path,
    heads: int = 8,
    head: int = 0,
    query_patch: int | None = None,
) -> Path:
    """Draw the bias of one head as a PNG, after Figure 2 of the Scale-ALiBi paper.

    Left: the whole (query x key) table. Right: the bias one query patch (default: the centre
    one) gives every key patch, laid out on the key grid in ground coordinates, with the query
    patch's footprint outlined. Written through :func:`salibi.fileio.staging_file`.
    """
    if not 0 <= head < heads:
        raise InputError(f"--head {head}: must be between 0 and {heads - 1} for {heads} heads")
    n_query = query.num_patches
    if query_patch is None:
        query_patch = (query.rows // 2) * query.cols + query.cols // 2
    if not 0 <= query_patch < n_query:
        raise InputError(f"query patch {query_patch}: must be between 0 and {n_query - 1}")
    try:  # before matplotlib: a table too large fails at once
        table = scale_alibi_bias(query, key, heads)[head]
    except (ValueError, MemoryError) as err:
        raise InputError(
            f"{query.rows}x{query.cols} query patches against {key.rows}x{key.cols} key patches: {err}"
        ) from None

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    slope = float(alibi_slopes(heads)[head])
    fig, (ax_table, ax_ground) = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)

    image = ax_table.imshow(table, cmap="viridis", aspect="auto", interpolation="nearest")
    ax_table.set_xlabel(f"key patch (row-major), {key.rows}x{key.cols} @ {key.gsd:g} m")
    ax_table.set_ylabel(f"query patch (row-major), {query.rows}x{query.cols} @ {query.gsd:g} m")
    ax_table.set_title(f"Scale-ALiBi bias, head {head} of {heads} (slope {slope:.4g})")
    fig.colorbar(image, ax=ax_table, label="bias added to the attention logit")

    x0, y0 = key.origin
    extent = (x0, x0 + key.cols * key.footprint, y0 - key.rows * key.footprint, y0)
    ground = table[query_patch].reshape(key.rows, key.cols)
    image = ax_ground.imshow(ground, cmap="viridis", extent=extent, interpolation="nearest")
    qr, qc = divmod(query_patch, query.cols)
    qx = query.origin[0] + qc * query.footprint
    qy = query.origin[1] - (qr + 1) * query.footprint
    ax_ground.add_patch(Rectangle((qx, qy), query.footprint, query.footprint, fill=False, ec="red", lw=1.5))
    ax_ground.set_xlabel("x (m)")
    ax_ground.set_ylabel("y (m)")
    ax_ground.set_title(f"bias from query patch {query_patch} (red) to each key patch")
    fig.colorbar(image, ax=ax_ground, label="bias")

    path = Path(path)
    try:
        with staging_file(path) as staging:  # a temporary name, flushed and renamed: never half a PNG
            fig.savefig(staging, dpi=110, format="png")
    except OSError as err:
        raise OutputError(f"{path}: could not be written ({err.strerror or err}); choose another output path") from None
    finally:
        plt.close(fig)
    return path
