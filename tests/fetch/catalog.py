"""The tests' STAC catalog: items with real footprints and real pixels, served for real.

Assets are cloud-optimised GeoTIFFs written with rasterio from the real rasters in ``../shared/``
into the file server's folder; items are STAC 1.0 JSON naming them by URL, loaded into
``rustac serve`` (in-memory backend) by :func:`start_stac_server`.

- **Spain** (Sen1Floods11 chip Spain_7370579, EPSG:4326, 512 x 512 px of ~10 m): four Sentinel-2
  scenes cut from the chip's windows -- ``west`` (columns 0-320, cloud 4 %), ``east`` (200-512,
  2 %), ``core`` (a 200 px square inside both, 1 %) and ``cloudy`` (the whole chip, 55 %) -- and
  three Sentinel-1 scenes of the whole chip: ``a`` one day after ``west``, ``b`` one day before
  ``east`` and ``ew`` (an EW-mode scene on ``west``'s very day, which the IW filter drops). The
  footprints are windows of the real chip; the dates are the tests' (one per pairing case).
  ``S1_spain_gcps`` (collection ``sentinel-1-grd-gcps``) is scene ``a`` as Earth Search's GRD files
  are: no geotransform, ground control points only. Sentinel-2 items carry Earth Search's keys (``red``, ...) with a ``red-jp2`` twin that is not
  there and an 8-bit ``visual`` asset, so only band metadata picks the right file.
- **BigEarthNet** (UTM 35N): two real Sentinel-1/2 pairs, 20 km apart, with their real dates
  (S2 2017-09-24 / S1 2017-09-25 and S2 2018-02-04 / S1 2018-02-04), Planetary Computer-style
  keys (``B04``, ``vv``).
- **Hostile** collections: one Spain item each, whose ``B04`` href is a local file, a path, a
  ``/vsi`` path, a ``..`` climb (plain and percent-encoded) or an ``s3://`` URL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
S2_BANDS = {"B04": (4, "red"), "B03": (3, "green"), "B02": (2, "blue"), "B08": (8, "nir")}
# (name, first column, last column, first row, last row, datetime, cloud cover) of the Spain S2 windows
SPAIN_S2 = [
    ("S2_spain_west", 0, 320, 0, 512, "2019-09-18T10:50:00Z", 4.0),
    ("S2_spain_east", 200, 512, 0, 512, "2019-09-23T10:50:00Z", 2.0),
    ("S2_spain_core", 150, 350, 150, 350, "2019-09-20T10:50:00Z", 1.0),
    ("S2_spain_cloudy", 0, 512, 0, 512, "2019-09-13T10:50:00Z", 55.0),
]
SPAIN_S1 = [
    ("S1_spain_a", "2019-09-19T18:00:00Z", "IW"),
    ("S1_spain_b", "2019-09-22T18:00:00Z", "IW"),
    ("S1_spain_ew", "2019-09-18T18:00:00Z", "EW"),
]
BIGEARTHNET = [  # (S2 patch, S2 datetime, S1 patch, S1 datetime)
    ("S2B_MSIL2A_20170924T93020_69_24", "2017-09-24T09:30:20Z",
     "S1A_IW_GRDH_1SDV_20170925T043256_35VPK_69_24", "2017-09-25T04:32:56Z"),
    ("S2B_MSIL2A_20180204T94161_57_38", "2018-02-04T09:41:56Z",
     "S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38", "2018-02-04T04:32:53Z"),
]  # fmt: skip
HOSTILE = {
    "hostile-file": "file:///etc/passwd",
    "hostile-path": "/etc/passwd",
    "hostile-vsi": "/vsicurl/{base}/spain/S2_spain_west_B04.tif",
    "hostile-dotdot": "{base}/spain/../../../etc/passwd",
    "hostile-dotdot-encoded": "{base}/spain/%2e%2e/%2e%2e/etc/passwd",
    "hostile-s3": "s3://sentinel-cogs/etc/passwd.tif",
}


def write_cog(path: Path, data: np.ndarray, crs: Any, transform: Any, nodata: float | None) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = data.shape
    profile = dict(driver="COG", width=width, height=height, count=count, dtype=data.dtype.name, crs=crs,
                   transform=transform, nodata=nodata, compress="deflate", blocksize=128)  # fmt: skip
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)


def _polygon(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    w, s, e, n = bounds
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _item(
    collection: str, item_id: str, geometry: dict[str, Any], properties: dict[str, Any], assets: dict[str, Any]
) -> dict[str, Any]:
    from shapely.geometry import shape

    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": item_id, "collection": collection,
        "geometry": geometry, "bbox": list(shape(geometry).bounds), "properties": properties, "assets": assets,
        "links": [],
    }  # fmt: skip


def _s2_asset(href: str, band: str) -> dict[str, Any]:
    return {
        "href": href,
        "type": COG,
        "roles": ["data"],
        "eo:bands": [{"name": band, "common_name": S2_BANDS[band][1]}],
    }


def spain_items(root: Path, base: str, shared: Path) -> list[dict[str, Any]]:
    import rasterio
    from rasterio.control import GroundControlPoint
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window, bounds

    items = []
    with rasterio.open(shared / "sen1floods11" / "Spain_7370579_S2Hand.tif") as s2:
        for name, c0, c1, r0, r1, moment, cloud in SPAIN_S2:
            window = Window(c0, r0, c1 - c0, r1 - r0)
            transform = s2.window_transform(window)
            assets = {}
            for band, (number, colour) in S2_BANDS.items():
                relative = f"spain/{name}_{band}.tif"
                write_cog(root / relative, s2.read([number], window=window), s2.crs, transform, s2.nodata)
                assets[colour] = _s2_asset(f"{base}/{relative}", band)
            assets["red-jp2"] = {**_s2_asset(f"{base}/spain/{name}_B04.jp2", "B04"), "type": "image/jp2"}
            assets["visual"] = {"href": f"{base}/spain/{name}_visual.tif", "type": COG, "roles": ["visual"],
                                "eo:bands": [{"name": b, "common_name": S2_BANDS[b][1]} for b in ("B04", "B03", "B02")]}  # fmt: skip
            assets["thumbnail"] = {"href": f"{base}/spain/{name}.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
            geometry = _polygon(bounds(window, s2.transform))
            items.append(_item("sentinel-2-l2a", name, geometry, {"datetime": moment, "eo:cloud_cover": cloud}, assets))
    with rasterio.open(shared / "sen1floods11" / "Spain_7370579_S1Hand.tif") as s1:
        data = s1.read()
        geometry = _polygon(tuple(s1.bounds))
        for index, (name, moment, mode) in enumerate(SPAIN_S1):
            assets = {}
            for number, pol in enumerate(("VV", "VH")):
                relative = f"spain/{name}_{pol}.tif"
                write_cog(root / relative, data[number : number + 1], s1.crs, s1.transform, s1.nodata)
                asset = {"href": f"{base}/{relative}", "type": COG, "roles": ["data"]}
                # one item states each asset's polarisation, the others only in the title
                asset.update(
                    {"sar:polarizations": [pol]}
                    if index == 1
                    else {"title": f"{pol}: {pol[0]} transmit, {pol[1]} receive"}
                )
                assets[pol.lower()] = asset
            properties = {"datetime": moment, "sar:instrument_mode": mode, "sar:polarizations": ["VV", "VH"]}
            items.append(_item("sentinel-1-grd", name, geometry, properties, assets))
        # As Earth Search's GRD files are: no geotransform, ground control points only (radar geometry).
        t = s1.transform
        gcps = [
            GroundControlPoint(row=r, col=c, x=(t * (c, r))[0], y=(t * (c, r))[1])
            for r in range(0, 513, 128)
            for c in range(0, 513, 128)
        ]
        assets = {}
        for number, pol in enumerate(("VV", "VH")):
            relative = f"spain/S1_spain_gcps_{pol}.tif"
            profile = dict(driver="GTiff", width=512, height=512, count=1, dtype="float32", tiled=True, blockxsize=128,
                           blockysize=128, compress="deflate")  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)  # until the GCPs are set
                with rasterio.open(root / relative, "w", **profile) as out:
                    out.write(data[number : number + 1])
                    out.gcps = (gcps, s1.crs)
            assets[pol.lower()] = {
                "href": f"{base}/{relative}",
                "type": COG,
                "roles": ["data"],
                "sar:polarizations": [pol],
            }
        properties = {"datetime": SPAIN_S1[0][1], "sar:instrument_mode": "IW"}
        items.append(_item("sentinel-1-grd-gcps", "S1_spain_gcps", geometry, properties, assets))
    return items


def bigearthnet_items(root: Path, base: str, shared: Path) -> list[dict[str, Any]]:
    import rasterio
    from rasterio.warp import transform_geom

    items = []
    folder = shared / "bigearthnet"
    for s2_name, s2_time, s1_name, s1_time in BIGEARTHNET:
        for collection, name, moment, bands in (
            ("sentinel-2-l2a", s2_name, s2_time, ("B04", "B03", "B02")),
            ("sentinel-1-grd", s1_name, s1_time, ("VV", "VH")),
        ):
            sub = "BigEarthNet-S2-Example" if collection.startswith("sentinel-2") else "BigEarthNet-S1-Example"
            assets, geometry = {}, None
            for band in bands:
                with rasterio.open(folder / sub / name / f"{name}_{band}.tif") as src:
                    relative = f"bigearthnet/{name}_{band}.tif"
                    write_cog(root / relative, src.read(), src.crs, src.transform, src.nodata)
                    geometry = transform_geom(src.crs, "EPSG:4326", _polygon(tuple(src.bounds)))
                if collection.startswith("sentinel-2"):
                    assets[band] = _s2_asset(f"{base}/{relative}", band)
                else:
                    assets[band.lower()] = {"href": f"{base}/{relative}", "type": COG, "roles": ["data"],
                                            "title": f"{band}: {band[0]} transmit, {band[1]} receive"}  # fmt: skip
            properties = {"datetime": moment, "platform": name[:3].lower()}
            if collection.startswith("sentinel-2"):
                properties["eo:cloud_cover"] = 0.0
            else:
                properties["sar:instrument_mode"] = "IW"
            assert geometry is not None
            items.append(_item(collection, name, geometry, properties, assets))
    return items


def hostile_items(spain: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    west = next(i for i in spain if i["id"] == "S2_spain_west")
    items = []
    for collection, href in HOSTILE.items():
        assets = {"red": _s2_asset(href.format(base=base), "B04")}
        items.append(_item(collection, f"{collection}-item", west["geometry"], dict(west["properties"]), assets))
    return items


def _collection(collection_id: str) -> dict[str, Any]:
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id, "description": f"test {collection_id}",
        "license": "proprietary", "title": collection_id,
        "providers": [{"name": "ESA", "roles": ["producer", "licensor"]}, {"name": "salibi tests", "roles": ["host"]}],
        "links": [{"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"}],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
    }  # fmt: skip


def write_catalog(folder: Path, items: list[dict[str, Any]]) -> list[Path]:
    """One collection JSON and one item collection per collection, the files ``rustac serve`` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for collection_id in sorted({i["collection"] for i in items}):
        path = folder / f"{collection_id}.json"
        path.write_text(json.dumps(_collection(collection_id)))
        features = folder / f"{collection_id}-items.json"
        features.write_text(
            json.dumps(
                {"type": "FeatureCollection", "features": [i for i in items if i["collection"] == collection_id]}
            )
        )
        paths += [path, features]
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_stac_server(files: list[Path]) -> tuple[subprocess.Popen[str], str]:
    """``rustac serve`` of ``files`` on a free port: the process and its URL, once it says it serves."""
    rustac = Path(sys.executable).with_name("rustac")
    for _ in range(3):  # the free port may be taken between the probe and the bind
        port = free_port()
        process = subprocess.Popen(
            [str(rustac), "serve", "--addr", f"127.0.0.1:{port}", *map(str, files)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Serving a STAC API at "):
                return process, line.split(" at ", 1)[1].strip().rstrip("/")
        process.wait()
    raise RuntimeError("rustac serve did not start")
