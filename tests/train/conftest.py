"""An aligned training set made from a shipped BigEarthNet pair (S1 VV/VH + 4 S2 bands, 10 m)."""

from __future__ import annotations

from pathlib import Path

import pytest

PAIR = ("S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48", "S2A_MSIL2A_20170613T101031_87_48")


def align_pair(samples: Path, output: Path, tile_size_m: float = 240, gsd: float = 10.0) -> Path:
    """25 chips of 240 m (24 px at 10 m), all for training: one 1.2 km BigEarthNet square."""
    from salibi.align import align

    s1, s2 = (samples / "bigearthnet" / name for name in PAIR)
    align(
        sar=[s1 / f"{PAIR[0]}_VV.tif", s1 / f"{PAIR[0]}_VH.tif"],
        lores=[s2 / f"{PAIR[1]}_{band}.tif" for band in ("B04", "B03", "B02", "B08")],
        output=output,
        tile_size_m=tile_size_m,
        gsd={"sar": gsd, "lores": gsd},
        val_fraction=0.0,
        band_names={"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02", "B08"]},
        progress=False,
    )
    return output


@pytest.fixture(scope="session")
def aligned_set(tmp_path_factory, samples) -> Path:
    return align_pair(samples, tmp_path_factory.mktemp("aligned") / "s1s2.h5")


@pytest.fixture(scope="session")
def coarse_set(tmp_path_factory, samples) -> Path:
    """The same square at 20 m: 9 chips of 320 m (16 px)."""
    return align_pair(samples, tmp_path_factory.mktemp("aligned") / "s1s2_20m.h5", tile_size_m=320, gsd=20.0)


@pytest.fixture(scope="session")
def huge_chip_set(tmp_path_factory) -> Path:
    """16 chips of 960 m: high-res at 0.25 m (3840 px, 57,600 tokens of 16 px), low-res at 10 m."""
    from faults.aligned_files import write_aligned

    path = tmp_path_factory.mktemp("aligned") / "huge.h5"
    return write_aligned(path, {"lores": (3, 96, 10.0), "hires": (3, 3840, 0.25)}, fill=None)
