"""embed_folder on real tiles of mixed formats, sizes and GSDs: rows, georeference, values."""

from __future__ import annotations

import hashlib
import json
import math

import h5py
import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.windows import Window

from salibi.embed import embed_folder, find_tiles, read_embeddings, window_layout
from salibi.embed.inputs.routing import RasterBands, route
from salibi.models import load_checkpoint

from .conftest import PATCH, expected_embedding
from .make_tiles import SN6, SPAIN_S2, crop, make_checkpoint


def test_every_tile_is_a_row_or_a_failure_and_other_files_are_ignored(mixed, mixed_run):
    folder, expected = mixed
    summary, table = mixed_run
    embedded = {rel for rel, what in expected.items() if not what.startswith("failed")}
    failed = {rel for rel, what in expected.items() if what.startswith("failed")}
    assert sorted(table.path) == sorted(embedded)
    assert sorted(table.failed_path) == sorted(failed)
    assert (summary.tiles_found, summary.embedded, summary.failed, summary.skipped) == (12, 9, 3, 0)
    assert summary.rows == 9
    reasons = dict(zip(table.failed_path, table.failed_reason))
    assert reasons["photos/plain.png"] == "no georeference: pass --gsd"
    assert "truncated or corrupt" in reasons["broken/truncated.tif"]
    assert "IReadBlock failed" in reasons["broken/truncated.tif"]  # GDAL's own words, not rasterio's wrapper
    assert "has 1 band(s)" in reasons["sn6/pan.tif"] and "takes 3 (red, green, blue)" in reasons["sn6/pan.tif"]
    for rel, what in expected.items():
        if rel in embedded:
            assert table.modality[table.row_of(rel)] == what, rel
    assert np.isfinite(table.embedding).all()
    # README.txt, metadata.json, the .aux.xml/.wld side files and .cache/ are not tiles
    assert [rel for rel, _ in find_tiles(folder)] == sorted(expected)


def test_links_are_followed_and_each_real_folder_listed_once(tmp_path):
    """Links to files and folders are followed; a folder met again (a second link, a loop back
    up) is not entered again: its tiles once, under the first path in sorted order (two links back
    up, as in defect 9, are tests/faults/test_embed_symlink_loop.py)."""
    tiles, outside = tmp_path / "tiles", tmp_path / "outside"
    for folder in (tiles / "a", tiles / "a-b", tiles / ".hidden", outside):
        folder.mkdir(parents=True)
    for tile in (tiles / "a" / "x.tif", tiles / "a-b" / "y.tif", tiles / ".hidden" / "h.tif", outside / "o.tif"):
        tile.write_bytes(b"")
    (tiles / "a" / ".x.tif").write_bytes(b"")
    (tiles / "a" / "up").symlink_to("..", target_is_directory=True)  # a loop (one link: it fails, not hangs)
    (tiles / "b").symlink_to("a", target_is_directory=True)  # another name for a: "a/" sorts first
    (tiles / "elsewhere").symlink_to(outside, target_is_directory=True)
    (tiles / "linked.tif").symlink_to(outside / "o.tif")
    assert [rel for rel, _ in find_tiles(tiles)] == ["a-b/y.tif", "a/x.tif", "elsewhere/o.tif", "linked.tif"]
    # "a-b/" sorts before "a/": the folder reached through a link sorting first keeps that path
    (tiles / "a-a").symlink_to("a", target_is_directory=True)
    assert [rel for rel, _ in find_tiles(tiles)] == ["a-a/x.tif", "a-b/y.tif", "elsewhere/o.tif", "linked.tif"]


def test_georeference_matches_rasterio(mixed, mixed_run):
    folder, _ = mixed
    _, table = mixed_run
    for i, rel in enumerate(table.path):
        with rasterio.open(folder / rel) as ds:
            assert np.allclose(table.bounds[i], tuple(ds.bounds), rtol=0, atol=1e-9), rel
            assert CRS.from_wkt(table.crs[i]) == ds.crs, rel
            if ds.crs.is_projected:
                assert table.gsd[i] == pytest.approx(abs(ds.res[0]), rel=1e-3), rel
            else:  # geographic: metres along the meridian (the coarser axis), by the haversine formula
                left, bottom, _, top = ds.bounds
                metres = 6371008.8 * math.radians(top - bottom) / ds.height
                assert table.gsd[i] == pytest.approx(metres, rel=0.01), rel
                assert 9.5 < table.gsd[i] < 10.5


def test_file_schema(mixed_run, checkpoint):
    summary, _ = mixed_run
    with h5py.File(summary.output, "r") as f:
        assert f.attrs["format"] == "salibi-embeddings" and f.attrs["format_version"] == 2
        weights = (checkpoint / "model.safetensors").read_bytes()
        assert f.attrs["checkpoint_sha256"] == hashlib.sha256(weights).hexdigest()
        assert f.attrs["variant"] == "scale-alibi"
        assert json.loads(f.attrs["model"])["dim"] == 64
        assert math.isnan(f.attrs["chip_size_m"]) and math.isnan(f.attrs["stride_m"])  # whole tiles
        assert f["embedding"].shape == (9, 64) and f["embedding"].dtype == np.float32
        assert f["gsd"].dtype == np.float64 and f["bounds"].shape == (9, 4) and f["bounds"].dtype == np.float64
        assert f["chip"].shape == (9, 4) and f["chip"].dtype == np.int64
        for name in ("path", "source", "modality", "bands", "crs", "failed_path", "failed_reason", "skipped_path"):
            assert h5py.check_string_dtype(f[name].dtype) is not None, name
        assert f["failed_path"].shape == f["failed_reason"].shape == (3,)
        assert f["skipped_path"].shape == (0,)  # tiles are never skipped for no-data


def test_rows_record_source_window_and_bands(mixed, mixed_run):
    folder, _ = mixed
    _, table = mixed_run
    assert table.source == table.path  # a tile is its own source
    for i, rel in enumerate(table.path):
        with rasterio.open(folder / rel) as ds:
            assert table.chip[i].tolist() == [0, 0, ds.width, ds.height], rel  # the whole file
    bands = dict(zip(table.path, table.bands))
    assert bands["s2/spain_s2_cog.tif"] == "B4,B3,B2"  # the file's own names, in the encoder's order
    assert bands["s1/spain_s1.tif"] == "VV,VH"
    assert bands["sn6/rgb.tif"] == "red,green,blue"  # colour interpretation
    assert bands["photos/georef.jpg"] == "red,green,blue"  # a JPEG is RGB
    assert bands["naip/naip_crop.jp2"] == "1,2,3 (assumed)"  # NAIP's unnamed bands, taken in order
    assert bands["sn6/sar_db.tif"] == "1,2 (assumed)"


@pytest.mark.parametrize(
    "rel, bands, modality",
    [
        ("s2/spain_s2_cog.tif", [4, 3, 2], "lores"),  # B04 B03 B02 found by description among 13 bands
        ("s1/spain_s1.tif", [1, 2], "sar"),  # 100 x 70 px: padded to 104 x 72, NaN no-data -> 0
        ("sn6/slc_vv_vh.tif", [1, 2], "sar"),  # complex -> |z|^2
        ("sn6/rgb.tif", [1, 2, 3], "hires"),  # colour interpretation red, green, blue
        ("sn6/tiny_rgb.tif", [1, 2, 3], "hires"),  # 7 x 5 px: smaller than one patch
        ("naip/naip_crop.jp2", [1, 2, 3], "lores"),  # no band names: the first three
        ("sn6/sar_db.tif", [1, 2], "sar"),  # 4 dB bands without names: the first two
    ],
)
def test_rows_equal_an_independent_computation(mixed, mixed_run, checkpoint, rel, bands, modality):
    folder, _ = mixed
    _, table = mixed_run
    model = load_checkpoint(checkpoint)
    i = table.row_of(rel)
    expected = expected_embedding(model, folder / rel, bands, modality, table.gsd[i])
    np.testing.assert_allclose(table.embedding[i], expected, rtol=1e-4, atol=1e-5)


def test_large_tiles_are_pooled_over_windows_by_token_count(tmp_path, checkpoint):
    """A 40 x 48 px tile with windows of at most 2 x 2 patches: 3 x 3 windows of 2 x 2 patches
    over 6 x 5 patches of pixels; padding patches are left out of the mean."""
    tiles = tmp_path / "tiles"
    path = crop(SPAIN_S2, tiles / "s2.tif", Window(10, 20, 40, 48))  # width 40, height 48
    assert window_layout(48, 40, PATCH, 2) == (3, 3, 2, 2)
    summary = embed_folder(tiles, checkpoint, tmp_path / "out.h5", batch_size=4, progress=False, window_patches=2)
    assert summary.embedded == 1
    got = read_embeddings(tmp_path / "out.h5").embedding[0]

    model = load_checkpoint(checkpoint)
    with rasterio.open(path) as ds:
        x = ds.read([4, 3, 2]).astype(np.float32)
    from .make_tiles import MEAN, STD

    x = (x - np.array(MEAN["lores"])[:, None, None]) / np.array(STD["lores"])[:, None, None]
    padded = np.zeros((3, 48, 48), np.float32)  # 6 x 6 patches; column 5 is padding
    padded[:, :, :40] = x
    kept = []
    for top in range(0, 48, 16):
        for left in range(0, 48, 16):
            window = torch.from_numpy(padded[:, top : top + 16, left : left + 16].copy())[None]
            with torch.no_grad():
                tokens = model.encode(window, modality="lores", gsd=9.97)[0].reshape(2, 2, -1)
            for r in range(2):
                for c in range(2):
                    if (left // PATCH + c) < 5:
                        kept.append(tokens[r, c].numpy())
    assert len(kept) == 30
    np.testing.assert_allclose(got, np.mean(kept, axis=0), rtol=1e-4, atol=1e-5)
    # one window over the whole tile is a different computation (attention across windows)
    whole = embed_folder(tiles, checkpoint, tmp_path / "whole.h5", progress=False)
    assert whole.embedded == 1
    assert not np.allclose(read_embeddings(tmp_path / "whole.h5").embedding[0], got, atol=1e-4)


def test_rgb_picked_by_band_description(tmp_path):
    """Bands named blue, green, red, nir feed the RGB encoder as red, green, blue; a checkpoint
    saved without band names picks B04, B03, B02 of a Sentinel-2 tile by description."""
    ckpt = make_checkpoint(tmp_path / "ckpt_no_names", stats=True)
    # rewrite the checkpoint without band names (as a checkpoint of a model saved without them)
    config = json.loads((ckpt / "config.json").read_text())
    for entry in config["modalities"].values():
        entry["bands"] = None
    (ckpt / "config.json").write_text(json.dumps(config))
    tiles = tmp_path / "tiles"
    with rasterio.open(SN6 / "rgb_unmasked.tif") as ds:
        rgb = ds.read(window=Window(0, 0, 48, 40))
        profile = dict(
            driver="GTiff",
            width=48,
            height=40,
            count=4,
            dtype="uint8",
            crs=ds.crs,
            transform=ds.window_transform(Window(0, 0, 48, 40)),
        )
    (tiles / "a").mkdir(parents=True)
    with rasterio.open(tiles / "a" / "bgrn.tif", "w", **profile) as out:
        out.write(np.stack([rgb[2], rgb[1], rgb[0], rgb.mean(axis=0).astype(np.uint8)]))
        for i, name in enumerate(["Blue", "Green", "Red", "NIR"], start=1):
            out.set_band_description(i, name)
    crop(SPAIN_S2, tiles / "b" / "s2.tif", Window(0, 0, 32, 32))
    embed_folder(tiles, ckpt, tmp_path / "out.h5", progress=False)
    table = read_embeddings(tmp_path / "out.h5")
    model = load_checkpoint(ckpt)
    i = table.row_of("a/bgrn.tif")
    assert table.modality[i] == "hires"
    np.testing.assert_allclose(
        table.embedding[i],
        expected_embedding(model, tiles / "a/bgrn.tif", [3, 2, 1], "hires", table.gsd[i]),
        rtol=1e-4,
        atol=1e-5,
    )
    j = table.row_of("b/s2.tif")
    np.testing.assert_allclose(
        table.embedding[j],
        expected_embedding(model, tiles / "b/s2.tif", [4, 3, 2], "lores", table.gsd[j]),
        rtol=1e-4,
        atol=1e-5,
    )


def test_band_names_that_mean_the_same_band():
    """What the band contract counts as the same band: identities, not spellings."""
    from salibi.embed.inputs.routing import ModalitySpec

    spec = ModalitySpec(1, None, None, None)

    def same(wanted: str, have: str, modality: str = "lores") -> bool:
        specs = {modality: ModalitySpec(1, (wanted,), None, None)}
        try:
            return route(RasterBands((have,), (False,)), 10.0, specs, modality=modality).label == have
        except Exception:
            return False

    for wanted, have in [("B04", "B4"), ("B4", "b04"), ("red", "B04"), ("RED", "Red"), ("B8A", "b8a"),
                         ("band_1", "band_01"), ("B4", "04 - Red"), ("nir", "LC08_B5")]:  # fmt: skip
        assert same(wanted, have), (wanted, have)
    for wanted, have in [("B8", "B8A"), ("B1", "B10"), ("red", "B02"), ("B2", "B12"), ("B05", "LC08_B5")]:
        assert not same(wanted, have), (wanted, have)
    assert same("VV", "Sigma0_VV_db", "sar") and not same("VV", "VH", "sar")
    assert spec.channels == 1


def test_no_statistics_means_per_tile_normalisation_and_a_note(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt", stats=False)
    tiles = tmp_path / "tiles"
    path = crop(SPAIN_S2, tiles / "s2.tif", Window(64, 64, 32, 32))
    summary = embed_folder(tiles, ckpt, tmp_path / "out.h5", progress=False)
    assert any("normalised per image and band" in note and "lores" in note for note in summary.notes)
    with rasterio.open(path) as ds:
        x = ds.read([4, 3, 2]).astype(np.float32)
    got = read_embeddings(tmp_path / "out.h5").embedding[0]
    expected = expected_embedding(
        load_checkpoint(ckpt), path, [4, 3, 2], "lores", 9.97, mean=x.mean(axis=(1, 2)), std=x.std(axis=(1, 2))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_rgb_tiles_go_to_the_encoder_that_has_rgb_bands(tmp_path):
    """A checkpoint without a high-res encoder (the demo's: SAR and Sentinel-2) embeds RGB tiles with
    its low-res optical encoder, whose B04, B03, B02 are red, green, blue; SAR tiles go to SAR."""
    ckpt = make_checkpoint(tmp_path / "ckpt", modalities=("sar", "lores"))
    tiles = tmp_path / "tiles"
    crop(SN6 / "rgb_unmasked.tif", tiles / "rgb.tif", Window(0, 0, 32, 32))
    crop(SN6 / "sar_masked.tif", tiles / "sar.tif", Window(80, 80, 32, 32))
    with pytest.warns(UserWarning, match=r"bands 1,2 taken in order as the sar encoder's VV, VH \(assumed"):
        summary = embed_folder(tiles, ckpt, tmp_path / "out.h5", progress=False)
    assert (summary.embedded, summary.failed) == (2, 0), summary.failures
    table = read_embeddings(tmp_path / "out.h5")
    i = table.row_of("rgb.tif")
    assert (table.modality[i], table.bands[i]) == ("lores", "red,green,blue")
    model = load_checkpoint(ckpt)
    np.testing.assert_allclose(
        table.embedding[i],
        expected_embedding(model, tiles / "rgb.tif", [1, 2, 3], "lores", table.gsd[i]),
        rtol=1e-4,
        atol=1e-5,
    )
    assert table.modality[table.row_of("sar.tif")] == "sar"


def test_gsd_option_is_for_tiles_without_georeference(mixed, checkpoint, tmp_path):
    folder, _ = mixed
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    (tiles / "plain.png").write_bytes((folder / "photos" / "plain.png").read_bytes())
    crop(SN6 / "rgb_unmasked.tif", tiles / "geo.tif", Window(0, 0, 32, 32))
    embed_folder(tiles, checkpoint, tmp_path / "out.h5", gsd=0.3, progress=False)
    table = read_embeddings(tmp_path / "out.h5")
    png, geo = table.row_of("plain.png"), table.row_of("geo.tif")
    assert table.gsd[png] == 0.3 and table.modality[png] == "hires"
    assert np.isnan(table.bounds[png]).all() and table.crs[png] == ""
    assert table.gsd[geo] == pytest.approx(4.5)  # the georeference wins over --gsd
