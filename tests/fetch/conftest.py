"""A real STAC API (``rustac serve``) and a real file server of real pixels, started once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from http_server import FileServer

from .catalog import bigearthnet_items, hostile_items, spain_items, start_stac_server, write_catalog

#: The Spain chip's box, a little inside it (degrees).
SPAIN_BBOX = "-0.7815,38.0832,-0.7362,38.1285"
SPAIN_DATES = "2019-09-01/2019-09-30"


@dataclass
class Archive:
    """The servers and what they hold."""

    stac: str  # URL of the STAC API
    files: FileServer  # the assets' server
    items: dict[str, dict[str, Any]]  # id -> item JSON


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, shared) -> Iterator[Archive]:
    data = shared("data")
    shared("data", "bigearthnet")
    root = tmp_path_factory.mktemp("www")
    with FileServer(root) as files:
        spain = spain_items(root, files.base_url, data)
        items = spain + bigearthnet_items(root, files.base_url, data) + hostile_items(spain, files.base_url)
        catalog = write_catalog(tmp_path_factory.mktemp("stac"), items)
        process, url = start_stac_server(catalog)
        try:
            yield Archive(url, files, {i["id"]: i for i in items})
        finally:
            process.kill()
            process.wait()


def forget_downloads() -> None:
    """Empty GDAL's in-process cache of /vsicurl/ files, so a test's reads reach the server again."""
    from salibi.fetch.reading.vsicurl import _library

    lib = _library()
    if lib is not None:
        lib.VSICurlClearCache()


@pytest.fixture
def served(archive: Archive) -> Iterator[Archive]:
    """The archive with the file server's log, counts and faults and GDAL's cache cleared before and after."""
    archive.files.reset()
    forget_downloads()
    yield archive
    archive.files.reset()


def fetch_args(archive: Archive, out: Path, *extra: str, bbox: str = SPAIN_BBOX) -> list[str]:
    """``salibi fetch`` arguments for the test archive."""
    return ["fetch", "--stac", archive.stac, "--lores", "sentinel-2-l2a", "--sar", "sentinel-1-grd",
            "--bbox", bbox, "--datetime", SPAIN_DATES, "--jobs", "2", "--quiet", "-o", str(out), *extra]  # fmt: skip


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}
