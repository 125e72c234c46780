"""The multi-label GEO-Bench-2 datasets: BigEarthNet v2 (``GeoBenchBENV2``), TreeSatAI (``GeoBenchTreeSatAI``).

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

from salibi.eval.geobench2.conventions import (
    S2_12_BANDS,
    Convention,
    Label,
    Source,
    colour_bands,
    sentinel1_bands,
    sentinel2_bands,
    tortilla_files,
)

__all__ = ["CONVENTIONS"]

CONVENTIONS = (
    Convention(
        "benv2",
        "GeoBenchBENV2",
        tortilla_files("benv2"),
        Label(
            "multilabel",
            (
                "Urban fabric",
                "Industrial or commercial units",
                "Arable land",
                "Permanent crops",
                "Pastures",
                "Complex cultivation patterns",
                "Land principally occupied by agriculture, with significant areas of natural vegetation",
                "Agro-forestry areas",
                "Broad-leaved forest",
                "Coniferous forest",
                "Mixed forest",
                "Natural grassland and sparsely vegetated areas",
                "Moors, heathland and sclerophyllous vegetation",
                "Transitional woodland, shrub",
                "Beaches, dunes, sands",
                "Inland wetlands",
                "Coastal wetlands",
                "Inland waters",
                "Marine waters",
            ),  # fmt: skip
            column="labels",
            by_name=True,
        ),
        (
            # generate_benchmark/benv2.py stacks VH then VV; the reader calls them VV, VH.
            Source("s1", "sentinel1", 0, sentinel1_bands("VH", "VV", official=("VV", "VH")), 10.0),
            # The S2 GeoTIFF is 120 px at 10 m but carries B01's 60 m geotransform: nominal GSD.
            Source("s2", "sentinel2", 1, sentinel2_bands(*S2_12_BANDS), 10.0, gsd_from_georeference=False),
        ),
    ),
    Convention(
        "treesatai",
        "GeoBenchTreeSatAI",
        tortilla_files("treesatai"),
        Label(
            "multilabel",
            (
                "Abies",
                "Acer",
                "Alnus",
                "Betula",
                "Cleared",
                "Fagus",
                "Fraxinus",
                "Larix",
                "Picea",
                "Pinus",
                "Populus",
                "Prunus",
                "Pseudotsuga",
                "Quercus",
                "Tilia",
            ),  # fmt: skip
            column="species_labels",
            by_name=True,
        ),
        (
            # The generator copies TreeSatAI's CIR files (NIR, G, B, R; sensor_util's TREESATAI order);
            # the reader's RGBN registry calls them red, green, blue, nir.
            Source(
                "aerial",
                "aerial",
                0,
                colour_bands("nir", "green", "blue", "red", official=("red", "green", "blue", "nir")),
                0.2,
            ),
            Source("s1", "sentinel1", 1, sentinel1_bands("VV", "VH", "VV/VH"), 10.0),
            Source(
                "s2",
                "sentinel2",
                2,
                sentinel2_bands("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"),
                10.0,
            ),
        ),
        unused={"sentinel time series": "the reader's include_ts is off by default"},
    ),
)
