"""The single-label GEO-Bench-2 datasets: So2Sat (``GeoBenchSo2Sat``), ForestNet (``GeoBenchForestnet``).

Each fact comes from the official package (``geobenchv2`` 0.9) as :mod:`salibi.eval.geobench2.datasets` says.
"""

from __future__ import annotations

from salibi.eval.geobench2.conventions import (
    HLS_BANDS,
    S2_10_BANDS,
    Convention,
    Label,
    Source,
    landsat8_bands,
    sentinel1_bands,
    sentinel2_bands,
    tortilla_files,
)

__all__ = ["CONVENTIONS"]

CONVENTIONS = (
    Convention(
        "so2sat",
        "GeoBenchSo2Sat",
        tortilla_files("so2sat"),
        Label(
            "classification",
            (
                "Compact high-rise",
                "Compact middle-rise",
                "Compact low-rise",
                "Open high-rise",
                "Open middle-rise",
                "Open low-rise",
                "Lightweight low-rise",
                "Large low-rise",
                "Sparsely built",
                "Heavy industry",
                "Dense Trees",
                "Scattered trees",
                "Bush, scrub",
                "Low plants",
                "Bare rock or paved",
                "Bare soil or sand",
                "Water",
            ),  # fmt: skip
            column="labels",
        ),
        (
            # The generator keeps "01 - VH.Real" and "03 - VV.Real" in sorted key order: real parts, VH first.
            Source(
                "s1",
                "sentinel1",
                0,
                sentinel1_bands("VH.Real", "VV.Real", official=("VV", "VH")),
                10.0,
                gsd_from_georeference=False,
            ),
            Source("s2", "sentinel2", 1, sentinel2_bands(*S2_10_BANDS), 10.0, gsd_from_georeference=False),
        ),
        notes=("the payloads carry no georeference (nominal 10 m)", "S1 holds real parts of complex backscatter"),
    ),
    Convention(
        "forestnet",
        "GeoBenchForestnet",
        tortilla_files("forestnet"),
        Label(
            "classification",
            (
                "Oil palm plantation",
                "Timber plantation",
                "Other large-scale plantations",
                "Grassland/shrubland",
                "Small-scale agriculture",
                "Small-scale mixed plantation",
                "Small-scale oil palm plantation",
                "Mining",
                "Fish pond",
                "Logging road",
                "Secondary forest",
                "Other",
            ),  # fmt: skip
            column="labels",
        ),
        (
            Source(
                "landsat8",
                "landsat8",
                0,
                landsat8_bands(2, 3, 4, 5, 6, 7, official=HLS_BANDS),
                15.0,
                gsd_from_georeference=False,
            ),
        ),
        notes=(
            "Landsat-8 bands 2-7 under Sentinel-2 names in the reader; the generator writes each image "
            "transposed (C, W, H), read as stored as the official reader does",
        ),
    ),
)
