"""FLAIR #2 (``GeoBenchFLAIR2``): aerial RGBN with elevation, its 19 classes folded to 13.

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

import numpy as np

from salibi.eval.geobench2.conventions import (
    Band,
    Convention,
    Label,
    Source,
    colour_bands,
    tortilla_files,
)

__all__ = ["CONVENTION"]


def flair2_mask(mask: np.ndarray) -> np.ndarray:
    """Values above 13 become 13 ("other"), then everything minus 1: classes 0 .. 12."""
    out = np.minimum(mask.astype(np.int64), 13)
    return out - 1


CONVENTION = Convention(
    "flair2",
    "GeoBenchFLAIR2",
    tortilla_files("flair2"),
    Label(
        "segmentation",
        (
            "building",
            "previous surface",
            "impervious surface",
            "bare soil",
            "water",
            "coniferous",
            "deciduous",
            "brushwood",
            "vineyard",
            "herbaceous vegetation",
            "agricultural land",
            "plowed land",
            "other",
        ),  # fmt: skip
        item=1,
        remap=flair2_mask,
    ),
    (
        Source(
            "aerial",
            "aerial",
            0,
            (*colour_bands("red", "green", "blue", "nir"), Band("elevation", "ElevationBand")),
            0.2,
        ),
    ),
    unused={"elevation": "the fifth band of the aerial item; no salibi encoder takes elevation"},
)
