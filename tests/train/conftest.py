"""An aligned training set made from the shipped Sen1Floods11 chip (S1 + 4 S2 bands, 10 m)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def aligned_set(tmp_path_factory, samples) -> Path:
    from salibi.align import align

    out = tmp_path_factory.mktemp("aligned") / "s1s2.h5"
    folder = samples / "sen1floods11"
    align(sar=folder / "Spain_7370579_S1Hand.tif", lores=folder / "Spain_7370579_S2Hand.tif", output=out,
          tile_size_m=320, gsd={"sar": 10.0, "lores": 10.0}, bands={"lores": [4, 3, 2, 8]}, progress=False)
    return out
