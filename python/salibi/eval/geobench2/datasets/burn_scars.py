"""HLS Burn Scars (``GeoBenchBurnScars``): its mask marks no data as -1.

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

import numpy as np

from salibi.eval.geobench2.conventions import (
    HLS_BANDS,
    Convention,
    Label,
    Source,
    sentinel2_bands,
    tortilla_files,
)

__all__ = ["CONVENTION"]


def burn_scars_mask(mask: np.ndarray) -> np.ndarray:
    """``-1`` (no data) becomes 2, outside the two classes, hence ignored."""
    out = mask.astype(np.int64)
    out[out == -1] = 2
    return out


CONVENTION = Convention(
    "burn_scars",
    "GeoBenchBurnScars",
    tortilla_files("burn_scars"),
    Label("segmentation", ("Background", "Burn Scar"), item=1, remap=burn_scars_mask),
    (Source("hls", "hls", 0, sentinel2_bands(*HLS_BANDS), 30.0),),
)
