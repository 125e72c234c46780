"""--band-names: naming bands the files leave unnamed, so evaluation and embedding match them."""

from __future__ import annotations

import h5py
from click.testing import CliRunner

from salibi.cli import cli


def test_band_names_are_written_and_checked(samples, tmp_path):
    folder = samples / "spacenet6_rotterdam"
    out = tmp_path / "sn6.h5"
    args = [
        "align",
        "--sar",
        str(folder / "sar_masked.tif"),
        "--lores",
        str(folder / "rgb_unmasked.tif"),
        "--bands",
        "sar=4,3",
        "--tile-size-m",
        "90",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(cli, [*args, "--band-names", "sar=VV,VH", "--band-names", "lores=red,green,blue"])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert [b.decode() if isinstance(b, bytes) else b for b in f["sar"].attrs["bands"]] == ["VV", "VH"]
        assert [b.decode() if isinstance(b, bytes) else b for b in f["lores"].attrs["bands"]] == [
            "red",
            "green",
            "blue",
        ]

    wrong = CliRunner().invoke(cli, [*args, "--overwrite", "--band-names", "sar=VV"])
    assert wrong.exit_code == 1
    assert "--band-names sar: 1 name(s) for 2 band(s) (sar_masked:4, sar_masked:3)" in wrong.output
    absent = CliRunner().invoke(cli, [*args, "--overwrite", "--band-names", "hires=a"])
    assert absent.exit_code == 1 and "no hires input" in absent.output


def test_band_file_names_name_unnamed_bands():
    from salibi.bands import band_from_file_name

    named = {
        "T31UDQ_20200101T103421_B04.jp2": "B04",
        "T31UDQ_20200101T103421_B8A_20m.jp2": "B8A",  # L2A: the resolution token is skipped
        "s2_B04.tif": "B04",
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48_VH.tif": "VH",
        "LC08_L2SP_014035_20200101_20200110_02_T1_SR_B5.TIF": "LC08_B5",  # Landsat 8 band 5: NIR
        "LE07_L1TP_016035_20000415_20200917_02_T1_B3.TIF": "LE07_B3",  # Landsat 7 band 3: red
    }
    for name, band in named.items():
        assert band_from_file_name(name) == band, name
    # a single digit outside a Landsat product, a Sentinel-2 number it does not have, a thermal
    # Landsat band and a plain name state no band
    for name in ("scene_B4.tif", "x_B13.tif", "LC08_L1TP_x_B10.TIF", "landcover_1996.tif", "rgb.tif"):
        assert band_from_file_name(name) is None, name


def test_landsat_names_mean_that_sensors_bands():
    from salibi.bands import identify, match_strength

    nir, red_edge = identify("LC08_B5"), identify("B05")  # Landsat 8 band 5 is NIR, Sentinel-2 B05 red edge
    assert match_strength(identify("B08"), nir) is not None and match_strength(red_edge, nir) is None
    assert match_strength(identify("red"), identify("LE07_B3")) == (1, 0.0)


def test_align_names_bands_from_sentinel2_file_names(samples, tmp_path):
    """Unnamed one-band Sentinel-2/Sentinel-1 files: the bands are B04, B03 and VV, VH, not FILE:1."""
    s2 = samples / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48"
    s1 = samples / "bigearthnet" / "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    out = tmp_path / "ben.h5"
    result = CliRunner().invoke(
        cli,
        [
            "align",
            "--lores",
            str(next(s2.glob("*_B04.tif"))),
            "--lores",
            str(next(s2.glob("*_B03.tif"))),
            "--sar",
            str(next(s1.glob("*_VV.tif"))),
            "--sar",
            str(next(s1.glob("*_VH.tif"))),
            "--tile-size-m",
            "400",
            "--val-fraction",
            "0",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lores: 2 band(s) [B04, B03]" in result.output and "sar: 2 band(s) [VV, VH]" in result.output
    with h5py.File(out) as f:
        assert [b.decode() if isinstance(b, bytes) else b for b in f["lores"].attrs["bands"]] == ["B04", "B03"]
