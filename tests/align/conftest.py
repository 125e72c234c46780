"""Aligned sets built once per session from the real sample rasters (data/samples)."""

from __future__ import annotations

from pathlib import Path

import pytest

from salibi.align import AlignSummary, align

SN6 = "spacenet6_rotterdam"
FLOODS = "Spain_7370579_"  # file prefix inside ../shared/data/sen1floods11


@pytest.fixture(scope="session")
def sn6_optical(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> AlignSummary:
    """SpaceNet 6: 0.5 m panchromatic (hires) + 1 m 4-band multispectral (lores), same CRS."""
    out = tmp_path_factory.mktemp("sn6") / "optical.h5"
    return align(
        hires=samples / SN6 / "pan1.tif", lores=samples / SN6 / "ms1.tif", output=out, tile_size_m=30, progress=False
    )


@pytest.fixture(scope="session")
def sn6_sar(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> AlignSummary:
    """SpaceNet 6 SAR set: 4.5 m masked SAR intensity + complex SLC VV/VH (2.5 m, rotated
    transform) as sar, the 4.5 m RGB composite as lores."""
    out = tmp_path_factory.mktemp("sn6sar") / "sar.h5"
    d = samples / SN6
    return align(
        sar=[d / "sar_masked.tif", d / "sar_vv.tif", d / "sar_vh.tif"],
        lores=d / "rgb_unmasked.tif",
        output=out,
        tile_size_m=45,
        gsd={"sar": 4.5},
        max_nodata=0.3,
        progress=False,
    )


@pytest.fixture(scope="session")
def floods(samples: Path, tmp_path_factory: pytest.TempPathFactory, sen1floods11: Path) -> AlignSummary:
    """Sen1Floods11: S1 (dB, NaN nodata) + S2 (13 bands, 0 nodata) in EPSG:4326 -> UTM."""
    out = tmp_path_factory.mktemp("floods") / "floods.h5"
    return align(
        sar=sen1floods11 / f"{FLOODS}S1Hand.tif",
        lores=sen1floods11 / f"{FLOODS}S2Hand.tif",
        output=out,
        tile_size_m=240,
        gsd={"sar": 10, "lores": 10},
        progress=False,
    )
