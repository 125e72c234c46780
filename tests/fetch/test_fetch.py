"""salibi fetch against a real STAC API (rustac serve) and a real file server of real pixels:
the two commands end to end, what the cover chose, windowed reads, faults and hostile catalogs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from http_server import Fault
from salibi.cli import cli
from salibi.fetch.reading.transfer import FetchError, FileJob, transfer
from salibi.fetch.stac.catalogs import resolve_catalog

from .catalog import HOSTILE, free_port
from .conftest import SPAIN_BBOX, SPAIN_DATES, fetch_args, forget_downloads

# A 600 x 600 m box in the west of the Spain chip (west scene only).
SMALL_BBOX = "-0.7800,38.1100,-0.7732,38.1154"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="salibi")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def spain(archive, tmp_path_factory) -> dict:
    """One fetch of the Spain box, then salibi align of the folder: what both did."""
    archive.files.reset()
    forget_downloads()
    out = tmp_path_factory.mktemp("spain") / "spain"
    status, text = run(*fetch_args(archive, out))
    assert status == 0, text
    sent = dict(archive.files.sent)
    archive.files.reset()
    again_started = time.perf_counter()
    status_again, text_again = run(*fetch_args(archive, out))
    again_seconds = time.perf_counter() - again_started
    requests_again = list(archive.files.requests)
    aligned = out.parent / "set.h5"
    status_align, text_align = run("align", str(out), "-o", str(aligned), "--tile-size-m", "320",
                                   "--gsd", "lores=10", "--gsd", "sar=10")  # fmt: skip
    return {"out": out, "text": text, "sent": sent, "again": (status_again, text_again, again_seconds, requests_again),
            "aligned": aligned, "align": (status_align, text_align),
            "manifest": json.loads((out / "manifest.json").read_text())}  # fmt: skip


def test_two_commands_make_a_training_set(spain):
    from salibi.data import AlignedDataset

    status, text = spain["align"]
    assert status == 0, text
    assert "2 band(s)" in text and "[B04, B03, B02]" in text and "[VV, VH]" in text
    train = AlignedDataset([spain["aligned"]], split="train")
    sample = train[0]
    assert tuple(sample["lores"].shape) == (3, 32, 32) and tuple(sample["sar"].shape) == (2, 32, 32)
    assert len(train) > 50 and np.isfinite(sample["lores"].numpy()).all()
    import h5py

    with h5py.File(spain["aligned"]) as f:
        assert f.attrs["groups"] == 2
        # The two groups overlap on the ground: no training chip touches a validation chip of either.
        bounds, split = f["bounds"][:], f["split"][:]
        val, train = bounds[split == 1], bounds[split == 0]
        assert len(val)
        touching = (train[:, None, 0] <= val[None, :, 2]) & (val[None, :, 0] <= train[:, None, 2])
        touching &= (train[:, None, 1] <= val[None, :, 3]) & (val[None, :, 1] <= train[:, None, 3])
        assert not touching.any(), f"{touching.sum()} training/validation pairs share ground"
        assert list(f["lores"].attrs["bands"]) == ["B04", "B03", "B02"]
        assert any("000-S2_spain_west/lores-B04.tif" in s for s in f["lores"].attrs["sources"])
        # Each group's chips record its S2 scene's time (the files' tags), not its S1 scene's.
        times = f["datetime"].asstr()[:]
    groups = spain["manifest"]["areas"][0]["groups"]
    assert [g["scenes"]["lores"]["datetime"] for g in groups] == ["2019-09-18T10:50:00Z", "2019-09-23T10:50:00Z"]
    west, east = (times == "2019-09-18T10:50:00Z"), (times == "2019-09-23T10:50:00Z")
    assert west.any() and east.any() and (west | east).all()
    # the west group's chips first, then the east's
    assert west[: west.sum()].all() and bounds[west, 0].mean() < bounds[east, 0].mean()


def test_the_cover_pairs_by_date_drops_clouds_and_takes_the_largest_gain_first(spain):
    area = spain["manifest"]["areas"][0]
    chosen = [(g["scenes"]["lores"]["id"], g["scenes"]["sar"]["id"], g["share"]) for g in area["groups"]]
    # cloudy (55 %) dropped although it covers everything; west first (62.6 %), then east; core adds nothing;
    # west pairs with S1 a (1 day), not with the EW-mode scene of its own day; east with S1 b (1 day before)
    assert [(a, b) for a, b, _ in chosen] == [("S2_spain_west", "S1_spain_a"), ("S2_spain_east", "S1_spain_b")]
    assert chosen[0][2] == pytest.approx(0.626, abs=0.002) and chosen[1][2] == pytest.approx(0.374, abs=0.002)
    assert area["covered_share"] == pytest.approx(1.0, abs=1e-6)
    assert area["found"] == {"lores": 3, "sar": 2}  # 4 S2 less the cloudy one; 3 S1 less the EW one
    manifest = spain["manifest"]
    assert manifest["format"] == "salibi-fetch" and manifest["format_version"] == 1 and manifest["complete"]
    assert manifest["collections"]["sentinel-2-l2a"]["license"] == "proprietary"
    assert manifest["collections"]["sentinel-2-l2a"]["attribution"] == "ESA, salibi tests"


def test_assets_are_chosen_by_band_metadata_and_named_in_the_files(spain):
    import rasterio

    requested = {path for path in spain["sent"]}
    assert not any(p.endswith((".jp2", "_visual.tif", ".jpg")) for p in requested)  # red-jp2, visual, thumbnail
    files = spain["manifest"]["areas"][0]["groups"][0]["files"]
    assert [e["asset"] for e in files["lores"]] == ["red", "green", "blue"]
    assert [e["asset"] for e in files["sar"]] == ["vv", "vh"]
    with rasterio.open(spain["out"] / files["sar"][1]["path"]) as written:
        assert written.descriptions == ("VH",)
        tags = written.tags()
        assert tags["stac_item"] == "S1_spain_a"
        # The item's datetime (catalog.SPAIN_S1) as the TIFF DateTime tag and in full, which embed reads.
        assert tags["TIFFTAG_DATETIME"] == "2019:09:19 18:00:00"
        assert tags["ACQUISITION_DATETIME"] == "2019-09-19T18:00:00Z"


def test_a_complete_folder_transfers_nothing(spain):
    status, text, seconds, requests = spain["again"]
    assert status == 0, text
    assert requests == [], requests[:3]  # not one request to the asset server
    assert "fetched 0 of 10 files (10 there already)" in text and "plan read back" in text
    print(f"\nsecond, complete run: {seconds:.2f} s (first run: see the summary above), 0 requests")


def test_the_transferred_bytes_are_the_servers(spain):
    for group in spain["manifest"]["areas"][0]["groups"]:
        for entries in group["files"].values():
            for entry in entries:
                path = "/" + entry["href"].split("/", 3)[3]
                assert entry["transferred"] == spain["sent"][path], entry["path"]


def test_a_small_area_of_a_large_scene_reads_a_small_part_of_its_files(served, tmp_path):
    status, text = run(*fetch_args(served, tmp_path / "small", bbox=SMALL_BBOX))
    assert status == 0, text
    manifest = json.loads((tmp_path / "small" / "manifest.json").read_text())
    entries = [e for g in manifest["areas"][0]["groups"] for es in g["files"].values() for e in es]
    read = sum(e["transferred"] for e in entries)
    size = sum(e["asset_bytes"] for e in entries)
    for entry in entries:
        path = "/" + entry["href"].split("/", 3)[3]
        assert served.files.sent[path] == entry["transferred"] < entry["asset_bytes"] / 3, entry
    print(f"\n600 m x 600 m of the 4 x 5 km chip: {read} bytes read of {size} bytes of files ({read / size:.1%})")


def _west_b04(archive) -> str:
    return "/spain/S2_spain_west_B04.tif"


def test_a_raster_with_ground_control_points_only_is_cut_on_their_grid(served, tmp_path):
    import rasterio

    args = fetch_args(served, tmp_path / "gcps", bbox=SMALL_BBOX)
    args[args.index("--sar") + 1] = "sentinel-1-grd-gcps"
    status, text = run(*args)
    assert status == 0, text
    written = next((tmp_path / "gcps").rglob("sar-VV.tif"))
    source = served.files.root / "spain" / "S1_spain_a_VV.tif"  # the same pixels, with a geotransform
    with rasterio.open(written) as out, rasterio.open(source) as src:
        assert out.crs == src.crs and out.descriptions == ("VV",)
        window = rasterio.windows.from_bounds(*out.bounds, transform=src.transform).round_offsets().round_lengths()
        assert out.shape == (window.height, window.width) and out.shape[0] < 100
        assert np.array_equal(out.read(1), src.read(1, window=window), equal_nan=True)
    sent = served.files.sent["/spain/S1_spain_gcps_VV.tif"]
    assert sent < (served.files.root / "spain" / "S1_spain_gcps_VV.tif").stat().st_size / 3


def test_503_then_success_honours_retry_after(served, tmp_path):
    path = _west_b04(served)
    served.files.inject(path, Fault(status=503, headers={"Retry-After": "1"}))
    status, text = run(*fetch_args(served, tmp_path / "retry", bbox=SMALL_BBOX))
    assert status == 0, text
    log = [r for r in served.files.requests if r.path == path]
    assert log[0].status == 503 and all(r.status in (200, 206) for r in log[1:])
    assert log[1].at - log[0].at >= 1.0  # the server asked for a second


def test_404_is_one_line_and_keeps_what_was_fetched(served, tmp_path):
    served.files.fail[_west_b04(served)] = 404
    status, text = run(*fetch_args(served, tmp_path / "gone", "--jobs", "1", bbox=SMALL_BBOX))
    assert status == 1
    assert text.strip() == (
        "Error: sentinel-2-l2a item S2_spain_west asset red: HTTP 404 from the asset's URL; the catalog names a "
        "file that cannot be read"
    )
    assert not list((tmp_path / "gone").rglob("*.tmp"))
    part = json.loads((tmp_path / "gone" / "manifests" / "shard-0-of-1.json").read_text())
    assert part["complete"] is False


def test_a_body_cut_short_is_read_again(served, tmp_path):
    import rasterio

    path = _west_b04(served)
    # the probe and GDAL's HEAD pass; GDAL's first range request gets 100 bytes of its answer
    served.files.inject(path, Fault(), Fault(), Fault(truncate_to=100))
    status, text = run(*fetch_args(served, tmp_path / "cut", bbox=SMALL_BBOX))
    assert status == 0, text
    assert any(r.path == path and r.sent == 100 for r in served.files.requests)
    written = next((tmp_path / "cut").rglob("lores-B04.tif"))
    source = served.files.root / path.lstrip("/")
    with rasterio.open(written) as out, rasterio.open(source) as src:
        window = rasterio.windows.from_bounds(*out.bounds, transform=src.transform)
        assert np.array_equal(out.read(1), src.read(1, window=window.round_offsets().round_lengths()))


def test_servers_that_are_down(served, tmp_path):
    port = free_port()  # nothing listens there
    status, text = run("fetch", "--stac", f"http://127.0.0.1:{port}", "--lores", "a", "--sar", "b", "--bbox", SPAIN_BBOX,
                       "--datetime", SPAIN_DATES, "--tries", "1", "-o", str(tmp_path / "down"))  # fmt: skip
    assert status == 1 and text.startswith(f"Error: --stac http://127.0.0.1:{port}: cannot reach the STAC API"), text
    assert "connection refused" in text and not (tmp_path / "down").exists()
    from salibi.fetch.planning.assets import AssetRead

    asset = AssetRead("red", f"http://127.0.0.1:{port}/a.tif", (1,), ("B04",))
    job = FileJob(tmp_path / "a.tif", "a.tif", "lores", "c", "item", asset, (0.0, 0.0, 1.0, 1.0))
    with pytest.raises(FetchError, match=r"connection refused \(tried 2 time\(s\)\); run the same command again"):
        transfer(job, resolve_catalog(f"http://127.0.0.1:{port}"), tries=2, allow_s3=False, backoff_s=0.01)
    assert not (tmp_path / "a.tif").exists()


@pytest.mark.parametrize("collection", sorted(HOSTILE))
def test_a_hostile_href_is_refused_before_anything_is_opened(served, tmp_path, collection):
    out = tmp_path / "hostile"
    args = fetch_args(served, out, "--bands", "lores=B04")
    args[args.index("--lores") + 1] = collection
    status, text = run(*args)
    assert status == 1 and len(text.strip().splitlines()) == 1, text
    assert text.startswith(f"Error: item {collection}-item asset red: href ") and " refused: " in text
    assert served.files.requests == [] and not out.exists()


def test_shards_of_tiles_merge_into_one_folder(archive, tmp_path):
    out = tmp_path / "ben"
    common = ["fetch", "--stac", archive.stac, "--lores", "sentinel-2-l2a", "--sar", "sentinel-1-grd",
              "--bbox", "30.28,62.66,30.62,62.83", "--datetime", "2017-01-01/2018-12-31", "--tiles", "10",
              "--quiet", "-o", str(out)]  # fmt: skip
    status, text = run(*common, "--shard", "0/2")
    assert status == 0 and "other shards are not done yet" in text, text
    status, text = run("align", str(out), "-o", str(tmp_path / "early.h5"))
    assert status == 1 and "the fetch is not complete (shard 1/2 not done)" in text, text
    status, text = run(*common, "--shard", "1/2")
    assert status == 0 and "is complete" in text, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shards"] == 2 and manifest["shards_done"] == [0, 1]
    found = {a["key"]: [g["scenes"]["sar"]["id"][-5:] for g in a["groups"]] for a in manifest["areas"]}
    assert found == {"10-598-280": [], "10-598-281": ["57_38"], "10-599-280": ["69_24"], "10-599-281": []}
    status, text = run("align", str(out), "-o", str(tmp_path / "ben.h5"), "--tile-size-m", "240")
    assert status == 0 and "grid: 50 chips of 240 m" in text, text  # two 1.2 km squares, 5 x 5 chips each


def test_the_cloud_limit_and_the_days_apart_decide_what_is_planned(archive):
    from salibi.fetch.fetch_job import build_query
    from salibi.fetch.planning.area_plan import plan_area
    from salibi.fetch.planning.areas import Area, parse_bbox
    from salibi.fetch.stac.catalog_search import open_catalog

    catalog = resolve_catalog(archive.stac)
    stac, area = open_catalog(catalog, tries=1), Area("bbox", parse_bbox(SPAIN_BBOX))
    collections = {"lores": "sentinel-2-l2a", "sar": "sentinel-1-grd"}

    def plan(max_cloud: float, max_days: float) -> dict:
        query = build_query(catalog, SPAIN_BBOX, SPAIN_DATES, collections, {}, max_cloud, max_days, (), False)
        return plan_area(stac, area, query)

    loose = plan(60, 12)  # the cloudy scene of the whole chip now counts, and covers it alone
    assert [(g["scenes"]["lores"]["id"], g["scenes"]["sar"]["id"]) for g in loose["groups"]] == [
        ("S2_spain_cloudy", "S1_spain_a")
    ]
    assert loose["found"]["lores"] == 4 and loose["covered_share"] == pytest.approx(1.0, abs=1e-6)
    tight = plan(10, 0.5)  # no SAR scene within half a day of any optical one
    assert tight["groups"] == [] and {u["id"] for u in tight["unpaired"]} == {
        "S2_spain_west",
        "S2_spain_east",
        "S2_spain_core",
    }
    assert all("no sar scene of the same ground within 0.5 days" == u["reason"] for u in tight["unpaired"])
