"""Kuro Siwo (``GeoBenchKuroSiwo``): post-event Sentinel-1 flood maps, its classes reordered.

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

import numpy as np

from salibi.eval.geobench2.conventions import (
    Convention,
    Label,
    Source,
    sentinel1_bands,
    tortilla_files,
)

__all__ = ["CONVENTION"]


def kuro_siwo_mask(mask: np.ndarray) -> np.ndarray:
    """0 no water -> 1, 1 permanent water -> 2, 2 flood -> 3, 3 no data -> 0 (others: 0)."""
    source = mask.astype(np.int64)
    out = np.zeros_like(source)
    for original, new in {0: 1, 1: 2, 2: 3, 3: 0}.items():
        out[source == original] = new
    return out


CONVENTION = Convention(
    "kuro_siwo",
    "GeoBenchKuroSiwo",
    tortilla_files("kuro_siwo"),
    Label("segmentation", ("No Data", "No Water", "Permanent Water", "Flood"), item=4, remap=kuro_siwo_mask),
    (
        Source(
            "post",
            "sentinel1",
            2,
            sentinel1_bands("VV", "VH"),
            10.0,
            gsd_from_georeference=False,
            valid_item=5,
        ),
    ),
    unused={
        "pre_1, pre_2": "the two pre-event images; salibi encodes one image per modality (the post-event one)",
        "dem": "no salibi encoder takes elevation",
    },
)
