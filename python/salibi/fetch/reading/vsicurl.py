"""GDAL's ``/vsicurl/`` bookkeeping: bytes downloaded per URL, and the bytes it keeps of a URL.

rasterio exposes neither GDAL's network counters (``VSINetworkStatsGetAsSerializedJSON``) nor its
cache of downloaded ranges (``VSICurlPartialClearCache``), so both are reached in the GDAL library
rasterio loaded, through ``ctypes``: the one that made the requests. Counting is switched on with
the configuration option ``CPL_VSIL_NETWORK_STATS_ENABLED`` (:data:`GDAL_OPTIONS`). Where that
library cannot be found (a rasterio built against a system GDAL elsewhere) the counts are None and
nothing is forgotten; nothing else changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import json
import os
import threading
from typing import Any

#: GDAL configuration that turns the counters on.
GDAL_OPTIONS = {"CPL_VSIL_NETWORK_STATS_ENABLED": "YES"}
_LOCK = threading.Lock()


@functools.cache
def _library() -> Any:
    try:
        import rasterio
    except ImportError:  # pragma: no cover - rasterio is a dependency
        return None
    folder = os.path.dirname(rasterio.__file__)
    candidates = sorted(glob.glob(os.path.join(folder, "..", "rasterio.libs", "libgdal*.so*")))
    candidates += sorted(glob.glob(os.path.join(folder, ".dylibs", "libgdal*.dylib")))
    found = ctypes.util.find_library("gdal")
    if found:
        candidates.append(found)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
            lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
            lib.VSIFree.argtypes = [ctypes.c_void_p]
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
        except (OSError, AttributeError):
            continue
        return lib
    return None


def _stats() -> dict[str, Any] | None:
    lib = _library()
    if lib is None:
        return None
    with _LOCK:
        pointer = lib.VSINetworkStatsGetAsSerializedJSON(None)
        if not pointer:
            return None
        try:
            text = ctypes.string_at(pointer).decode("utf-8", errors="replace")
        finally:
            lib.VSIFree(pointer)
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def downloaded(gdal_path: str) -> int | None:
    """Bytes GDAL has downloaded for ``gdal_path`` (``/vsicurl/URL``) in this process so far;
    None when the counters cannot be read."""
    stats = _stats()
    if stats is None:
        return None
    total = 0
    for handler in (stats.get("handlers") or {}).values():
        files = handler.get("files") or {} if isinstance(handler, dict) else {}
        entry = files.get(gdal_path) if isinstance(files, dict) else None
        if isinstance(entry, dict):
            for method in (entry.get("methods") or {}).values():
                if isinstance(method, dict):
                    total += int(method.get("downloaded_bytes", 0) or 0)
    return total


def forget(gdal_path: str) -> None:
    """Drop what GDAL keeps of ``gdal_path`` (its size, its header, the ranges read): the next open
    reads it from the server again, not a body that was cut short."""
    lib = _library()
    if lib is not None:
        lib.VSICurlPartialClearCache(gdal_path.encode("utf-8"))
