"""salibi align through the command line: success output, and every bad input as one clear
line on stderr with exit status 1 and no output (or partial file) left behind."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from salibi.cli import cli

from .conftest import FLOODS, SN6


def run(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["align", *map(str, args)])


def assert_user_error(result, *fragments: str, folder: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    if folder is not None:
        leftovers = [p.name for p in folder.iterdir() if p.suffix in (".h5", ".partial", ".tmp")]
        assert not leftovers, list(folder.iterdir())


@pytest.fixture
def pan(samples: Path) -> Path:
    return samples / SN6 / "pan1.tif"


@pytest.fixture
def ms(samples: Path) -> Path:
    return samples / SN6 / "ms1.tif"


def test_align_command_prints_a_summary(samples, tmp_path, sen1floods11):
    out = tmp_path / "floods.h5"
    result = run(
        [
            "--lores",
            sen1floods11 / f"{FLOODS}S2Hand.tif",
            "--sar",
            sen1floods11 / f"{FLOODS}S1Hand.tif",
            "-o",
            out,
            "--gsd",
            "lores=10",
            "--gsd",
            "sar=10",
            "--tile-size-m",
            "480",
            "--bands",
            "lores=4,3,2,8",
            "--val-fraction",
            "0.2",
            "--seed",
            "3",
        ]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.startswith(f"wrote {out}: ")
    assert "EPSG:32630" in result.stdout and "lores: 4 band(s) [B4, B3, B2, B8] at 10 m/px, 48x48 px" in result.stdout
    assert "chips/s" in result.stdout
    with h5py.File(out) as f:
        assert f["lores/data"].shape[1:] == (4, 48, 48) and f["sar/data"].shape[1:] == (2, 48, 48)
        assert f.attrs["split_seed"] == 3


def test_missing_file(ms, tmp_path):
    result = run(["--hires", tmp_path / "nope.tif", "--lores", ms, "-o", tmp_path / "o.h5"])
    assert_user_error(result, "--hires", "nope.tif", "no such file", folder=tmp_path)


def test_directory_given_as_raster(ms, tmp_path):
    result = run(["--hires", tmp_path, "--lores", ms, "-o", tmp_path / "o.h5"])
    assert_user_error(result, "is a directory", folder=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(pan, ms, tmp_path):
    locked = tmp_path / "locked.tif"
    locked.write_bytes(pan.read_bytes())
    locked.chmod(0)
    result = run(["--hires", locked, "--lores", ms, "-o", tmp_path / "o.h5"])
    assert_user_error(result, "locked.tif", "permission denied")


def test_not_a_raster(ms, tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a GeoTIFF" * 50)
    result = run(["--hires", junk, "--lores", ms, "-o", tmp_path / "o.h5"])
    assert_user_error(result, "--hires", "junk.tif", "not a readable raster", folder=tmp_path)


def test_truncated_geotiff_fails_while_reading_and_leaves_nothing(samples, tmp_path, sen1floods11):
    """The header survives, the pixels do not: the error comes mid-run, after the output
    file was started, which must then be removed."""
    source = sen1floods11 / f"{FLOODS}S2Hand.tif"
    cut = tmp_path / "S2_truncated.tif"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with rasterio.open(cut) as ds:  # opens fine
        assert ds.count == 13
    result = run(
        [
            "--lores",
            cut,
            "--sar",
            sen1floods11 / f"{FLOODS}S1Hand.tif",
            "-o",
            tmp_path / "o.h5",
            "--gsd",
            "lores=10",
            "--gsd",
            "sar=10",
            "--tile-size-m",
            "480",
        ]
    )
    assert_user_error(result, "--lores", "S2_truncated.tif", "truncated or corrupt", folder=tmp_path)


def test_rasters_that_do_not_overlap(samples, tmp_path):
    """The SpaceNet 6 optical tile and the SAR scene are 2 km apart."""
    result = run(
        ["--hires", samples / SN6 / "pan1.tif", "--sar", samples / SN6 / "sar_masked.tif", "-o", tmp_path / "o.h5"]
    )
    assert_user_error(result, "do not overlap", "pan1.tif", "sar_masked.tif", folder=tmp_path)


def test_footprint_smaller_than_one_chip(pan, ms, tmp_path):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5"])  # default 960 m chips, 300 m scene
    assert_user_error(
        result,
        "--tile-size-m 960: the common footprint of the inputs is 300.0 x 300.0 m",
        "smaller than one 960 m chip",
        "at most 299 m",
        folder=tmp_path,
    )


def test_fewer_than_two_modalities(pan, tmp_path):
    result = run(["--hires", pan, "-o", tmp_path / "o.h5"])
    assert_user_error(result, "at least two modalities", "only --hires", folder=tmp_path)


def test_band_index_out_of_range(pan, ms, tmp_path):
    result = run(
        ["--hires", pan, "--lores", ms, "--bands", "lores=1,5", "-o", tmp_path / "o.h5", "--tile-size-m", "30"]
    )
    assert_user_error(result, "--bands lores: band 5 is out of range", "ms1.tif: 4", folder=tmp_path)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--gsd", "hires=0"], "--gsd hires=0"),
        (["--gsd", "lores=-2"], "--gsd lores=-2"),
        (["--tile-size-m", "0"], "--tile-size-m must be"),
        (["--tile-size-m", "-30"], "--tile-size-m must be"),
    ],
)
def test_non_positive_gsd_or_tile(pan, ms, tmp_path, extra, fragment):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5", *extra])
    assert_user_error(result, fragment, folder=tmp_path)


def test_tile_not_whole_pixels_suggests_sizes(pan, ms, tmp_path):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5", "--gsd", "lores=3", "--tile-size-m", "50"])
    assert_user_error(result, "not a whole number of lores pixels", "48 or 51", folder=tmp_path)


def test_geographic_target_crs(pan, ms, tmp_path):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5", "--crs", "EPSG:4326"])
    assert_user_error(result, "--crs EPSG:4326", "geographic", folder=tmp_path)


def test_all_chips_invalid(pan, ms, tmp_path):
    """A copy of pan1 whose pixels are all its declared nodata value."""
    empty = tmp_path / "pan_nodata.tif"
    with rasterio.open(pan) as src:
        profile = {**src.profile, "nodata": 0}
        with rasterio.open(empty, "w", **profile) as dst:
            dst.write(np.zeros((1, src.height, src.width), src.dtypes[0]))
    result = run(["--hires", empty, "--lores", ms, "-o", tmp_path / "o.h5", "--tile-size-m", "60"])
    assert_user_error(result, "all 16 chips", "invalid", "hires: 16", "--max-nodata")
    assert not (tmp_path / "o.h5").exists() and not list(tmp_path.glob(".o.h5.*"))  # nor its temporary file


def test_output_folder_missing_or_not_a_folder(pan, ms, tmp_path):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "no" / "such" / "o.h5", "--tile-size-m", "60"])
    assert_user_error(result, "does not exist")
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    result = run(["--hires", pan, "--lores", ms, "-o", a_file / "o.h5", "--tile-size-m", "60"])
    assert_user_error(result, "plain.txt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_folder_not_writable(pan, ms, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    result = run(["--hires", pan, "--lores", ms, "-o", locked / "o.h5", "--tile-size-m", "60"])
    assert_user_error(result, "not writable")


def test_existing_output_is_refused(pan, ms, tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"keep me")
    result = run(["--hires", pan, "--lores", ms, "-o", out, "--tile-size-m", "60"])
    assert_user_error(result, "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    result = run(["--hires", pan, "--lores", ms, "-o", out, "--tile-size-m", "60", "--overwrite"])
    assert result.exit_code == 0 and h5py.is_hdf5(out)


def test_malformed_option_values_are_usage_errors(pan, ms, tmp_path):
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5", "--bands", "lores=a,b"])
    assert result.exit_code == 2 and "--bands" in result.stderr
    result = run(["--hires", pan, "--lores", ms, "-o", tmp_path / "o.h5", "--gsd", "nir=3"])
    assert result.exit_code == 2 and "--gsd" in result.stderr
