"""An aligned training set from one shipped BigEarthNet square (S1 VV/VH + 4 S2 bands), made by
``salibi align``: shared by the fixtures of tests/train and tests/faults."""

from __future__ import annotations

from pathlib import Path

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
