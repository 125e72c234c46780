"""GeoParquet outputs laid out for archives: rows sorted along a Hilbert curve of their footprint
centres, row groups of at least ROW_GROUP_MIN_ROWS rows (the whole file when smaller), the parts
of a resumed run merged into that layout; checked with geoparquet-validator (the OGC abstract
tests and the best-practice advice)."""

from __future__ import annotations

import warnings

import geoparquet_validator as gpv
import numpy as np
import pyarrow.parquet as pq
from rasterio.crs import CRS
from rasterio.windows import Window

from salibi.embed import embed, read_embeddings
from salibi.embed.output import geoparquet as gp
from salibi.embed.records import Columns

from .make_tiles import SAMPLES, crop

LANDSAT = SAMPLES / "landsat7_raleigh" / "landsat7_2000.tif"


def advice(report: dict, topic: str) -> dict:
    return next(a for a in report["advice"] if a["topic"] == topic)


def test_a_resumed_output_is_merged_into_the_archive_layout(checkpoint, tmp_path):
    scenes = tmp_path / "scenes"
    crop(LANDSAT, scenes / "north.tif", Window(0, 0, 489, 240))
    output = tmp_path / "chips.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unnamed-band assumptions, tested elsewhere
        embed(scenes, checkpoint, output, chip_size_m=1140, batch_size=64, progress=False)
        crop(LANDSAT, scenes / "south.tif", Window(0, 240, 489, 203))  # the second run adds a scene
        embed(scenes, checkpoint, output, chip_size_m=1140, batch_size=64, progress=False)
    table = read_embeddings(output)
    assert {s for s in table.source} == {"north.tif", "south.tif"} and len(table) > 100
    # Sorted along the curve, which runs north-west, south-west, south-east, north-east: not the
    # first run's rows, then the second's.
    keys = gp.hilbert_keys(table.bounds)
    assert (np.diff(keys.astype(np.float64)) >= 0).all()
    changes = np.count_nonzero(np.asarray(table.source[1:]) != np.asarray(table.source[:-1]))
    assert changes >= 2
    metadata = pq.ParquetFile(output).metadata
    assert metadata.num_row_groups == 1 and metadata.num_rows == len(table) < gp.ROW_GROUP_MIN_ROWS
    report = gpv.check(str(output))
    assert gpv.failed(report) == []
    assert advice(report, "row group size")["level"] == "good"
    # One row group: nothing to skip, which the validator says is right for a small file.
    assert advice(report, "spatial ordering")["message"].startswith("the file is a single row group")


def _scattered(rows: int, seed: int = 0) -> Columns:
    """``rows`` 100 m chips of a square grid on UTM 31N, in random order."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(rows)))
    r, c = np.divmod(rng.permutation(rows), side)
    text = np.full(rows, "grid.tif", dtype=object)
    return Columns(
        embedding=rng.normal(size=(rows, 2)).astype(np.float32),
        path=np.array([f"grid.tif#r{a}c{b}" for a, b in zip(r, c)], dtype=object),
        source=text,
        modality=np.full(rows, "lores", dtype=object),
        bands=np.full(rows, "B04", dtype=object),
        gsd=np.full(rows, 10.0),
        bounds=np.column_stack([5e5 + c * 100.0, 4e6 - (r + 1) * 100.0, 5e5 + (c + 1) * 100.0, 4e6 - r * 100.0]),
        crs=np.full(rows, CRS.from_epsg(32631).to_wkt(), dtype=object),
        chip=np.full((rows, 4), -1, np.int64),
    )


def test_many_row_groups_are_well_ordered(tmp_path, monkeypatch):
    """The layout at archive scale, made small: row groups of at least 2048 rows for 40 000 rows
    (as 64k-row groups are for 1.3 million)."""
    monkeypatch.setattr(gp, "ROW_GROUP_MIN_ROWS", 2048)
    columns = _scattered(40_000)
    unsorted, laid_out = tmp_path / "unsorted.parquet", tmp_path / "laid-out.parquet"
    writer = gp.GeoParquetWriter(unsorted, 2, columns.crs[0], {"format": "salibi-embeddings"})
    for start in range(0, len(columns), 4096):
        writer.write(columns.select(np.arange(start, min(start + 4096, len(columns)))))
    writer.close()
    assert "not spatially ordered" in advice(gpv.check(str(unsorted)), "spatial ordering")["message"]

    assert gp.lay_out(unsorted, laid_out) == len(columns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["laid-out.parquet", "unsorted.parquet"]  # no spill left
    metadata = pq.ParquetFile(laid_out).metadata
    sizes = [metadata.row_group(k).num_rows for k in range(metadata.num_row_groups)]
    assert sum(sizes) == len(columns) and metadata.num_row_groups >= 5
    assert all(2048 <= size < 2 * 2048 for size in sizes), sizes
    report = gpv.check(str(laid_out))
    assert gpv.failed(report) == []
    ordering = advice(report, "spatial ordering")
    assert ordering["level"] == "good" and "well ordered" in ordering["message"], ordering
    # The same rows, each once.
    before = pq.read_table(unsorted, columns=["path"]).column("path").to_pylist()
    after = pq.read_table(laid_out, columns=["path"]).column("path").to_pylist()
    assert sorted(before) == sorted(after) and before != after
