"""Scenes cut into a chip grid: a NAIP 5 m quarter-quad (projected) and a Sen1Floods11 Sentinel-2
scene (geographic, reprojected on the fly), read window by window."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from salibi.embed import embed, read_embeddings
from salibi.embed.inputs import scenes as scenes_module
from salibi.embed.work import STAGES
from salibi.models import load_checkpoint

from .make_tiles import MEAN, NAIP, SPAIN_S2, STD

PATCH = 8


def chip_embedding(model, ds, window, bands, modality, gsd):
    """Written independently of salibi.embed: read the window, normalise with the checkpoint's
    statistics (invalid -> 0), encode, mean of the tokens (chips are whole patches)."""
    x = ds.read(bands, window=Window(*window), masked=True)
    invalid = np.ma.getmaskarray(x)
    x = np.ma.getdata(x).astype(np.float32)
    x = (x - np.array(MEAN[modality], np.float32)[:, None, None]) / np.array(STD[modality], np.float32)[:, None, None]
    x[invalid] = 0
    with torch.no_grad():
        return model.encode(torch.from_numpy(x)[None], modality=modality, gsd=gsd)[0].mean(dim=0).numpy()


@pytest.fixture(scope="module")
def naip_run(naip_outputs):
    folder, summary, said = naip_outputs
    return summary, read_embeddings(folder / "naip.h5"), said


def test_a_scene_is_a_grid_of_chips_with_their_windows_and_footprints(naip_run):
    summary, table, said = naip_run
    with rasterio.open(NAIP) as ds:
        width_m, height_m = ds.width * ds.res[0], ds.height * ds.res[1]
        transform, crs = ds.transform, ds.crs
    rows, cols = int(height_m // 320), int(width_m // 320)  # 11 x 14 chips of 64 px at 5 m
    assert (rows, cols) == (11, 14)
    assert (summary.kind, summary.unit, summary.found, summary.embedded, summary.rows) == (
        "scenes",
        "chips",
        154,
        154,
        154,
    )
    assert summary.area_km2 == pytest.approx(154 * 0.32**2)
    assert len(set(table.path)) == 154 and set(table.source) == {NAIP.name}
    for i, path in enumerate(table.path):
        r, c = map(int, path.split("#r")[1].split("c"))
        assert table.chip[i].tolist() == [c * 64, r * 64, 64, 64], path
        np.testing.assert_array_equal(table.bounds[i], window_bounds(Window(*table.chip[i]), transform))
        assert rasterio.crs.CRS.from_wkt(table.crs[i]) == crs
    assert set(table.gsd) == {5.0} and set(table.modality) == {"lores"}
    # NAIP names no bands: taken in order, said once, recorded on every row
    assert set(table.bands) == {"1,2,3 (assumed)"}
    assert sum("bands 1,2,3 taken in order as the lores encoder's B04, B03, B02" in s for s in said) == 2  # once a run


def test_the_summary_says_where_the_wall_time_went(naip_run):
    summary, _, _ = naip_run
    stages = summary.stages
    assert set(stages) == {*STAGES, "route"} and min(stages.values()) >= 0
    assert stages["model"] > 0 and stages["write"] > 0 and stages["merge"] > 0 and stages["route"] > 0
    assert sum(stages[s] for s in STAGES) <= summary.seconds  # stages of one thread's wall time: no overlap


def test_chip_rows_equal_an_independent_computation(naip_run, checkpoint):
    _, table, _ = naip_run
    model = load_checkpoint(checkpoint)
    with rasterio.open(NAIP) as ds:
        for path in (f"{NAIP.name}#r0c0", f"{NAIP.name}#r5c7", f"{NAIP.name}#r10c13"):
            i = table.row_of(path)
            expected = chip_embedding(model, ds, table.chip[i], [1, 2, 3], "lores", 5.0)
            np.testing.assert_allclose(table.embedding[i], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_reading_window_by_window_changes_nothing(naip_run, checkpoint, tmp_path, monkeypatch):
    """With a read budget of one chip every item is a single-chip window: the same rows."""
    _, reference, _ = naip_run
    monkeypatch.setattr(scenes_module, "READ_BYTES", 1)
    out = tmp_path / "one_by_one.h5"
    names = ("red", "green", "blue", "nir")  # bands 1, 2, 3 as in the reference, named: no warning
    summary = embed(NAIP, checkpoint, out, chip_size_m=320, batch_size=16, band_names=names, progress=False)
    assert summary.embedded == 154
    table = read_embeddings(out)
    for i, path in enumerate(table.path):
        np.testing.assert_allclose(
            table.embedding[i], reference.embedding[reference.row_of(path)], rtol=1e-5, atol=1e-6
        )


@pytest.mark.slow
def test_a_stride_overlaps_the_chips(checkpoint, tmp_path):
    out = tmp_path / "stride.h5"
    names = ("red", "green", "blue", "nir")
    summary = embed(
        NAIP, checkpoint, out, chip_size_m=320, stride_m=160, batch_size=32, band_names=names, progress=False
    )
    with rasterio.open(NAIP) as ds:
        rows = int((ds.height * 5 - 320) // 160) + 1
        cols = int((ds.width * 5 - 320) // 160) + 1
    assert summary.embedded == rows * cols == 21 * 28
    table = read_embeddings(out)
    i, j = table.row_of(f"{NAIP.name}#r3c4"), table.row_of(f"{NAIP.name}#r3c5")
    assert table.chip[i].tolist() == [4 * 32, 3 * 32, 64, 64] and table.chip[j][0] - table.chip[i][0] == 32
    assert table.bounds[j][0] - table.bounds[i][0] == 160.0


def test_a_geographic_scene_is_reprojected_to_utm(checkpoint, tmp_path):
    """Sen1Floods11 S2 is on EPSG:4326: chips are cut from a WarpedVRT onto UTM 30N at 10 m; the
    rows' bounds are that grid's windows, and the bands are found by name (B4, B3, B2 of 13)."""
    out = tmp_path / "s2.h5"
    summary = embed(SPAIN_S2, checkpoint, out, chip_size_m=320, batch_size=32, progress=False)
    table = read_embeddings(out)
    assert summary.embedded + summary.nodata == summary.found and summary.embedded > 150
    assert set(table.bands) == {"B4,B3,B2"} and set(table.gsd) == {10.0}
    crs = rasterio.crs.CRS.from_wkt(table.crs[0])
    assert crs.to_epsg() == 32630
    x0 = min(b[0] for b in table.bounds)
    y1 = max(b[3] for b in table.bounds)
    assert x0 % 10 == 0 and y1 % 10 == 0  # on the 10 m lattice
    model = load_checkpoint(checkpoint)
    with rasterio.open(SPAIN_S2) as src:
        # the view: the UTM bounds of the scene snapped outwards to 10 m (as salibi.embed.inputs.scenes does)
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds(src.crs, crs, *src.bounds, densify_pts=21)
        left, top = math.floor(left / 10) * 10, math.ceil(top / 10) * 10
        width, height = math.ceil((right - left) / 10), math.ceil((bottom - top) / -10)
        view = Affine(10.0, 0.0, left, 0.0, -10.0, top)
        with WarpedVRT(src, crs=crs, transform=view, width=width, height=height, resampling=Resampling.bilinear) as vrt:
            for i in (0, len(table) // 2, len(table) - 1):
                np.testing.assert_allclose(table.bounds[i], window_bounds(Window(*table.chip[i]), view))
                expected = chip_embedding(model, vrt, table.chip[i], [4, 3, 2], "lores", 10.0)
                np.testing.assert_allclose(table.embedding[i], expected, rtol=1e-4, atol=1e-4)


def test_chips_over_max_nodata_are_skipped_recorded_and_retried(checkpoint, tmp_path):
    """The reprojected scene's corners lie outside the source (nodata): with --max-nodata 0 the
    chips touching them are skipped with their share; a later run with a higher limit embeds them."""
    out = tmp_path / "s2.h5"
    strict = embed(SPAIN_S2, checkpoint, out, chip_size_m=320, max_nodata=0.0, progress=False)
    table = read_embeddings(out)
    assert strict.nodata > 0 and strict.embedded + strict.nodata == strict.found
    assert len(table.skipped_path) == strict.nodata and not set(table.skipped_path) & set(table.path)
    assert all("of its pixels are invalid" in r and "--max-nodata 0" in r for r in table.skipped_reason)
    assert "over --max-nodata" in strict.format()
    lenient = embed(SPAIN_S2, checkpoint, out, chip_size_m=320, max_nodata=1.0, progress=False)
    table = read_embeddings(out)
    assert lenient.skipped == strict.embedded and lenient.embedded + lenient.nodata == strict.nodata
    assert len(table.path) == len(set(table.path)) == strict.embedded + lenient.embedded


def test_another_chip_grid_is_refused(naip_run, checkpoint, tmp_path):
    import shutil

    from salibi.errors import OutputExistsError

    out = tmp_path / "naip.h5"
    shutil.copy(naip_run[0].output, out)
    with pytest.raises(OutputExistsError, match="another chip grid .320 m chips every 320 m. than this run .160 m"):
        embed(NAIP, checkpoint, out, chip_size_m=160, progress=False)
    with pytest.raises(OutputExistsError, match="another chip grid"):
        embed(NAIP.parent, checkpoint, out, progress=False)  # whole tiles into a chip output


def test_a_chip_size_that_is_not_whole_pixels_fails_the_scene_with_the_fix(checkpoint, tmp_path):
    summary = embed(NAIP, checkpoint, tmp_path / "out.h5", chip_size_m=322, progress=False)
    assert (summary.embedded, summary.failed) == (0, 1)
    path, reason = summary.failures[0]
    assert path == NAIP.name
    assert "--chip-size-m 322 m is not a whole number of" in reason and "e.g. 320 or 325" in reason


def test_a_scene_refused_once_and_embedded_later_leaves_no_failure(checkpoint, tmp_path):
    """Named as polarisations the NAIP scene has none of the low-res encoder's bands: refused (one
    failure for the scene, no chips); named red, green, blue, nir the same output then holds its
    chips and no failure."""
    out = tmp_path / "naip.parquet"
    polarisations = ("VV", "VH", "HH", "HV")
    refused = embed(NAIP, checkpoint, out, chip_size_m=640, band_names=polarisations, modality="lores", progress=False)
    assert refused.failed == 1 and refused.found == 0 and "from 1 scene(s)" in refused.format()
    assert "none of its bands (VV, VH, HH, HV) is one of the lores encoder's" in refused.failures[0][1]
    assert read_embeddings(out).failed_path == [NAIP.name]
    done = embed(NAIP, checkpoint, out, chip_size_m=640, band_names=("red", "green", "blue", "nir"), progress=False)
    assert done.embedded == 35 and sorted(p.name for p in tmp_path.glob("naip*.parquet")) == ["naip.parquet"]
    table = read_embeddings(out)
    assert len(table) == 35 and table.failed_path == [] and set(table.bands) == {"red,green,blue"}
