"""Reading the area's window of each asset and writing it as a GeoTIFF, resumably.

Each file of the plan (:class:`FileJob`) is done once: a file that exists is complete (files
are written under a temporary name, flushed and renamed: :mod:`salibi.fileio`), so a killed
fetch run again transfers only what is missing, and a complete folder transfers nothing.

One file: the asset's URL is signed when the catalog wants it (:mod:`salibi.fetch.stac.catalogs`); a one-byte
range request checks that it is there and how large it is, honouring ``Retry-After`` on 429 and
503 (GDAL's own retries do not); GDAL then opens it as a cloud-optimised GeoTIFF over HTTP range
requests (``/vsicurl/``), and only the pixels of the area's window are read -- on the asset's own
grid, nothing resampled -- and written with the bands' names as band descriptions (what
``salibi align`` reads), the STAC item, collection and asset as tags, and the item's
``datetime`` as the acquisition time (:func:`salibi.rasters.acquisition_tags`: the TIFF DateTime
tag and ``ACQUISITION_DATETIME``, which ``salibi embed`` reads into its ``datetime`` column). Failures that may pass (429, 5xx, refused or dropped connections, a body
cut short, timeouts) are tried again with exponential backoff, at most ``tries`` times in all.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, InputError, SalibiError
from salibi.fetch.hrefs import MAX_REDIRECTS, gdal_path
from salibi.fetch.planning.assets import AssetRead
from salibi.fetch.reading import vsicurl
from salibi.fetch.stac.catalogs import Catalog, sign_href
from salibi.fileio import staging_file
from salibi.rasters import acquisition_tags

#: Most pixels (per band) read from one asset: a window larger than this is a too large area.
MAX_WINDOW_PIXELS = 2**28
#: Longest wait between tries, seconds (a Retry-After beyond it is cut to it).
MAX_WAIT_S = 120.0
#: Seconds to connect, and to wait for bytes of an answer.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10, 60
_CODE = re.compile(r"HTTP response code: (\d{3})")
_PASSING = ("Couldn't connect", "Connection refused", "Timeout", "timed out", "transfer closed", "Recv failure",
            "Empty reply", "Connection reset", "SSL", "Could not resolve")  # fmt: skip


class FetchError(SalibiError, ConnectionError):
    """An asset that could not be read, after every try that made sense."""


class _Passing(Exception):
    """A failure that may pass: try again (after ``retry_after`` seconds when the server said so)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FileJob:
    """One GeoTIFF to write: the window ``bbox`` (lon/lat) of ``asset`` of item ``item``, acquired
    at ``acquired`` (the item's ``datetime``, UTC; None: not known)."""

    path: Path
    relative: str  # path in the fetch folder
    modality: str
    collection: str
    item: str
    asset: AssetRead
    bbox: tuple[float, float, float, float]
    acquired: datetime | None = None

    @property
    def where(self) -> str:
        return f"{self.collection} item {self.item} asset {self.asset.key}"


@dataclass(frozen=True)
class FileResult:
    """What one job did: the file's size, bytes downloaded (None: not counted), the asset's size."""

    relative: str
    bytes: int
    transferred: int | None
    asset_bytes: int | None
    skipped: bool  # it was there already


def gdal_options(tries: int, allow_s3: bool) -> dict[str, str]:
    """GDAL configuration of every read: no directory listings, timeouts, GDAL's own retries."""
    options = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_TIMEOUT": str(READ_TIMEOUT_S),
        "GDAL_HTTP_CONNECTTIMEOUT": str(CONNECT_TIMEOUT_S),
        "GDAL_HTTP_MAX_RETRY": str(max(0, tries - 1)),
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        "GDAL_HTTP_USERAGENT": "salibi-fetch",
        **vsicurl.GDAL_OPTIONS,
    }
    if allow_s3:
        options["AWS_REQUEST_PAYER"] = "requester"
    return options


def transfer(job: FileJob, catalog: Catalog, tries: int, allow_s3: bool, backoff_s: float = 1.0) -> FileResult:
    """Write ``job``'s GeoTIFF unless it exists; :class:`FetchError` when every try failed."""
    if job.path.exists():
        return FileResult(job.relative, job.path.stat().st_size, 0, None, skipped=True)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(max(1, tries)):
        try:
            return _transfer_once(job, catalog, tries, allow_s3, last_try=attempt + 1 >= tries)
        except _Passing as err:
            last = str(err)
            if attempt + 1 >= tries:
                break
            wait = err.retry_after if err.retry_after is not None else backoff_s * 2**attempt
            time.sleep(min(max(wait, 0.0), MAX_WAIT_S))
    raise FetchError(
        f"{job.where}: {last} (tried {max(1, tries)} time(s)); run the same command again later: "
        "what was fetched is kept"
    )


def _transfer_once(job: FileJob, catalog: Catalog, tries: int, allow_s3: bool, last_try: bool) -> FileResult:
    import rasterio

    url = _signed(job, catalog)
    size, probed = _check_reachable(job, url) if url.lower().startswith(("http://", "https://")) else (None, 0)
    path = gdal_path(url)
    before = vsicurl.downloaded(path)
    try:
        with rasterio.Env(**gdal_options(tries, allow_s3)), rasterio.open(path) as opened, _on_map(opened) as dataset:
            window = _window(job, dataset)
            data = dataset.read(list(job.asset.indexes), window=window)
            profile = _profile(dataset, window, data)
            with staging_file(job.path) as staging:
                with rasterio.open(staging, "w", **profile) as out:
                    out.write(data)
                    out.descriptions = job.asset.bands
                    out.update_tags(stac_item=job.item, stac_collection=job.collection, stac_asset=job.asset.key)
                    if job.acquired is not None:
                        out.update_tags(**acquisition_tags(job.acquired))
    except rasterio.errors.RasterioIOError as err:
        error = _classified(job, str(err))
        if isinstance(error, DataFormatError) and not last_try:
            # A body cut short reads as a damaged TIFF: forget the bytes kept and read it again
            # (a file that is really damaged fails the same way every time, then this is raised).
            vsicurl.forget(path)
            raise _Passing(str(error).split(": ", 1)[-1]) from None
        raise error from None
    after = vsicurl.downloaded(path)
    moved = after - before + probed if after is not None and before is not None else None
    return FileResult(job.relative, job.path.stat().st_size, moved, size, skipped=False)


def _signed(job: FileJob, catalog: Catalog) -> str:
    try:
        return sign_href(catalog, job.asset.href)
    except SalibiError:
        raise
    except Exception as err:  # the signing service: network errors pass, like any other
        raise _Passing(f"could not sign the URL ({type(err).__name__}: {str(err)[:120]})") from None


def _check_reachable(job: FileJob, url: str) -> tuple[int | None, int]:
    """The asset's size from a one-byte range request, and the bytes that read; 429/5xx and
    connection failures pass."""
    import requests

    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    try:
        with session.get(
            url,
            headers={"Range": "bytes=0-0", "User-Agent": "salibi-fetch"},
            timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            stream=True,
        ) as answer:
            status = answer.status_code
            headers = answer.headers
            probed = len(answer.raw.read(1024, decode_content=False))
    except requests.TooManyRedirects:
        raise FetchError(f"{job.where}: more than {MAX_REDIRECTS} redirects; refused") from None
    except requests.RequestException as err:
        raise _Passing(_short(err)) from None
    finally:
        session.close()
    if status in (429, 500, 502, 503, 504):
        raise _Passing(f"HTTP {status}", _retry_after(headers.get("Retry-After")))
    if status >= 400:
        raise FetchError(
            f"{job.where}: HTTP {status} from the asset's URL; the catalog names a file that cannot be read"
        )
    found = re.search(r"/(\d+)\s*$", headers.get("Content-Range", ""))
    if found:
        return int(found[1]), probed
    length = headers.get("Content-Length")
    return (int(length) if status == 200 and length and length.isdigit() else None), probed


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _short(err: BaseException) -> str:
    text = str(err)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return f"{type(err).__name__}: {text.splitlines()[0][:160]}" if text else type(err).__name__


def _classified(job: FileJob, message: str) -> Exception:
    found = _CODE.search(message)
    if found and (found[1] == "429" or found[1].startswith("5")):
        return _Passing(f"HTTP {found[1]}")
    if any(text in message for text in _PASSING):
        return _Passing(message.splitlines()[0][:200])
    if found:
        return FetchError(
            f"{job.where}: HTTP {found[1]} from the asset's URL; the catalog names a file that cannot be read"
        )
    return DataFormatError(f"{job.where}: not a readable raster ({message.splitlines()[0][:200]})")


@contextmanager
def _on_map(dataset: Any) -> Iterator[Any]:
    """``dataset`` itself when it lies on a map grid; a raster georeferenced by ground control
    points only (Sentinel-1 GRD in radar geometry) as a GDAL warped view onto their CRS, whose
    reads fetch only the source blocks the window needs (nearest neighbour: no pixel is blended)."""
    gcps, gcp_crs = dataset.gcps
    if dataset.crs is not None or not gcps or gcp_crs is None:
        yield dataset
        return
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with WarpedVRT(dataset, crs=gcp_crs, resampling=Resampling.nearest) as warped:
        yield warped


def _window(job: FileJob, dataset: Any) -> Any:
    """The window of ``dataset`` over the job's box, rounded outward to whole pixels."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window

    if dataset.crs is None or dataset.transform.is_identity:
        raise DataFormatError(
            f"{job.where}: has no georeference on a map grid (GCPs or none); it cannot be cut to the area"
        )
    if max(job.asset.indexes) > dataset.count:
        raise DataFormatError(
            f"{job.where}: has {dataset.count} band(s) but the catalog puts band {max(job.asset.indexes)} in it"
        )
    left, bottom, right, top = transform_bounds("EPSG:4326", dataset.crs, *job.bbox, densify_pts=21)
    inverse = ~dataset.transform
    cols, rows = zip(*(inverse * (x, y) for x in (left, right) for y in (bottom, top)))
    col0, row0 = max(0, math.floor(min(cols) + 1e-6)), max(0, math.floor(min(rows) + 1e-6))
    col1, row1 = min(dataset.width, math.ceil(max(cols) - 1e-6)), min(dataset.height, math.ceil(max(rows) - 1e-6))
    if col1 <= col0 or row1 <= row0:
        raise DataFormatError(f"{job.where}: does not cover the area its item's footprint says it covers")
    if (col1 - col0) * (row1 - row0) > MAX_WINDOW_PIXELS:
        raise InputError(
            f"{job.where}: the area is {col1 - col0} x {row1 - row0} px of this asset, more than "
            f"{MAX_WINDOW_PIXELS} px; fetch a smaller --bbox or cut it into --tiles"
        )
    return Window(col0, row0, col1 - col0, row1 - row0)


def _profile(dataset: Any, window: Any, data: Any) -> dict[str, Any]:
    count, height, width = data.shape
    tiled = width >= 256 and height >= 256
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": dataset.crs,
        "transform": dataset.window_transform(window),
        "nodata": dataset.nodata,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile
