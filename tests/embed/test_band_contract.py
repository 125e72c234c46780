"""The band contract: the encoder whose bands a raster has, GSD only to break ties, unnamed bands in
order with one warning naming the assumption, --band-names, and missing bands refused or filled."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from salibi.embed import embed, read_embeddings
from salibi.embed.inputs.routing import BandLayout, BandRefusal, ModalitySpec, RasterBands, Router, raster_bands, route
from salibi.models import build, load_checkpoint, save_checkpoint

from .conftest import expected_embedding
from .make_tiles import NAIP, SAMPLES, SN6, SPAIN_S2, crop, make_checkpoint, write_png


def spec(*bands):
    return ModalitySpec(len(bands), tuple(bands), None, None)


SWIR_LORES = {"lores": spec("B11", "B12", "B8A"), "hires": spec("red", "green", "blue")}


def unnamed(count):
    return RasterBands(("",) * count, (False,) * count)


def test_unnamed_bands_are_taken_in_order_only_with_the_assumption_named():
    """Three unnamed bands at 10 m and a low-res encoder of SWIR bands: routed there, but saying so."""
    chosen = route(unnamed(3), 10.0, SWIR_LORES)
    assert (chosen.modality, chosen.indexes, chosen.label) == ("lores", (1, 2, 3), "1,2,3 (assumed)")
    assert "bands 1,2,3 taken in order as the lores encoder's B11, B12, B8A (assumed" in chosen.assumption
    # named red, green, blue they go where those bands are, whatever the GSD says
    named = route(RasterBands(("red", "green", "blue"), (False,) * 3), 10.0, SWIR_LORES)
    assert (named.modality, named.label, named.assumption) == ("hires", "red,green,blue", None)


def test_names_decide_and_the_gsd_only_breaks_ties():
    specs = {"lores": spec("B04", "B03", "B02"), "hires": spec("red", "green", "blue")}
    rgb = RasterBands(("Red", "Green", "Blue"), (False,) * 3)
    assert route(rgb, 0.5, specs).modality == "hires"  # both fit: below 5 m high-res
    assert route(rgb, 10.0, specs).modality == "lores"
    s2 = RasterBands(("B2", "B3", "B4", "B8"), (False,) * 4)
    chosen = route(s2, 10.0, specs)
    assert (chosen.modality, chosen.indexes, chosen.label) == ("lores", (3, 2, 1), "B4,B3,B2")
    sar = {"sar": spec("VV", "VH"), **specs}
    assert route(RasterBands(("VH", "VV"), (False,) * 2), 10.0, sar).indexes == (2, 1)
    # two unnamed bands look like SAR; three unnamed float bands in dB too
    assert route(unnamed(2), 10.0, sar).modality == "sar"
    assert route(unnamed(4), 10.0, sar, looks_like_db=lambda: True).modality == "sar"
    assert route(unnamed(4), 10.0, sar, looks_like_db=lambda: False).modality == "lores"


def described(*layout) -> RasterBands:
    return raster_bands(BandLayout.of(*layout))


def test_landsat_and_file_names_state_bands():
    landsat = described(
        ["SR_B4", "SR_B3", "SR_B2", "SR_B5"],
        ["gray", "undefined", "undefined", "undefined"],
        "LC08_L2SP_x.TIF",
        "GTiff",
        False,
    )
    assert landsat.names == ("LC08_B4", "LC08_B3", "LC08_B2", "LC08_B5")
    chosen = route(landsat, 30.0, {"lores": spec("B04", "B03", "B02", "B08")})
    assert chosen.indexes == (1, 2, 3, 4)  # Landsat 8 band 5 is NIR (Sentinel-2 B08), not B05
    assert described([None], ["gray"], "T31UDQ_20200101T103421_B04_10m.jp2", "JP2OpenJPEG", False).names == ("B04",)
    assert described([None] * 3, ["red", "green", "blue"], "x.tif", "GTiff", False).names == ("red", "green", "blue")
    assert described([None] * 4, ["gray"] * 3 + ["alpha"], "photo.png", "PNG", False).names == (
        "red",
        "green",
        "blue",
        "",
    )


def test_the_router_decides_once_per_layout_as_route_does():
    """A run routes each band layout (and GSD class) once: the same answers as route, refusals
    included; a layout whose answer depends on its pixels (dB or not) is decided per answer."""
    specs = {"sar": spec("VV", "VH"), "lores": spec("B04", "B03", "B02"), "hires": spec("red", "green", "blue")}
    router = Router(specs)
    layouts = [
        BandLayout.of(["B4", "B3", "B2", "B8"], ["gray"] + ["undefined"] * 3, "s2_a.tif", "GTiff", False),
        BandLayout.of([None] * 3, ["red", "green", "blue"], "rgb.tif", "GTiff", False),
        BandLayout.of([None] * 4, ["gray"] * 4, "four.tif", "GTiff", False),
        BandLayout.of(["SWIR1", "SWIR2"], ["gray", "undefined"], "swir.tif", "GTiff", False),
        BandLayout.of([None], ["gray"], "T31UDQ_20200101T103421_B04_10m.jp2", "JP2OpenJPEG", False),
    ]
    for layout in layouts:
        for gsd in (0.5, 10.0):
            for db in (True, False):
                for _ in range(2):  # the second answer comes from the cache
                    try:
                        expected: object = route(raster_bands(layout), gsd, specs, looks_like_db=lambda db=db: db)
                    except BandRefusal as err:
                        expected = str(err)
                    try:
                        got: object = router.route(layout, gsd, looks_like_db=lambda db=db: db)
                    except BandRefusal as err:
                        got = str(err)
                    assert got == expected, (layout, gsd, db)
    # the file name is part of the layout: another sensor's product reads the same numbers otherwise
    s2 = BandLayout.of(["4", "3", "2", "5"], ["gray"] + ["undefined"] * 3, "s2.tif", "GTiff", False)
    landsat = BandLayout.of(["4", "3", "2", "5"], ["gray"] + ["undefined"] * 3, "LC08_L2SP_x.tif", "GTiff", False)
    assert s2 != landsat
    assert router.route(landsat, 30.0).label == "LC08_B4,LC08_B3,LC08_B2"
    assert router.route(s2, 10.0).label == "4,3,2"
    assert router.seconds > 0


def test_missing_bands_are_refused_with_the_reason_or_filled():
    specs = {"lores": spec("B04", "B03", "B02", "B08")}
    rgb = RasterBands(("red", "green", "blue"), (False,) * 3)
    with pytest.raises(
        BandRefusal,
        match=r"has red, green, blue of the lores encoder's B04, B03, B02, B08 but not B08;.*--fill-missing mean",
    ):
        route(rgb, 10.0, specs)
    filled = route(rgb, 10.0, specs, fill_missing=True)
    assert (filled.indexes, filled.label) == ((1, 2, 3, 0), "red,green,blue,B08=mean")
    with pytest.raises(BandRefusal, match=r"its bands \(SWIR1, SWIR2\) are none of the checkpoint encoders' bands"):
        route(RasterBands(("SWIR1", "SWIR2"), (False, False)), 10.0, specs, fill_missing=True)
    with pytest.raises(BandRefusal, match="none of its bands .VV, VH. is one of the lores encoder's"):
        route(RasterBands(("VV", "VH"), (False, False)), 10.0, specs, modality="lores")


def test_named_tiles_of_other_sensors_are_routed_by_name(checkpoint, tmp_path):
    """Real tiles: Sentinel-2 over Patagonia (Blue, Green, Red, NIR), Landsat-7 (blue ... swir2),
    Sentinel-2 from Sen1Floods11 (B1 ... B12), a georeferenced JPEG (RGB by format)."""
    tiles = tmp_path / "tiles"
    crop(SAMPLES / "sentinel2_patagonia" / "sentinel2_10m.tif", tiles / "patagonia.tif", Window(0, 0, 48, 48))
    crop(SAMPLES / "landsat7_raleigh" / "landsat7_2000.tif", tiles / "landsat.tif", Window(0, 0, 40, 40))
    crop(SPAIN_S2, tiles / "s2.tif", Window(0, 0, 32, 32))
    write_png(SN6 / "rgb_unmasked.tif", tiles / "photo.jpg", Window(0, 0, 32, 32), world_file=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is assumed
        embed(tiles, checkpoint, tmp_path / "out.h5", progress=False)
    table = read_embeddings(tmp_path / "out.h5")
    got = {p: (m, b) for p, m, b in zip(table.path, table.modality, table.bands)}
    assert got == {
        "patagonia.tif": ("lores", "Red,Green,Blue"),
        "landsat.tif": ("lores", "red,green,blue"),
        "s2.tif": ("lores", "B4,B3,B2"),
        "photo.jpg": ("hires", "red,green,blue"),
    }
    model = load_checkpoint(checkpoint)
    i = table.row_of("patagonia.tif")
    expected = expected_embedding(model, tiles / "patagonia.tif", [3, 2, 1], "lores", table.gsd[i])
    np.testing.assert_allclose(table.embedding[i], expected, rtol=1e-4, atol=1e-5)


def test_one_warning_per_encoder_for_a_folder_of_unnamed_tiles(checkpoint, tmp_path):
    tiles = tmp_path / "tiles"
    for k in range(3):
        crop(NAIP, tiles / f"naip_{k}.tif", Window(64 * k, 0, 48, 48))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        embed(tiles, checkpoint, tmp_path / "out.h5", progress=False)
    messages = [str(w.message) for w in said if "taken in order" in str(w.message)]
    assert len(messages) == 1 and "lores encoder's B04, B03, B02" in messages[0] and "--band-names" in messages[0]
    assert set(read_embeddings(tmp_path / "out.h5").bands) == {"1,2,3 (assumed)"}


def test_band_names_name_a_folders_bands(checkpoint, tmp_path):
    tiles = tmp_path / "tiles"
    crop(NAIP, tiles / "naip.tif", Window(0, 0, 48, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed(tiles, checkpoint, tmp_path / "named.h5", band_names=("nir", "red", "green", "blue"), progress=False)
    table = read_embeddings(tmp_path / "named.h5")
    assert table.bands == ["red,green,blue"]  # bands 2, 3, 4 under these names
    model = load_checkpoint(checkpoint)
    expected = expected_embedding(model, tiles / "naip.tif", [2, 3, 4], "lores", 5.0)
    np.testing.assert_allclose(table.embedding[0], expected, rtol=1e-4, atol=1e-5)
    summary = embed(tiles, checkpoint, tmp_path / "too_many.h5", band_names=tuple("abcde"), progress=False)
    assert "has 4 band(s) but --band-names names 5" in summary.failures[0][1]


def test_fill_missing_mean_is_recorded_and_equals_a_zero_band(tmp_path):
    """A checkpoint whose low-res encoder takes B04, B03, B02, B08, and a JPEG with only RGB."""
    import torch

    from .make_tiles import MEAN, STD

    torch.manual_seed(0)
    model = build("tiny", modalities=("lores",), channels={"lores": 4})
    ckpt = save_checkpoint(
        model,
        tmp_path / "ckpt",
        bands={"lores": ["B04", "B03", "B02", "B08"]},
        gsd={"lores": 10.0},
        mean={"lores": [*MEAN["lores"], 2500.0]},
        std={"lores": [*STD["lores"], 900.0]},
    )
    tiles = tmp_path / "tiles"
    write_png(SN6 / "rgb_unmasked.tif", tiles / "photo.jpg", Window(0, 0, 32, 32), world_file=True)
    refused = embed(tiles, ckpt, tmp_path / "refused.h5", progress=False)
    assert refused.failed == 1 and "but not B08" in refused.failures[0][1]
    embed(tiles, ckpt, tmp_path / "filled.h5", fill_missing="mean", progress=False)
    table = read_embeddings(tmp_path / "filled.h5")
    assert table.bands == ["red,green,blue,B08=mean"]
    with rasterio.open(tiles / "photo.jpg") as ds:
        x = ds.read().astype(np.float32)
    x = (x - np.array(MEAN["lores"], np.float32)[:, None, None]) / np.array(STD["lores"], np.float32)[:, None, None]
    x = np.concatenate([x, np.zeros((1, 32, 32), np.float32)])
    with torch.no_grad():
        expected = load_checkpoint(ckpt).embed(torch.from_numpy(x)[None], modality="lores", gsd=table.gsd[0])[0]
    np.testing.assert_allclose(table.embedding[0], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_without_band_names_still_takes_rgb_by_colour(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    import json

    config = json.loads((ckpt / "config.json").read_text())
    for entry in config["modalities"].values():
        entry["bands"] = None
    (ckpt / "config.json").write_text(json.dumps(config))
    tiles = tmp_path / "tiles"
    crop(NAIP, tiles / "naip.tif", Window(0, 0, 40, 40))
    with pytest.warns(UserWarning, match="a checkpoint that names no lores bands: bands 1,2,3 taken in order"):
        embed(tiles, ckpt, tmp_path / "out.h5", progress=False)
