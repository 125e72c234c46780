"""salibi align through the command line: success output, and every bad input as one clear
line on stderr with exit status 1 and no output (or partial file) left behind. Permissions are
tried as the unprivileged user ``nobody`` (CI runs the tests as root, who reads and writes anything)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from helpers import SALIBI
from salibi.cli import cli

from .conftest import FLOODS, SN6


def run(args: list[str]):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["align", *map(str, args)])


def run_process(command: list[str], **options) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """``command`` in a fresh process, its outcome shaped as :func:`run`'s (for :func:`assert_user_error`)."""
    env = {**os.environ, "HOME": tempfile.gettempdir(), "MPLCONFIGDIR": tempfile.gettempdir(), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **options)
    return SimpleNamespace(exit_code=done.returncode, stderr=done.stderr, stdout=done.stdout, output=done.stdout)


@pytest.fixture
def public_inputs(pan: Path, ms: Path, public_tmp: Path) -> tuple[Path, Path, Path]:
    """Copies of pan and ms in a folder every user may enter and write (pan, ms, the folder)."""
    copies = []
    for source in (pan, ms):
        shutil.copyfile(source, public_tmp / source.name)
        (public_tmp / source.name).chmod(0o644)
        copies.append(public_tmp / source.name)
    return copies[0], copies[1], public_tmp


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


def test_unreadable_file(public_inputs, as_nobody):
    pan, ms, folder = public_inputs
    locked = folder / "locked.tif"
    shutil.copyfile(pan, locked)
    locked.chmod(0)
    # The command line refuses it before anything runs (a usage error, docs/BAD_INPUT.md "align-unreadable")...
    result = run_process(
        as_nobody([SALIBI, "align", "--hires", str(locked), "--lores", str(ms), "-o", str(folder / "o.h5")])
    )
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.stderr.strip().splitlines() == [
        f"Error: Invalid value for '--hires': Path '{locked}' is not readable. (see 'salibi align --help')"
    ]
    # ... and so does the library for its own callers.
    script = (
        "import sys; from salibi.align import align; align(hires=sys.argv[1], lores=sys.argv[2], output=sys.argv[3])"
    )
    result = run_process(as_nobody([sys.executable, "-c", script, str(locked), str(ms), str(folder / "o.h5")]))
    assert result.exit_code == 1 and "InputError: --hires" in result.stderr and "locked.tif" in result.stderr
    assert "permission denied; make the file readable" in result.stderr, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["locked.tif", "ms1.tif", "pan1.tif"]


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


def test_output_folder_not_writable(public_inputs, as_nobody):
    pan, ms, folder = public_inputs
    locked = folder / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    args = ["--hires", str(pan), "--lores", str(ms), "-o", str(locked / "o.h5"), "--tile-size-m", "60"]
    result = run_process(as_nobody([SALIBI, "align", *args]))
    assert_user_error(result, f"-o {locked / 'o.h5'}: folder {locked} is not writable", folder=locked)
    assert list(locked.iterdir()) == []


def test_an_output_that_cannot_be_written_whole_is_one_line_and_leaves_nothing(pan, ms, tmp_path):
    """A file size limit makes the writes fail midway, as a full disk does (tests/faults/test_full_disk.py
    fills a real one, as root): one line, nothing left behind, and the process ends normally (HDF5
    cannot close a file whose writes failed: trying crashed the process, SIGSEGV)."""

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))

    out = tmp_path / "o.h5"
    args = ["align", "--hires", str(pan), "--lores", str(ms), "--tile-size-m", "30", "-o", str(out)]
    result = run_process([SALIBI, *args], preexec_fn=limit_file_size)
    assert_user_error(result, f"-o {out}: could not be written (File too large); nothing was written", folder=tmp_path)
    assert list(tmp_path.iterdir()) == []
    result = run_process([SALIBI, *args])
    assert result.exit_code == 0, result.stderr
    assert h5py.is_hdf5(out) and sorted(p.name for p in tmp_path.iterdir()) == ["o.h5"]


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
