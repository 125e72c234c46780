"""GeoParquet output read back with geopandas, pyarrow and DuckDB's spatial extension: CRS,
footprints equal to rasterio's chip bounds, embeddings equal to the HDF5 output's; one file per
CRS or reprojected with --crs; resume.

DuckDB cannot download its extensions here; the spatial extension comes from PyPI
(duckdb-extension-spatial, built for the pinned duckdb) and is loaded from its file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from rasterio.warp import transform as transform_points
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from salibi.embed import embed, read_embeddings
from salibi.embed.output.geoparquet import hilbert_keys
from salibi.errors import InputError

from .make_tiles import NAIP, SPAIN_S2


@pytest.fixture(scope="module")
def naip_parquet(naip_outputs):
    return naip_outputs[0]


def test_geopandas_reads_crs_footprints_and_embeddings(naip_parquet):
    frame = geopandas.read_parquet(naip_parquet / "naip.parquet")
    with rasterio.open(NAIP) as ds:
        assert frame.crs == ds.crs  # EPSG:26914
        transform = ds.transform
    assert len(frame) == 154 and list(frame.geom_type.unique()) == ["Polygon"]
    for _, row in frame.iterrows():
        expected = shapely.box(*window_bounds(Window(*row["chip"]), transform))
        assert row.geometry.equals_exact(expected, tolerance=0), row["path"]
    h5 = read_embeddings(naip_parquet / "naip.h5")
    for _, row in frame.sample(10, random_state=0).iterrows():
        np.testing.assert_array_equal(np.asarray(row["embedding"], np.float32), h5.embedding[h5.row_of(row["path"])])
    assert set(frame["bands"]) == {"1,2,3 (assumed)"} and set(frame["modality"]) == {"lores"}


def test_duckdb_spatial_reads_the_footprints_with_their_crs(naip_parquet):
    import duckdb
    import duckdb_extension_spatial

    extension = next(Path(duckdb_extension_spatial.__file__).parent.glob("extensions/*/spatial.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    path = naip_parquet / "naip.parquet"
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')").fetchall())
    assert types["geometry"] == "GEOMETRY('EPSG:26914')"  # the CRS read from the file's PROJJSON
    rows = con.execute(
        f"SELECT path, ST_GeometryType(geometry), ST_XMin(geometry), ST_YMax(geometry), ST_Area(geometry), "
        f"len(embedding) FROM '{path}' ORDER BY path"
    ).fetchall()
    frame = geopandas.read_parquet(path).sort_values("path")
    assert [r[0] for r in rows] == list(frame["path"]) and len(rows) == 154
    for (_, kind, xmin, ymax, area, dim), geometry in zip(rows, frame.geometry):
        assert kind == "POLYGON" and dim == 64
        assert (xmin, ymax, area) == (geometry.bounds[0], geometry.bounds[3], geometry.area)


def test_the_file_is_geoparquet_1_1(naip_parquet):
    schema = pq.read_schema(naip_parquet / "naip.parquet")
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 26914}  # PROJJSON
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert schema.field("geometry").type == pa.binary()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 64)  # fixed-size float32 list
    assert schema.field("chip").type == pa.list_(pa.int64(), 4)
    salibi = json.loads(schema.metadata[b"salibi"])
    assert salibi["format"] == "salibi-embeddings" and salibi["format_version"] == 2 and salibi["chip_size_m"] == 320
    # the covering bbox column equals each footprint's bounds
    table = pq.read_table(naip_parquet / "naip.parquet", columns=["bbox", "geometry"])
    boxes = shapely.bounds(shapely.from_wkb(table.column("geometry").to_pylist()))
    bbox = table.column("bbox").combine_chunks()
    np.testing.assert_array_equal(boxes[:, 0], bbox.field("xmin").to_numpy())
    np.testing.assert_array_equal(boxes[:, 3], bbox.field("ymax").to_numpy())


@pytest.mark.slow
def test_several_crs_make_one_file_each_and_crs_reprojects_to_one(checkpoint, tmp_path):
    """NAIP (EPSG:26914) and Sentinel-2 (cut on UTM 30N): two files; --crs EPSG:4326: one."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(NAIP, scenes / NAIP.name)
    shutil.copy(SPAIN_S2, scenes / SPAIN_S2.name)
    out = tmp_path / "mixed.parquet"
    with pytest.warns(UserWarning):
        summary = embed(scenes, checkpoint, out, chip_size_m=640, batch_size=32, progress=False)
    files = sorted(p.name for p in tmp_path.glob("mixed*.parquet"))
    assert files == ["mixed.epsg-26914.parquet", "mixed.epsg-32630.parquet"] and not out.exists()
    assert any("one GeoParquet file per CRS" in note for note in summary.notes)
    frames = {name: geopandas.read_parquet(tmp_path / name) for name in files}
    assert frames["mixed.epsg-26914.parquet"].crs.to_epsg() == 26914
    assert frames["mixed.epsg-32630.parquet"].crs.to_epsg() == 32630
    assert set(frames["mixed.epsg-26914.parquet"]["source"]) == {NAIP.name}
    table = read_embeddings(out)  # the output's name reads every file of it
    assert len(table) == summary.rows == sum(len(f) for f in frames.values())

    one = tmp_path / "wgs84.parquet"
    with pytest.warns(UserWarning):
        embed(scenes, checkpoint, one, chip_size_m=640, batch_size=32, crs="EPSG:4326", progress=False)
    frame = geopandas.read_parquet(one)
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(table)
    # every reprojected footprint holds its chip's centre, carried over by GDAL
    native = {p: (b, c) for p, b, c in zip(table.path, table.bounds, table.crs)}
    for _, row in frame.iterrows():
        bounds, crs = native[row["path"]]
        x, y = transform_points(crs, "EPSG:4326", [(bounds[0] + bounds[2]) / 2], [(bounds[1] + bounds[3]) / 2])
        assert row.geometry.contains(shapely.Point(x[0], y[0])), row["path"]


def test_resume_appends_to_a_geoparquet_output(naip_parquet, checkpoint, tmp_path):
    """An output of one scene, continued with a folder holding it and another: each chip once."""
    out = tmp_path / "naip.parquet"
    shutil.copy(naip_parquet / "naip.parquet", out)
    before = geopandas.read_parquet(out)
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(NAIP, folder / NAIP.name)
    other = NAIP.with_name("m_4709963_se_14_1_20200831.tif")
    shutil.copy(other, folder / other.name)
    with pytest.warns(UserWarning):
        summary = embed(folder, checkpoint, out, chip_size_m=320, batch_size=32, progress=False)
    assert (summary.skipped, summary.embedded, summary.rows) == (154, 154, 308)
    after = geopandas.read_parquet(out)
    assert len(after) == 308 and after["path"].is_unique
    # The earlier rows unchanged, all of them laid out along the Hilbert curve (geoparquet.lay_out).
    kept = after.set_index("path").loc[before["path"]]
    assert np.array_equal(np.stack(kept["embedding"]), np.stack(before["embedding"]))
    keys = hilbert_keys(read_embeddings(out).bounds)
    assert (np.diff(keys.astype(np.float64)) >= 0).all()
    assert not (tmp_path / "naip.parquet.parts").exists()


def test_crs_is_for_geoparquet_only(checkpoint, tmp_path):
    with pytest.raises(InputError, match="--crs EPSG:4326: reprojects GeoParquet footprints"):
        embed(NAIP, checkpoint, tmp_path / "out.h5", chip_size_m=320, crs="EPSG:4326", progress=False)
    with pytest.raises(InputError, match="the extension says the format"):
        embed(NAIP, checkpoint, tmp_path / "out.csv", chip_size_m=320, progress=False)


def test_tiles_to_geoparquet_with_a_plain_png_and_resume(mixed, checkpoint, tmp_path):
    """Tiles of a folder on EPSG:4326, 32631 and 26914 plus a PNG without georeference (--gsd):
    one file per CRS and one without (null geometries); strict JSON metadata; a second run adds nothing."""
    import warnings

    folder, _ = mixed
    out = tmp_path / "tiles.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = embed(folder, checkpoint, out, gsd=0.5, progress=False)
        again = embed(folder, checkpoint, out, gsd=0.5, progress=False)
    names = sorted(p.name for p in tmp_path.glob("tiles.*.parquet"))
    assert names == [
        "tiles.epsg-26914.parquet",
        "tiles.epsg-32631.parquet",
        "tiles.epsg-4326.parquet",
        "tiles.no-crs.parquet",
    ]
    plain = geopandas.read_parquet(tmp_path / "tiles.no-crs.parquet")
    assert plain["path"].tolist() == ["photos/plain.png"] and plain.geometry.isna().all() and plain.crs is None
    meta = json.loads(pq.read_schema(tmp_path / "tiles.no-crs.parquet").metadata[b"salibi"])  # strict JSON: no NaN
    assert meta["chip_size_m"] is None and sorted(p for p, _ in meta["failed"]) == [
        "broken/truncated.tif",
        "sn6/pan.tif",
    ]
    assert (first.embedded, again.embedded, again.skipped, again.rows) == (10, 0, 10, 10)
    table = read_embeddings(out)
    assert len(table) == 10 and sorted(table.failed_path) == ["broken/truncated.tif", "sn6/pan.tif"]
