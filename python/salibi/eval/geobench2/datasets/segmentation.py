"""The GEO-Bench-2 segmentation datasets whose labels are class indices as stored: CloudSEN12
(``GeoBenchCloudSen12``), Fields of the World (``GeoBenchFieldsOfTheWorld``), DynamicEarthNet
(``GeoBenchDynamicEarthNet``), PASTIS (``GeoBenchPASTIS``).

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

from salibi.bands import S2_COLOUR, S2_WAVELENGTH
from salibi.eval.geobench2.conventions import (
    S2_10_BANDS,
    S2_12_BANDS,
    Band,
    Convention,
    Label,
    Source,
    as_classes,
    colour_bands,
    sentinel1_bands,
    sentinel2_bands,
    tortilla_files,
)

__all__ = ["CONVENTIONS"]

#: Fields of the World's window A: Sentinel-2 B04, B03, B02, B08, which its registry reads under their
#: colour names.
_FOTW_BANDS = tuple(
    Band(band, "Sentinel2", S2_WAVELENGTH[band], (S2_COLOUR[band],), S2_COLOUR[band])
    for band in ("B04", "B03", "B02", "B08")
)

CONVENTIONS = (
    Convention(
        "cloudsen12",
        "GeoBenchCloudSen12",
        tortilla_files("cloudsen12"),
        Label("segmentation", ("clear", "thick cloud", "thin cloud", "cloud shadow"), item=1, remap=as_classes),
        (Source("s2", "sentinel2", 0, sentinel2_bands(*S2_12_BANDS), 10.0),),
    ),
    Convention(
        "fotw",
        "GeoBenchFieldsOfTheWorld",
        tortilla_files("fotw"),
        Label("segmentation", ("background", "field", "field-boundary"), item=3, remap=as_classes),
        (
            Source(
                "win_a",
                "sentinel2",
                0,
                _FOTW_BANDS,
                10.0,
            ),
        ),
        unused={
            "win_b": "the second acquisition window; salibi encodes one image per modality (window A)",
            "instance_mask": "instance segmentation target",
        },
        notes=("band order red, green, blue, nir as geobenchv2's FOTW registry reads it",),
    ),
    Convention(
        "dynamic_earthnet",
        "GeoBenchDynamicEarthNet",
        tortilla_files("dynamic_earthnet", 3),
        Label(
            "segmentation",
            (
                "Impervious surfaces",
                "Agriculture",
                "Forest & other vegetation",
                "Wetlands",
                "Soil",
                "Water",
                "Snow & ice",
            ),
            item="label",
            remap=as_classes,
        ),
        (
            # temporal_setting "single": the first Planet image (position 0), stored B, G, R, NIR.
            Source("planet", "planet", "planet*", colour_bands("blue", "green", "red", "nir"), 3.0),
            Source(
                "s2",
                "sentinel2",
                "s2",
                sentinel2_bands("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B10", "B11", "B12"),
                10.0,
            ),
        ),
        unused={
            "s1": "the official reader does not read it (its band order is not stated)",
            "planet time series": "temporal_setting 'single' reads the first Planet image only",
        },
    ),
    Convention(
        "pastis",
        "GeoBenchPASTIS",
        tortilla_files("pastis", 3),
        Label(
            "segmentation",
            (
                "background",
                "meadow",
                "soft_winter_wheat",
                "corn",
                "winter_barley",
                "winter_rapeseed",
                "spring_barley",
                "sunflower",
                "grapevine",
                "beet",
                "winter_triticale",
                "winter_durum_wheat",
                "fruits_vegetables_flowers",
                "potatoes",
                "leguminous_fodder",
                "soybeans",
                "orchard",
                "mixed_cereal",
                "sorghum",
                "void_label",
            ),  # fmt: skip
            item=3,
            remap=as_classes,
            hdf5_index=0,
        ),
        (
            # num_time_steps=1: the first step of each (T, C, H, W) series.
            Source("s2", "sentinel2", 0, sentinel2_bands(*S2_10_BANDS), 10.0, gsd_from_georeference=False, step=0),
            Source("s1_asc", "sentinel1", 1, sentinel1_bands("VV", "VH", "VV/VH"), 10.0, False, step=0),
            Source("s1_desc", "sentinel1", 2, sentinel1_bands("VV", "VH", "VV/VH"), 10.0, False, step=0),
        ),
        unused={"instance": "instance segmentation target", "time series": "num_time_steps=1: the first step"},
    ),
)
