"""The GEO-Bench-2 datasets salibi evaluates, each as the official reader (``geobenchv2`` 0.9) loads
it, and those it skips with the reason.

Every fact here comes from ``geobench_v2/datasets/<name>.py`` (item positions, band orders,
label columns and remaps, time steps), ``geobench_v2/datasets/sensor_util.py`` (band registries)
or ``geobench_v2/generate_benchmark/<name>.py`` (what the files hold); the vocabulary is in
:mod:`salibi.eval.geobench2.conventions`. Nominal GSDs are the datasets' published ones and are
used where a payload has no trustworthy georeference.

A dataset with a label remap of its own has its module (:mod:`.burn_scars`, :mod:`.flair2`,
:mod:`.kuro_siwo`, :mod:`.spacenet` for SpaceNet 2 and 7); the others are tables by task kind
(:mod:`.classification`, :mod:`.multilabel`, :mod:`.segmentation`).
"""

from __future__ import annotations

from salibi.eval.geobench2.conventions import Convention
from salibi.eval.geobench2.datasets import (
    burn_scars,
    classification,
    flair2,
    kuro_siwo,
    multilabel,
    segmentation,
    spacenet,
)

__all__ = ["CONVENTIONS", "SKIPPED"]

_TABLES = (
    *classification.CONVENTIONS,
    *multilabel.CONVENTIONS,
    *segmentation.CONVENTIONS,
    burn_scars.CONVENTION,
    flair2.CONVENTION,
    kuro_siwo.CONVENTION,
    *spacenet.CONVENTIONS,
)

#: Dataset name -> how it is read.
CONVENTIONS: dict[str, Convention] = {c.name: c for c in _TABLES}

#: GEO-Bench-2 datasets (geobenchv2 0.9 classes) salibi does not evaluate, with the reason.
SKIPPED: dict[str, str] = {
    "caffe": (
        "its one band is SAR amplitude from several missions (ERS, Envisat, RADARSAT-1, ALOS, TerraSAR-X, "
        "TanDEM-X, Sentinel-1) with HH or VV polarisation, which the files do not record; the sar encoder's "
        "VV/VH bands cannot be matched to it"
    ),
    "biomassters": "regression (above-ground biomass); salibi's protocols classify and segment",
    "everwatch": "object detection (bird bounding boxes); salibi's protocols classify and segment",
    "nzcattle": "object detection (cattle bounding boxes); salibi's protocols classify and segment",
    "substation": "instance segmentation and detection (boxes and masks); salibi's protocols classify and segment",
    "spacenet6": "not one of the GEO-Bench-2 tasks salibi implements (its conventions are not checked)",
    "spacenet8": "not one of the GEO-Bench-2 tasks salibi implements (its conventions are not checked)",
}
