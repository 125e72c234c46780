"""salibi fetch's rules without servers: which hrefs may be opened, areas, tiles and shards,
the pairing by date and the greedy cover (shapely boxes in metres)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box

from salibi.errors import InputError
from salibi.fetch.hrefs import RefusedHrefError, check_href, gdal_path, resolve_href
from salibi.fetch.planning.areas import (
    Area,
    check_datetime,
    parse_bbox,
    parse_shard,
    plan_areas,
    shard_areas,
    tile_bounds,
)
from salibi.fetch.planning.cover import Scene, greedy_cover, pair

HOSTILE = [
    ("file:///etc/passwd", "file:// URL"),
    ("FILE:///etc/passwd", "file:// URL"),
    ("/etc/passwd", "a local path"),
    ("etc/passwd", "a local path"),
    ("C:\\Windows\\win.ini", "a local path"),
    ("/vsicurl/https://example.com/a.tif", "/vsi"),
    ("/VSIZIP//vsicurl/https://example.com/a.zip/b.tif", "/vsi"),
    ("vsis3/bucket/key", "/vsi"),
    ("https://example.com/data/../../etc/passwd", "'..'"),
    ("https://example.com/data/%2e%2e/secret", "'..'"),
    ("https://example.com/data/%252e%252e/secret", "'..'"),
    ("https://example.com/data/..\\secret", "'..'"),
    ("s3://bucket/key.tif", "--allow-s3"),
    ("gs://bucket/key.tif", "gs: scheme"),
    ("ftp://example.com/a.tif", "ftp: scheme"),
    ("http:///etc/passwd", "no host"),
    ("https://example.com/a b.tif", "whitespace"),
    ("https://example.com/a.tif\n/etc/passwd", "control"),
    ("NETCDF:/data/x.nc:var", "netcdf: scheme"),
]


@pytest.mark.parametrize(("href", "why"), HOSTILE)
def test_hostile_hrefs_are_refused_with_the_reason(href, why):
    with pytest.raises(RefusedHrefError) as refused:
        check_href(href, "item X asset red")
    message = str(refused.value)
    assert message.startswith("item X asset red: href ") and "refused" in message
    assert why.lower() in message.lower(), message


def test_allowed_hrefs_and_their_gdal_paths():
    url = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/31/U/DQ/2023/6/B04.tif"
    assert check_href(url, "x") == url
    assert gdal_path(url) == f"/vsicurl/{url}"
    assert (
        gdal_path(check_href("s3://sentinel-s1-l1c/GRD/vv.tiff", "x", allow_s3=True))
        == "/vsis3/sentinel-s1-l1c/GRD/vv.tiff"
    )
    # a relative href is resolved against the item's own URL; a climbing one is refused
    assert resolve_href("B04.tif", "https://example.com/items/a.json", "x") == "https://example.com/items/B04.tif"
    with pytest.raises(RefusedHrefError):
        resolve_href("../../B04.tif", "https://example.com/items/a.json", "x")
    with pytest.raises(RefusedHrefError):
        resolve_href("B04.tif", None, "x")  # no base: a local path


def test_bbox_dates_tiles_and_shards():
    assert parse_bbox("-0.78,38.08,-0.74,38.13") == (-0.78, 38.08, -0.74, 38.13)
    for bad in ("1,2,3", "10,0,5,1", "0,95,1,96", "a,b,c,d"):
        with pytest.raises(InputError, match="--bbox"):
            parse_bbox(bad)
    assert check_datetime("2023-06-01/2023-08-31") == "2023-06-01/2023-08-31"
    for bad in ("2023-08-31/2023-06-01", "June", "2023-13-01/2023-14-01"):
        with pytest.raises(InputError, match="--datetime"):
            check_datetime(bad)
    west, south, east, north = tile_bounds(1, 0, 0)
    assert (west, east, south) == (-180.0, 0.0, 0.0) and north == pytest.approx(85.0511287798)
    areas = plan_areas((30.28, 62.66, 30.62, 62.83), ["10"])
    assert [a.key for a in areas] == ["10-598-280", "10-598-281", "10-599-280", "10-599-281"]
    shards = [shard_areas(areas, (i, 3)) for i in range(3)]
    assert sorted(a.key for s in shards for a in s) == [a.key for a in areas]  # disjoint, complete
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "-1/2", "x"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(InputError, match="does not meet --bbox"):
        plan_areas((30.28, 62.66, 30.62, 62.83), ["10/0/0"])


T0 = datetime(2019, 9, 18, tzinfo=timezone.utc)


def scene(modality: str, name: str, days: float, x0: float, x1: float, y0: float = 0, y1: float = 100) -> Scene:
    return Scene(modality, "c", name, T0 + timedelta(days=days), box(x0, y0, x1, y1), None, ())


def test_pairing_takes_the_nearest_in_time_that_covers_enough():
    ground = box(0, 0, 100, 100)
    anchors = [scene("lores", "west", 0, 0, 60), scene("lores", "lonely", 0, 0, 100)]
    sar = [
        scene("sar", "far", 20, 0, 100),  # too far in time
        scene("sar", "sliver", 0.1, 0, 10),  # nearest, but covers 1/6 of west
        scene("sar", "good", 2, 0, 100),
        scene("sar", "good-later", 3, 0, 100),
    ]
    groups, unpaired = pair(anchors[:1], {"sar": sar}, ground, 12)
    assert [g.scenes["sar"].id for g in groups] == ["good"]
    assert groups[0].footprint.area == pytest.approx(60 * 100)
    groups, unpaired = pair(anchors, {"sar": sar[:1]}, ground, 12)
    assert groups == [] and {u["id"] for u in unpaired} == {"west", "lonely"}
    assert "within 12 days" in unpaired[0]["reason"]


def test_greedy_cover_largest_first_then_largest_gain_ties_by_date_then_id():
    ground = box(0, 0, 100, 100)
    partner = [scene("sar", "s", 0, 0, 100)]
    anchors = [
        scene("lores", "west", 1, 0, 60),
        scene("lores", "east", 2, 40, 100),
        scene("lores", "core", 0, 30, 70),  # inside west and east: adds nothing once they are in
        scene("lores", "b-east-twin", 2, 40, 100),  # same ground and date as east: the id decides
    ]
    candidates, _ = pair(anchors, {"sar": partner}, ground, 12)
    chosen, share = greedy_cover(candidates, ground)
    assert [g.anchor.id for g in chosen] == ["west", "b-east-twin"]
    assert [round(g.gain, 3) for g in chosen] == [0.6, 0.4] and share == pytest.approx(1.0)
    # the same candidates in another order: the same choice
    chosen_again, _ = greedy_cover(list(reversed(candidates)), ground)
    assert [g.anchor.id for g in chosen_again] == ["west", "b-east-twin"]
    # an equal gain goes to the earlier scene
    tie = [scene("lores", "later", 5, 0, 50), scene("lores", "earlier", 4, 50, 100)]
    candidates, _ = pair(tie, {"sar": partner}, ground, 12)
    assert [g.anchor.id for g in greedy_cover(candidates, ground)[0]] == ["earlier", "later"]


def test_an_area_is_keyed_by_its_tile():
    assert plan_areas(None, ["12/2396/1122"]) == [Area("12-2396-1122", tile_bounds(12, 2396, 1122))]
    with pytest.raises(InputError, match="needs --bbox"):
        plan_areas(None, ["12"])


def _asset(
    href: str, name: str, wavelength: float, roles: tuple[str, ...] = ("data",), kind: str = "cloud-optimized"
) -> dict:
    return {"href": href, "type": f"image/tiff; application=geotiff; profile={kind}", "roles": list(roles),
            "eo:bands": [{"name": name, "common_name": name, "center_wavelength": wavelength}]}  # fmt: skip


def test_earth_search_band_names_are_matched_by_name_colour_or_wavelength():
    from salibi.fetch.planning.assets import choose_assets, wanted_identities

    item = {"id": "S2B_31UDQ", "assets": {
        "nir": _asset("https://e.com/B08.tif", "nir", 0.842),
        "nir08": _asset("https://e.com/B8A.tif", "nir08", 0.865),
        "rededge1": _asset("https://e.com/B05.tif", "rededge1", 0.704),
        "red": _asset("https://e.com/B04.tif", "red", 0.665),
        "red-jp2": {**_asset("https://e.com/B04.jp2", "red", 0.665), "type": "image/jp2"},
        "visual": {"href": "https://e.com/TCI.tif", "roles": ["visual"], "eo:bands": [{"name": "red"}, {"name": "green"}]},
    }}  # fmt: skip
    picked = choose_assets(item, "lores", wanted_identities("lores", ["B04", "B05", "B08", "B8A"]), False)
    assert [(a.key, a.bands, a.indexes) for a in picked] == [
        ("red", ("B04",), (1,)), ("rededge1", ("B05",), (1,)), ("nir", ("B08",), (1,)), ("nir08", ("B8A",), (1,))
    ]  # fmt: skip
    with pytest.raises(LookupError, match="no asset with band B12"):
        choose_assets(item, "lores", wanted_identities("lores", ["B12"]), False)
    naip = {"id": "m_4709963", "assets": {"image": {"href": "https://e.com/naip.tif", "roles": ["data"], "eo:bands": [
        {"name": "Red", "common_name": "red"}, {"name": "Green", "common_name": "green"},
        {"name": "Blue", "common_name": "blue"}, {"name": "NIR", "common_name": "nir"}]}}}  # fmt: skip
    (image,) = choose_assets(naip, "hires", wanted_identities("hires", ["red", "green", "blue"]), False)
    assert (image.key, image.indexes, image.bands) == ("image", (1, 2, 3), ("red", "green", "blue"))


def test_the_catalog_client_reads_only_bounded_http_answers(http_server, monkeypatch):
    from salibi.fetch.stac import catalog_search
    from salibi.fetch.stac.catalogs import PLANETARY_COMPUTER, resolve_catalog, sign_href

    catalog = resolve_catalog(http_server.url("stac"))
    io = catalog_search._guarded_io(catalog, 1)
    with pytest.raises(catalog_search.CatalogError, match="not an http\\(s\\) URL; refused"):
        io.read_text("/etc/passwd")  # pystac-client itself would open a local path as a file
    (http_server.root / "stac").write_text('{"type": "Catalog", "id": "x", "links": []' + " " * 5000 + "}")
    monkeypatch.setattr(catalog_search, "MAX_RESPONSE_BYTES", 4096)
    with pytest.raises(catalog_search.CatalogError, match="larger than 4,096 bytes; refused"):
        catalog_search.open_catalog(catalog, tries=1)
    # the Planetary Computer's signing leaves URLs outside its storage as they are (no request made)
    assert sign_href(PLANETARY_COMPUTER, "https://example.com/a.tif") == "https://example.com/a.tif"


def test_too_many_redirects_are_refused(http_server, tmp_path):
    from salibi.fetch.planning.assets import AssetRead
    from salibi.fetch.reading.transfer import FetchError, FileJob, transfer
    from salibi.fetch.stac.catalogs import resolve_catalog

    (http_server.root / "a.tif").write_bytes(b"II*\x00")
    asset = AssetRead("red", http_server.redirect("a.tif", hops=11), (1,), ("B04",))
    job = FileJob(tmp_path / "a.tif", "a.tif", "lores", "c", "item", asset, (0.0, 0.0, 1.0, 1.0))
    with pytest.raises(FetchError, match="more than 10 redirects; refused"):
        transfer(job, resolve_catalog(http_server.url("")), tries=1, allow_s3=False)
    assert len(http_server.requests) == 11 and not (tmp_path / "a.tif").exists()
