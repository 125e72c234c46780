"""salibi-embeddings HDF5: version 2 written, version 1 still read and continued; outputs by extension."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from salibi.cli import cli
from salibi.embed import embed, output_format, read_embeddings
from salibi.errors import InputError

from .make_tiles import NAIP


def write_version_1(source, target):
    """The rows of a version 2 file in the version 1 layout (DESIGN.md before version 2)."""
    string = h5py.string_dtype("utf-8")
    with h5py.File(source) as f, h5py.File(target, "w") as out:
        for key in ("format", "checkpoint_sha256", "variant", "model"):
            out.attrs[key] = f.attrs[key]
        out.attrs["format_version"] = 1
        for name in ("embedding", "gsd", "bounds"):
            out[name] = f[name][:]
        for name in ("path", "modality", "failed_path", "failed_reason"):
            out.create_dataset(name, data=list(f[name].asstr()[:]), dtype=string)
        out["crs"] = np.array([c.encode() for c in f["crs"].asstr()[:]], dtype=h5py.string_dtype("utf-8", 1024))


def test_version_1_is_read_and_continued_as_version_2(mixed, mixed_run, checkpoint, tmp_path):
    summary, reference = mixed_run
    old = tmp_path / "old.h5"
    write_version_1(summary.output, old)
    table = read_embeddings(old)
    assert table.path == reference.path and table.source == reference.path  # a v1 row is its own source
    assert set(table.bands) == {""} and (table.chip == -1).all() and table.skipped_path == []
    np.testing.assert_array_equal(table.embedding, reference.embedding)
    again = embed(mixed[0], checkpoint, old, batch_size=4, progress=False)
    assert (again.skipped, again.embedded, again.failed) == (9, 0, 3)  # failures are retried
    with h5py.File(old) as f:
        assert f.attrs["format_version"] == 2 and math.isnan(f.attrs["chip_size_m"])
    table = read_embeddings(old)
    assert table.path == reference.path and sorted(table.failed_path) == sorted(reference.failed_path)
    np.testing.assert_array_equal(table.embedding, reference.embedding)


def test_the_extension_says_the_format():
    from pathlib import Path

    assert output_format(Path("a.h5")) == "hdf5" and output_format(Path("a.parquet")) == "parquet"
    with pytest.raises(InputError, match=r"\.h5, \.hdf5 \(HDF5\) or \.parquet, \.geoparquet \(GeoParquet\)"):
        output_format(Path("a.csv"))


def test_salibi_embed_on_a_scene_prints_chips_and_area(checkpoint, tmp_path):
    out = tmp_path / "naip.parquet"
    args = ["embed", str(NAIP), "--checkpoint", str(checkpoint), "-o", str(out), "--chip-size-m", "640"]
    result = CliRunner().invoke(cli, [*args, "--band-names", "red,green,blue,nir", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "embedded 35, skipped 0 (already in the output), failed 0 of 35 chips" in result.output
    assert "km²/s" in result.output and "(35 rows)" in result.output
    assert set(read_embeddings(out).bands) == {"red,green,blue"}
    result = CliRunner().invoke(cli, [*args, "--stride-m", "320"])  # the same output, another grid
    assert result.exit_code == 1 and "of another chip grid (640 m chips every 640 m)" in result.output
    args[5] = str(tmp_path / "other.parquet")
    result = CliRunner().invoke(cli, [*args, "--stride-m", "333"])
    assert result.exit_code == 1 and "--stride-m 333 m is not a whole number" in result.output
    result = CliRunner().invoke(
        cli, ["embed", str(NAIP), "--checkpoint", str(checkpoint), "-o", str(out), "--stride-m", "320"]
    )
    assert result.exit_code == 1 and "give --chip-size-m too" in result.output
    result = CliRunner().invoke(cli, [*args, "--band-names", "red,,blue"])
    assert result.exit_code == 2
