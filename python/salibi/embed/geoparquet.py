"""GeoParquet 1.1 output of ``salibi embed -o out.parquet``, written with pyarrow and shapely.

One row per embedding; columns::

    path, source, modality, bands   string
    gsd                             float64
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

from salibi.embed.embeddings import Embeddings
from salibi.embed.records import Columns
from salibi.errors import DataFormatError, MissingInputError
from salibi.rasters import gdal_reason
from salibi.vocabulary import EMBEDDINGS_FORMAT

__all__ = [
    "GEOPARQUET_VERSION",
    "GeoParquetWriter",
    "crs_tag",
    "iter_batches",
    "output_files",
    "parquet_keys",
    "parquet_meta",
    "read_geoparquet",
]

GEOPARQUET_VERSION = "1.1.0"
_BBOX = ("xmin", "ymin", "xmax", "ymax")
_TEXT = ("path", "source", "modality", "bands")
# Points per side of a footprint reprojected to another CRS (its edges may curve there).
_DENSIFY = 8


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
        if not pq.read_schema(path).equals(self.schema, check_metadata=False):
            raise DataFormatError(f"{path}: its columns differ from this salibi's GeoParquet layout; choose another -o")
        for batch in iter_batches(path):
            self.writer.write_batch(batch)

    def write(self, columns: Columns) -> None:
        if len(columns):
            self.writer.write_table(to_table(columns, self.crs_wkt, self.schema))

    def close(self) -> None:
        self.writer.close()


def iter_batches(path: Path, batch_rows: int = 16384) -> Iterator[Any]:
    """The record batches of a file, ``batch_rows`` at a time."""
    _, pq = _arrow()
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)


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
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    dim = table.schema.field("embedding").type.list_size
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    bbox = table.column("bbox").combine_chunks()
    bounds = np.column_stack([bbox.field(k).to_numpy(zero_copy_only=False) for k in _BBOX]).astype(np.float64)
    bounds[np.asarray(bbox.is_null())] = np.nan
    failed = {p: r for m in metas for p, r in m.get("failed", [])}
    skipped = {p: r for m in metas for p, r in m.get("skipped", [])}
    return Embeddings(
        embedding=np.asarray(flat, np.float32).reshape(-1, dim),
        path=table.column("path").to_pylist(),
        source=table.column("source").to_pylist(),
        modality=table.column("modality").to_pylist(),
        bands=table.column("bands").to_pylist(),
        gsd=table.column("gsd").to_numpy(),
        bounds=bounds.reshape(-1, 4),
        crs=crs,
        chip=np.asarray(table.column("chip").combine_chunks().flatten().to_numpy(), np.int64).reshape(-1, 4),
        failed_path=list(failed),
        failed_reason=list(failed.values()),
        skipped_path=list(skipped),
        skipped_reason=list(skipped.values()),
        attrs={k: v for k, v in metas[0].items() if k not in ("failed", "skipped")},
    )
