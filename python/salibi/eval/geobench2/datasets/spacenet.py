"""SpaceNet 2 and 7 (``GeoBenchSpaceNet2``, ``GeoBenchSpaceNet7``): building masks shifted by one.

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

__all__ = ["CONVENTIONS"]


def plus_one(mask: np.ndarray) -> np.ndarray:
    """``mask + 1`` (SpaceNet 2/7: 0 stays unused, 1 no-building, 2 building)."""
    return mask.astype(np.int64) + 1


_BUILDINGS = ("background", "no-building", "building")
_WORLDVIEW = (
    Band("coastal", "SpectralBand", 0.44),
    Band("blue", "SpectralBand", 0.48),
    Band("green", "SpectralBand", 0.56),
    Band("yellow", "SpectralBand", 0.59),
    Band("red", "SpectralBand", 0.66),
    Band("red_edge", "SpectralBand", 0.73),
    Band("nir1", "SpectralBand", 0.84, ("nir",)),
    Band("nir2", "SpectralBand", 0.91),
)

CONVENTIONS = (
    Convention(
        "spacenet2",
        "GeoBenchSpaceNet2",
        tortilla_files("spacenet2"),
        Label("segmentation", _BUILDINGS, item=2, remap=plus_one),
        (
            Source("worldview", "worldview", 0, _WORLDVIEW, 0.3),
            Source("pan", "worldview", 1, (Band("pan", "SpectralBand", 0.54),), 0.3),
        ),
        unused={"instance_mask": "instance segmentation target"},
    ),
    Convention(
        "spacenet7",
        "GeoBenchSpaceNet7",
        tortilla_files("spacenet7"),
        Label("segmentation", _BUILDINGS, item=1, remap=plus_one),
        # The reader's default band order stops at blue: a fourth band, when present, is not read.
        (Source("planet", "planet", 0, colour_bands("red", "green", "blue"), 4.0, gsd_from_georeference=False),),
    ),
)
