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
