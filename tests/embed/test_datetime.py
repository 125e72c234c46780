"""The ``datetime`` column: a raster's acquisition time from its tags (``ACQUISITION_DATETIME``,
which salibi fetch writes, else the TIFF DateTime tag) on every row it makes, in HDF5 (ISO text,
"" unknown) and GeoParquet (timestamp[us, tz=UTC], null unknown); outputs written before the
column are read (unknown) and continued."""

from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timezone

import geoparquet_validator as gpv
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.windows import Window

from salibi.embed import embed, read_embeddings
from salibi.embed.records import times_from_text
from salibi.errors import DataFormatError
from salibi.fetch.planning.cover import item_datetime
from salibi.rasters import acquisition_tags, acquisition_time

from .make_tiles import SPAIN_S2, crop

TIFF_TIME = "2019:09:18 10:50:00"  # the TIFF DateTime tag's own form, read as UTC
TIFF_TIME_64 = np.datetime64("2019-09-18T10:50:00", "us")
ISO_TIME = "2019-09-23T10:50:21.024Z"


def _embed(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the tiles' band assumptions, tested elsewhere
        return embed(*args, progress=False, **kwargs)


def _tile(folder, name, column, **tags):
    path = crop(SPAIN_S2, folder / name, Window(column, 0, 32, 32))
    if tags:
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(**tags)
    return path


@pytest.mark.parametrize(
    "text", [ISO_TIME, ISO_TIME.lower(), "2019-09-23T12:50:21.024+02:00", f" {ISO_TIME} ", "2019-09-23T10:50:21.024"]
)
def test_a_time_reads_the_same_from_a_stac_item_a_raster_tag_and_an_embeddings_file(text):
    """One reading of ISO 8601 (rasters.parse_iso_utc) behind all three: RFC 3339's lowercase
    ``z``, an offset converted to UTC, no zone taken as UTC."""
    moment = datetime(2019, 9, 23, 10, 50, 21, 24000, tzinfo=timezone.utc)
    assert item_datetime({"properties": {"datetime": text}}) == moment
    assert acquisition_time({"ACQUISITION_DATETIME": text}) == moment
    assert times_from_text(np.array([text]))[0] == np.datetime64("2019-09-23T10:50:21.024", "us")


@pytest.fixture(scope="module")
def dated(checkpoint, tmp_path_factory):
    """Two tiles, ``a.tif`` with the TIFF DateTime tag and ``b.tif`` without, embedded into
    ``out.h5`` and ``out.parquet``; ``more/`` holds them and ``c.tif`` (ACQUISITION_DATETIME)."""
    root = tmp_path_factory.mktemp("dated")
    _tile(root / "tiles", "a.tif", 0, TIFFTAG_DATETIME=TIFF_TIME)
    _tile(root / "tiles", "b.tif", 32)
    shutil.copytree(root / "tiles", root / "more")
    _tile(root / "more", "c.tif", 64, ACQUISITION_DATETIME=ISO_TIME)
    for name in ("out.h5", "out.parquet"):
        _embed(root / "tiles", checkpoint, root / name)
    return root


def test_acquisition_time_reads_the_iso_item_then_the_tiff_tag_and_never_guesses():
    moment = datetime(2019, 9, 23, 10, 50, 21, 24000, tzinfo=timezone.utc)
    tags = acquisition_tags(moment)
    assert tags == {
        "ACQUISITION_DATETIME": ISO_TIME.replace(".024Z", ".024000Z"),
        "TIFFTAG_DATETIME": "2019:09:23 10:50:21",
    }
    assert acquisition_time(tags) == moment  # the full time, not the TIFF tag's seconds
    assert acquisition_time({"TIFFTAG_DATETIME": TIFF_TIME}) == datetime(2019, 9, 18, 10, 50, tzinfo=timezone.utc)
    assert acquisition_time({"ACQUISITION_DATETIME": "2019-09-23T12:50:00+02:00"}).hour == 10  # to UTC
    assert acquisition_time({"ACQUISITION_DATETIME": "soon", "TIFFTAG_DATETIME": TIFF_TIME}).day == 18
    for tags in ({}, {"TIFFTAG_DATETIME": "    :  :     :  :  "}, {"ACQUISITION_DATETIME": "2019-13-01"}):
        assert acquisition_time(tags) is None, tags


def test_tiles_get_their_tags_time_in_both_formats(dated):
    for name in ("out.h5", "out.parquet"):
        table = read_embeddings(dated / name)
        assert table.path == ["a.tif", "b.tif"]
        assert table.datetime.dtype == np.dtype("datetime64[us]")
        assert table.datetime[0] == TIFF_TIME_64 and np.isnat(table.datetime[1]), name
    with h5py.File(dated / "out.h5") as f:
        assert list(f["datetime"].asstr()[:]) == ["2019-09-18T10:50:00Z", ""]
    parquet = pq.read_table(dated / "out.parquet")
    assert parquet.schema.field("datetime").type == pa.timestamp("us", tz="UTC")
    assert parquet.column("datetime").to_pylist() == [datetime(2019, 9, 18, 10, 50, tzinfo=timezone.utc), None]
    assert gpv.failed(gpv.check(str(dated / "out.parquet"))) == []


def test_every_chip_of_a_scene_gets_the_scenes_time(dated, checkpoint):
    out = dated / "scene.h5"
    _embed(dated / "more" / "c.tif", checkpoint, out, chip_size_m=100)
    table = read_embeddings(out)
    assert len(table) > 4 and set(table.datetime.tolist()) == {datetime(2019, 9, 23, 10, 50, 21, 24000)}


def test_an_hdf5_output_written_before_the_column_is_read_and_continued(dated, checkpoint, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(dated / "out.h5", old)
    with h5py.File(old, "a") as f:
        del f["datetime"]
    assert np.isnat(read_embeddings(old).datetime).all()
    summary = _embed(dated / "more", checkpoint, old)
    assert (summary.skipped, summary.embedded) == (2, 1)
    with h5py.File(old) as f:
        assert list(f["path"].asstr()[:]) == ["a.tif", "b.tif", "c.tif"]
        assert list(f["datetime"].asstr()[:]) == ["", "", "2019-09-23T10:50:21.024000Z"]


def test_a_geoparquet_output_written_before_the_column_is_read_and_continued(dated, checkpoint, tmp_path):
    old = tmp_path / "out.parquet"
    table = pq.read_table(dated / "out.parquet")
    pq.write_table(table.drop_columns(["datetime"]), old)  # the file's metadata (geo, salibi) kept
    assert np.isnat(read_embeddings(old).datetime).all()
    summary = _embed(dated / "more", checkpoint, old)
    assert (summary.skipped, summary.embedded) == (2, 1)
    merged = pq.read_table(old)
    times = dict(zip(merged.column("path").to_pylist(), merged.column("datetime").to_pylist()))
    assert times == {
        "a.tif": None,
        "b.tif": None,
        "c.tif": datetime(2019, 9, 23, 10, 50, 21, 24000, tzinfo=timezone.utc),
    }
    assert gpv.failed(gpv.check(str(old))) == []


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (["2019-09-18T10:50:00Z"], r"/datetime has \(1,\) entries for 2 rows"),
        (["noon", ""], "'noon' is not an ISO 8601"),
    ],
)
def test_an_altered_datetime_dataset_is_refused_naming_the_file(dated, tmp_path, times, message):
    altered = tmp_path / "altered.h5"
    shutil.copy(dated / "out.h5", altered)
    with h5py.File(altered, "a") as f:
        del f["datetime"]
        f.create_dataset("datetime", data=times, dtype=h5py.string_dtype())
    with pytest.raises(DataFormatError, match=f"{altered}: .*{message}"):
        read_embeddings(altered)
