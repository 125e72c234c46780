"""Payloads of a tortilla read in place: GeoTIFF through GDAL's ``/vsisubfile/``, HDF5 through h5py.

Both readers take an :class:`~salibi.eval.geobench2.tortilla.Entry` whose byte range was checked against
its file when the footer was read, and check the payload's own promises before decoding it:
a raster or dataset larger than :data:`MAX_PAYLOAD_BYTES` decoded is refused (a hostile file can
declare any size), and anything GDAL or HDF5 cannot decode becomes one
:class:`~salibi.errors.DataFormatError` line naming the file, the item and its bytes.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from salibi.errors import DataFormatError
from salibi.eval.geobench2.tortilla import Entry, read_span
from salibi.rasters import gdal_reason, round_significant

__all__ = ["MAX_PAYLOAD_BYTES", "Raster", "read_geotiff", "read_hdf5"]

#: Largest decoded payload accepted (GEO-Bench-2's largest, a 12-band 512 x 512 float, is 12 MiB).
MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024
_FIX = "re-download the file"


@dataclass
class Raster:
    """A decoded GeoTIFF payload: ``data`` (bands, rows, cols) and its GSD in metres (None when the
    payload has no usable georeference)."""

    data: np.ndarray
    gsd: float | None


def _check_size(shape: tuple[int, ...], dtype: Any, entry: Entry) -> None:
    if any(n <= 0 for n in shape):
        raise DataFormatError(f"{entry.where}: payload of shape {shape}; {_FIX}")
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size > MAX_PAYLOAD_BYTES:
        raise DataFormatError(
            f"{entry.where}: payload of shape {shape} ({size} bytes decoded) is larger than the "
            f"{MAX_PAYLOAD_BYTES}-byte limit; {_FIX}"
        )


def read_geotiff(entry: Entry, bands: list[int] | None = None) -> Raster:
    """The GeoTIFF ``entry`` (its 1-based ``bands``, default all) read in place."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if entry.file_format != "GTiff":
        raise DataFormatError(f"{entry.where} is {entry.file_format}, expected a GTiff payload; {_FIX}")
    try:
        with warnings.catch_warnings(), rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # so2sat's payloads carry none
            ds = rasterio.open(entry.vsisubfile)
            with ds:
                wanted = bands or list(range(1, ds.count + 1))
                if any(b < 1 or b > ds.count for b in wanted):
                    raise DataFormatError(f"{entry.where}: has {ds.count} band(s), expected at least {max(wanted)}")
                _check_size((len(wanted), ds.height, ds.width), ds.dtypes[0], entry)
                data = ds.read(wanted)
                gsd = _gsd(ds)
    except DataFormatError:
        raise
    except (RasterioError, OSError, ValueError) as err:
        raise DataFormatError(f"{entry.where} is not a readable GeoTIFF ({gdal_reason(err)}); {_FIX}") from None
    return Raster(data, gsd)


def _gsd(ds: Any) -> float | None:
    from salibi.rasters import pixel_size_m

    if ds.crs is None or ds.transform.is_identity:
        return None
    try:
        gsd = pixel_size_m(ds.crs, ds.transform, ds.width, ds.height)
    except (ValueError, ArithmeticError, TypeError, AttributeError):
        return None
    return round_significant(gsd, 3) if math.isfinite(gsd) and gsd > 0 else None


def read_hdf5(entry: Entry, dataset: str = "data", index: int | None = None) -> np.ndarray:
    """Dataset ``dataset`` of the HDF5 payload ``entry`` (only ``[index]`` along the first axis
    when given: one time step of a (T, C, H, W) series)."""
    import h5py

    if entry.file_format != "HDF5":
        raise DataFormatError(f"{entry.where} is {entry.file_format}, expected an HDF5 payload; {_FIX}")
    data = read_span(entry.path, entry.offset, entry.length, entry.where)
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            node = f.get(dataset)
            if not isinstance(node, h5py.Dataset):
                raise DataFormatError(f"{entry.where}: the HDF5 payload has no dataset {dataset!r}; {_FIX}")
            shape = tuple(node.shape)
            if index is None:
                _check_size(shape, node.dtype, entry)
                return np.asarray(node[()])
            if not shape or not -shape[0] <= index < shape[0]:
                raise DataFormatError(f"{entry.where}: dataset {dataset!r} of shape {shape} has no step {index}")
            _check_size(shape[1:], node.dtype, entry)
            return np.asarray(node[index])
    except DataFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"{entry.where} is not a readable HDF5 payload ({gdal_reason(err)}); {_FIX}") from None
