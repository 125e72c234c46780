"""GeoParquet 1.1 output of ``salibi embed -o out.parquet``, written with pyarrow and shapely.

One row per embedding; columns::

    path, source, modality, bands   string
    gsd                             float64
    datetime                        timestamp[us, tz=UTC]   acquisition time (null: unknown)
    chip                            fixed_size_list<int64>[4]   col_off, row_off, width, height (-1: none)
    bbox                            struct<xmin, ymin, xmax, ymax: float64>   (GeoParquet 1.1 covering)
    geometry                        binary, WKB Polygon: the chip's footprint (null without georeference)
    embedding                       fixed_size_list<float32>[D]

File metadata: ``geo`` (GeoParquet 1.1: primary column ``geometry``, encoding WKB, geometry type
Polygon, ``crs`` as PROJJSON -- null for rows without georeference --, the ``bbox`` covering) and
``salibi`` (JSON: format, format_version, checkpoint_sha256, variant, model, chip_size_m,
stride_m, output CRS as WKT, the failures and the chips skipped for no-data). ``geopandas.read_parquet``
and DuckDB's spatial extension read it as it is.

A geometry column has one CRS, so an output whose rows lie in several CRSs (tiles in several UTM
zones) is one file per CRS: ``out.epsg-32614.parquet``, ``out.epsg-32615.parquet``, ... (a
single CRS: ``out.parquet`` itself); ``crs`` reprojects every footprint (densified, 8 points a
side) to one CRS and writes one file.

Files written before the ``datetime`` column are read (every row's time unknown) and continued
(the merge adds the column, null).

Laid out for archives (:func:`lay_out`, when a run's parts are merged): the rows sorted along a
Hilbert curve of their footprint centres (over the file's extent, a 2^16 x 2^16 grid; rows without
a footprint last), in row groups of :data:`ROW_GROUP_MIN_ROWS` to twice that many rows (the whole
file when smaller) split where the curve crosses coarse cell boundaries, zstd, with column statistics: a reader with a query window skips the row
groups whose ``bbox`` statistics miss it, as the GeoParquet distribution best practices ask.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.output.embeddings import Embeddings
from salibi.embed.records import TIME_DTYPE, Columns
from salibi.errors import DataFormatError, MissingInputError
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDINGS_FORMAT

__all__ = [
    "GEOPARQUET_VERSION",
    "GeoParquetWriter",
    "crs_tag",
    "iter_batches",
    "lay_out",
    "output_files",
    "parquet_keys",
    "parquet_meta",
    "read_geoparquet",
    "row_group_sizes",
]

GEOPARQUET_VERSION = "1.1.0"
_BBOX = ("xmin", "ymin", "xmax", "ymax")
_TEXT = ("path", "source", "modality", "bands")
_TIME = "datetime"
# Points per side of a footprint reprojected to another CRS (its edges may curve there).
_DENSIFY = 8
#: The fewest rows of a row group of a finished output (the whole file when it has fewer than
#: twice this): large enough to keep footers and requests few, small enough (below 2x, under the
#: 150 000 the best practices name) that a query window skips most of a large file.
ROW_GROUP_MIN_ROWS = 65_536
#: The zoom of the Hilbert curve that orders rows: 2^16 cells a side over the file's extent.
HILBERT_ZOOM = 16
_RANK = "__salibi_rank"


def _arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import shapely  # noqa: F401  (footprints)
    except ImportError:  # pragma: no cover - pinned in requirements.txt
        from salibi.errors import InputError

        raise InputError("GeoParquet output needs pyarrow and shapely: pip install 'salibi[geoparquet]'") from None
    return pa, pq


def crs_tag(wkt: str) -> str:
    """A file-name tag for a CRS: ``epsg-32614``, ``crs-<8 hex>`` without an EPSG code, ``no-crs``."""
    if not wkt:
        return "no-crs"
    from rasterio.crs import CRS

    code = CRS.from_wkt(wkt).to_epsg()
    return f"epsg-{code}" if code else "crs-" + hashlib.sha256(wkt.encode()).hexdigest()[:8]


def tagged_path(base: Path, tag: str) -> Path:
    """The file of the rows on the CRS tagged ``tag`` (:func:`crs_tag`) when an output holds several."""
    return base.with_name(f"{base.stem}.{tag}{base.suffix}")


def parquet_meta(path: Path) -> dict[str, Any] | None:
    """The ``salibi`` metadata of a Parquet file, or None when it has none (not ours)."""
    _, pq = _arrow()
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as err:
        raise DataFormatError(f"{path}: cannot be read as Parquet ({gdal_reason(err)})") from None
    raw = metadata.get(b"salibi")
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:  # someone else's "salibi" key
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == EMBEDDINGS_FORMAT else None


def output_files(base: Path) -> list[Path]:
    """The files of the output ``base``: ``base`` itself if it exists, and the per-CRS files
    ``base-stem.<tag>.parquet`` whose metadata names ``base`` as their output."""
    files = [base] if base.exists() else []
    for candidate in sorted(base.parent.glob(f"{glob.escape(base.stem)}.*{glob.escape(base.suffix)}")):
        if candidate != base and candidate.is_file():
            meta = parquet_meta(candidate)
            if meta is not None and meta.get("output") == base.name:
                files.append(candidate)
    return files


def parquet_keys(path: Path) -> list[tuple[str, str]]:
    """``(path, modality)`` of every row."""
    _, pq = _arrow()
    table = pq.read_table(path, columns=["path", "modality"])
    return list(zip(table.column("path").to_pylist(), table.column("modality").to_pylist()))


def _schema(dim: int, crs_wkt: str, salibi: dict[str, Any]) -> Any:
    pa, _ = _arrow()
    fields = [pa.field(name, pa.string(), nullable=False) for name in _TEXT] + [
        pa.field("gsd", pa.float64()),
        pa.field(_TIME, _time_type()),
        pa.field("chip", pa.list_(pa.int64(), 4)),
        pa.field("bbox", pa.struct([(k, pa.float64()) for k in _BBOX])),
        pa.field("geometry", pa.binary()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
    ]
    crs: Any = None
    if crs_wkt:
        from rasterio.crs import CRS

        crs = CRS.from_wkt(crs_wkt).to_dict(projjson=True)
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": crs,
                "covering": {"bbox": {k: ["bbox", k] for k in _BBOX}},
            }
        },
    }
    # Strict JSON (DuckDB and others parse it): NaN -- whole tiles, no chip grid -- is written as null.
    plain = {
        k: None if isinstance(v, float) and math.isnan(v) else v for k, v in {**salibi, "crs_wkt": crs_wkt}.items()
    }
    return pa.schema(fields, metadata={"geo": json.dumps(geo), "salibi": json.dumps(plain, allow_nan=False)})


def footprints(columns: Columns, crs_wkt: str) -> Any:
    """The rows' footprint polygons on ``crs_wkt`` (reprojected from each row's own CRS, densified),
    None where a row has no georeference."""
    import shapely

    b = columns.bounds
    polygons = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    if not crs_wkt:
        return polygons
    from rasterio.crs import CRS
    from rasterio.warp import transform

    target = CRS.from_wkt(crs_wkt)
    for source in set(columns.crs.tolist()) - {crs_wkt, ""}:
        rows = np.flatnonzero((columns.crs == source) & ~shapely.is_missing(polygons))
        if not len(rows) or CRS.from_wkt(source) == target:
            continue
        side = np.maximum(b[rows, 2] - b[rows, 0], b[rows, 3] - b[rows, 1]) / _DENSIFY
        dense = shapely.segmentize(polygons[rows], side)
        xy = shapely.get_coordinates(dense)
        xs, ys = transform(CRS.from_wkt(source), target, xy[:, 0].tolist(), xy[:, 1].tolist())
        polygons[rows] = shapely.set_coordinates(dense, np.column_stack([xs, ys]))
    if (columns.crs == "").any():  # not georeferenced: no footprint on any CRS
        polygons[columns.crs == ""] = None
    return polygons


def to_table(columns: Columns, crs_wkt: str, schema: Any) -> Any:
    """``columns`` as an Arrow table of ``schema`` with footprints on ``crs_wkt``."""
    import shapely

    pa, _ = _arrow()
    polygons = footprints(columns, crs_wkt)
    missing = shapely.is_missing(polygons)
    box = shapely.bounds(polygons)  # NaN rows for missing geometries
    bbox = pa.StructArray.from_arrays(
        [pa.array(box[:, k], pa.float64()) for k in range(4)], names=list(_BBOX), mask=pa.array(missing)
    )
    n, dim = columns.embedding.shape
    arrays = [pa.array(getattr(columns, name).tolist(), pa.string()) for name in _TEXT] + [
        pa.array(columns.gsd, pa.float64()),
        pa.array(np.asarray(columns.datetime, TIME_DTYPE), _time_type()),  # NaT -> null
        pa.FixedSizeListArray.from_arrays(pa.array(columns.chip.reshape(-1), pa.int64()), 4),
        bbox,
        pa.array(shapely.to_wkb(polygons).tolist(), pa.binary()),
        pa.FixedSizeListArray.from_arrays(pa.array(columns.embedding.reshape(-1), pa.float32()), dim),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


class GeoParquetWriter:
    """One GeoParquet file written in row groups: earlier files' batches as they are, new rows converted."""

    def __init__(self, path: Path, dim: int, crs_wkt: str, salibi: dict[str, Any]) -> None:
        _, pq = _arrow()
        self.crs_wkt, self.schema = crs_wkt, _schema(dim, crs_wkt, salibi)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def copy(self, path: Path) -> None:
        """Append every row of an earlier file of this output (same CRS and width)."""
        _, pq = _arrow()
        found = pq.read_schema(path)
        before_time = _TIME not in found.names and found.equals(_without_time(self.schema), check_metadata=False)
        if not (before_time or found.equals(self.schema, check_metadata=False)):
            raise DataFormatError(f"{path}: its columns differ from this salibi's GeoParquet layout; choose another -o")
        for batch in iter_batches(path):
            self.writer.write_batch(_with_time(batch, self.schema) if before_time else batch)

    def write(self, columns: Columns) -> None:
        if len(columns):
            self.writer.write_table(to_table(columns, self.crs_wkt, self.schema))

    def close(self) -> None:
        self.writer.close()


def _time_type() -> Any:
    pa, _ = _arrow()
    return pa.timestamp("us", tz="UTC")


def _without_time(schema: Any) -> Any:
    """``schema`` as written before the ``datetime`` column."""
    return schema.remove(schema.get_field_index(_TIME))


def _with_time(batch: Any, schema: Any = None) -> Any:
    """A batch or table of a file written before the ``datetime`` column, with it (null), in
    ``schema``'s order (by default its own, the column after ``gsd``)."""
    pa, _ = _arrow()
    if schema is None:
        schema = batch.schema.insert(batch.schema.get_field_index("gsd") + 1, pa.field(_TIME, _time_type()))
    columns = {name: batch.column(name) for name in batch.schema.names}
    columns[_TIME] = pa.nulls(batch.num_rows, _time_type())
    arrays = [columns[name] for name in schema.names]
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(arrays, schema=schema)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _times(column: Any) -> np.ndarray:
    """A ``datetime`` column as (N,) datetime64[us] in UTC, NaT where null."""
    if not len(column):
        return np.zeros(0, TIME_DTYPE)
    return np.asarray(column.to_numpy(), TIME_DTYPE)


def iter_batches(path: Path, batch_rows: int = 16384) -> Iterator[Any]:
    """The record batches of a file, ``batch_rows`` at a time."""
    _, pq = _arrow()
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)


def row_group_sizes(keys: np.ndarray) -> list[int]:
    """The row groups of a file whose rows have the sorted Hilbert ``keys``: one when fewer than
    twice :data:`ROW_GROUP_MIN_ROWS`, else groups of ``ROW_GROUP_MIN_ROWS`` to twice that many
    rows, each split where the curve crosses the coarsest cell boundary it can (so a row group is
    a few whole cells of the grid, whose bounding boxes overlap least)."""
    keys = np.asarray(keys, np.uint64)
    rows, least = len(keys), ROW_GROUP_MIN_ROWS
    sizes, start = [], 0
    while rows - start >= 2 * least:
        low, high = start + least, min(start + 2 * least, rows - least)  # where the next group may end
        crossing = keys[low - 1 : high] ^ keys[low : high + 1]  # highest differing bit: the coarser boundary
        level = np.floor(np.log2(np.maximum(crossing.astype(np.float64), 0.5)))
        end = low + int(np.argmax(level))
        sizes.append(end - start)
        start = end
    return [*sizes, rows - start]


def hilbert_keys(bounds: np.ndarray) -> np.ndarray:
    """uint64 position of each footprint centre (``bounds`` (N, 4), NaN: none, last) along the
    Hilbert curve of a 2^HILBERT_ZOOM grid over their extent (the PMTiles tile-id curve)."""
    from salibi.align.pmtiles.web_mercator import first_id, zxy_to_tileid

    bounds = np.asarray(bounds, np.float64).reshape(-1, 4)
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    placed = np.isfinite(cx) & np.isfinite(cy)
    keys = np.full(len(bounds), np.iinfo(np.uint64).max, np.uint64)
    if placed.any():
        side = (1 << HILBERT_ZOOM) - 1
        cells = []
        for v in (cx[placed], -cy[placed]):  # y from the north, as tiles count
            low, high = float(v.min()), float(v.max())
            cells.append(np.rint((v - low) / (high - low if high > low else 1.0) * side).astype(np.int64))
        keys[placed] = zxy_to_tileid(HILBERT_ZOOM, cells[0], cells[1]) - np.uint64(first_id(HILBERT_ZOOM))
    return keys


def _bbox_bounds(column: Any) -> np.ndarray:
    """(N, 4) float64 of a ``bbox`` struct column, NaN where null."""
    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    out = np.column_stack([array.field(k).to_numpy(zero_copy_only=False) for k in _BBOX]).astype(np.float64)
    out[np.asarray(array.is_null())] = np.nan
    return out.reshape(-1, 4)


def lay_out(unsorted: Path, target: Path) -> int:
    """Write the rows of ``unsorted`` (a GeoParquet file of this layout) to ``target`` sorted along
    the Hilbert curve of their footprint centres, in :func:`row_group_sizes` row groups (module
    docstring). Beyond one row group, rows pass through one spill file per row group beside
    ``target`` (``<target>.group-K.tmp``, removed), so memory holds one row group at a time.
    Returns the number of rows."""
    pa, pq = _arrow()
    source = pq.ParquetFile(unsorted)
    rows = source.metadata.num_rows
    schema = source.schema_arrow
    keys = hilbert_keys(_bbox_bounds(pq.read_table(unsorted, columns=["bbox"]).column("bbox")))
    order = np.argsort(keys, kind="stable")
    sizes = row_group_sizes(keys[order])
    writer = pq.ParquetWriter(target, schema, compression="zstd")
    spills: list[Path] = []
    try:
        if len(sizes) == 1:
            table = source.read()
            writer.write_table(table.take(pa.array(order)), row_group_size=max(rows, 1))
            return rows
        rank = np.empty(rows, np.int64)
        rank[order] = np.arange(rows)
        starts = np.cumsum([0, *sizes[:-1]])
        group = np.searchsorted(starts, rank, side="right") - 1
        spilled = schema.append(pa.field(_RANK, pa.int64()))
        spills = [target.with_name(f"{target.name}.group-{k}.tmp") for k in range(len(sizes))]
        sinks = [pa.ipc.new_file(str(path), spilled) for path in spills]
        try:
            at = 0
            for batch in source.iter_batches(batch_size=16384):
                which = group[at : at + batch.num_rows]
                ranks = rank[at : at + batch.num_rows]
                at += batch.num_rows
                for k in np.unique(which).tolist():
                    picked = np.flatnonzero(which == k)
                    part = batch.take(pa.array(picked))
                    sinks[k].write_batch(
                        pa.RecordBatch.from_arrays([*part.columns, pa.array(ranks[picked])], schema=spilled)
                    )
        finally:
            for sink in sinks:
                sink.close()
        for path in spills:
            with pa.memory_map(str(path)) as mapped:
                table = pa.ipc.open_file(mapped).read_all()
            table = table.take(pa.array(np.argsort(table.column(_RANK).to_numpy()))).drop_columns([_RANK])
            writer.write_table(table, row_group_size=table.num_rows)
            path.unlink()
        return rows
    finally:
        writer.close()
        for path in spills:
            path.unlink(missing_ok=True)


def read_geoparquet(path: Path) -> Embeddings:
    """Read a GeoParquet output (the file, or every per-CRS file of the output ``path``) into memory."""
    pa, pq = _arrow()
    files = output_files(path) if path.suffix else []
    if not files and path.is_file():
        files = [path]
    if not files:
        raise MissingInputError(f"{path}: no such embeddings file (nor per-CRS files {path.stem}.*{path.suffix})")
    metas = []
    for file in files:
        meta = parquet_meta(file)
        if meta is None:
            raise DataFormatError(f"{file}: a Parquet file without salibi metadata: not a salibi embed output")
        metas.append(meta)
    tables = [pq.read_table(f) for f in files]
    crs = [m["crs_wkt"] for m, t in zip(metas, tables) for _ in range(t.num_rows)]
    # Files written before the datetime column: their rows' times unknown.
    tables = [t if _TIME in t.column_names else _with_time(t) for t in tables]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    dim = table.schema.field("embedding").type.list_size
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    bounds = _bbox_bounds(table.column("bbox"))
    failed = {p: r for m in metas for p, r in m.get("failed", [])}
    skipped = {p: r for m in metas for p, r in m.get("skipped", [])}
    return Embeddings(
        embedding=np.asarray(flat, np.float32).reshape(-1, dim),
        path=table.column("path").to_pylist(),
        source=table.column("source").to_pylist(),
        modality=table.column("modality").to_pylist(),
        bands=table.column("bands").to_pylist(),
        gsd=table.column("gsd").to_numpy(),
        bounds=bounds,
        crs=crs,
        chip=np.asarray(table.column("chip").combine_chunks().flatten().to_numpy(), np.int64).reshape(-1, 4),
        datetime=_times(table.column(_TIME)),
        failed_path=list(failed),
        failed_reason=list(failed.values()),
        skipped_path=list(skipped),
        skipped_reason=list(skipped.values()),
        attrs={k: v for k, v in metas[0].items() if k not in ("failed", "skipped")},
    )
