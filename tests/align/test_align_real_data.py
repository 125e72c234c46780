"""salibi align on the real sample rasters: geometry, pixel values, split, statistics."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import from_bounds

from salibi.align import align

from .conftest import FLOODS, SN6


def grid_positions(bounds: np.ndarray, tile: float, extent: tuple[float, float, float, float]) -> np.ndarray:
    """(row, col) of every chip on the chip grid whose extent is ``extent``."""
    cols = np.rint((bounds[:, 0] - extent[0]) / tile).astype(int)
    rows = np.rint((extent[3] - bounds[:, 3]) / tile).astype(int)
    return np.stack([rows, cols], axis=1)


@pytest.mark.parametrize("name", ["sn6_optical", "sn6_sar", "floods"])
def test_schema_and_shared_bounds(name, request):
    summary = request.getfixturevalue(name)
    with h5py.File(summary.path) as f:
        assert f.attrs["format"] == "salibi-aligned" and f.attrs["format_version"] == 2
        tile = f.attrs["tile_size_m"]
        n = f["bounds"].shape[0]
        assert n == summary.chips_kept > 0 and f["split"].shape == (n,) and f["split"].dtype == np.uint8
        b = f["bounds"][:]
        # Every chip is a tile_size square on one lattice of tile_size steps.
        np.testing.assert_allclose(b[:, 2] - b[:, 0], tile, atol=1e-6)
        np.testing.assert_allclose(b[:, 3] - b[:, 1], tile, atol=1e-6)
        steps = (b[:, :2] - b[0, :2]) / tile
        np.testing.assert_allclose(steps, np.rint(steps), atol=1e-6)
        x0, y0, x1, y1 = summary.footprint
        assert (b[:, 0] >= x0 - 1e-6).all() and (b[:, 2] <= x1 + 1e-6).all()
        assert (b[:, 1] >= y0 - 1e-6).all() and (b[:, 3] <= y1 + 1e-6).all()
        for m in summary.gsd:
            g = f[m]
            data = g["data"]
            assert data.dtype == np.float32 and data.chunks == (1, *data.shape[1:])
            # Each modality's chip covers exactly the shared bounds at its own GSD.
            assert data.shape[2] == data.shape[3] and abs(data.shape[3] * g.attrs["gsd"] - tile) < 1e-6
            assert list(g.attrs["bands"]) == summary.bands[m] and len(g.attrs["sources"]) >= 1
            assert np.isnan(g.attrs["nodata"]) and g["mean"].shape == g["std"].shape == (data.shape[1],)


def test_default_crs_is_the_hires_one_or_utm(sn6_optical, floods):
    assert sn6_optical.crs == "EPSG:32631"
    # Sen1Floods11 is EPSG:4326 at 0.78 degrees west: UTM zone 30 north.
    assert floods.crs == "EPSG:32630"
    with h5py.File(floods.path) as f:
        assert CRS.from_wkt(f.attrs["crs"]).to_epsg() == 32630


def test_optical_chips_equal_the_source_pixels(sn6_optical, samples):
    """pan1/ms1 are read as is (same CRS): chips are the source pixels at those coordinates,
    up to the 0.001 % pixel-size rounding (0.4999935 m -> 0.5 m)."""
    with h5py.File(sn6_optical.path) as f:
        bounds, hires, lores = f["bounds"][:], f["hires/data"], f["lores/data"]
        picks = np.linspace(0, len(bounds) - 1, 6).astype(int)
        for name, data, size in (("pan1.tif", hires, 60), ("ms1.tif", lores, 30)):
            with rasterio.open(samples / SN6 / name) as src:
                for i in picks:
                    window = from_bounds(*bounds[i], src.transform)
                    expected = src.read(
                        window=window,
                        out_shape=(src.count, size, size),
                        resampling=Resampling.bilinear,
                        out_dtype=np.float32,
                    )
                    chip = data[i]
                    assert not np.isnan(chip).any()
                    scale = np.abs(expected).mean()
                    assert np.abs(chip - expected).mean() < 0.01 * scale, (name, i)
                    assert np.corrcoef(chip.ravel(), expected.ravel())[0, 1] > 0.99


def test_reprojected_chips_match_a_per_chip_gdal_warp(floods, samples, sen1floods11):
    """Sen1Floods11 is geographic: each chip must equal GDAL warping the source straight onto
    the chip's UTM pixel grid (within resampling tolerance), nodata masks included."""
    with h5py.File(floods.path) as f:
        crs = CRS.from_wkt(f.attrs["crs"])
        bounds = f["bounds"][:]
        for m, name in (("lores", "S2Hand.tif"), ("sar", "S1Hand.tif")):
            data = f[m]["data"]
            with rasterio.open(sen1floods11 / f"{FLOODS}{name}") as src:
                for i in np.linspace(0, len(bounds) - 1, 5).astype(int):
                    expected = np.full(data.shape[1:], np.nan, np.float32)
                    reproject(
                        rasterio.band(src, list(range(1, src.count + 1))),
                        expected,
                        dst_transform=Affine(10, 0, bounds[i][0], 0, -10, bounds[i][3]),
                        dst_crs=crs,
                        src_nodata=src.nodata,
                        dst_nodata=np.nan,
                        resampling=Resampling.average,
                    )
                    chip = data[i]
                    both = ~np.isnan(chip) & ~np.isnan(expected)
                    assert both.mean() > 0.9
                    diff = np.abs(chip[both] - expected[both]).mean()
                    assert diff < 0.02 * np.abs(expected[both]).mean() + 1e-3, (m, i, diff)


def test_complex_slc_becomes_intensity(sn6_sar, samples):
    with h5py.File(sn6_sar.path) as f:
        names = list(f["sar"].attrs["bands"])
        # one-band files named as polarisations are named by it; the 4-band file's bands are not named
        assert names == [f"sar_masked:{b}" for b in (1, 2, 3, 4)] + ["VV", "VH"]
        assert f["sar"].attrs["complex_as"] == "intensity |z|^2"
        vv = f["sar/data"][:, 4]
    with rasterio.open(samples / SN6 / "sar_vv.tif") as src:
        intensity = np.abs(src.read(1).astype(np.complex128)) ** 2
    # Area averages of |z|^2 over the scene keep its magnitude (a few chips are cut at edges).
    ratio = np.nanmean(vv) / intensity.mean()
    assert 0.5 < ratio < 2.0 and (vv[~np.isnan(vv)] >= 0).all()


def test_split_is_spatially_blocked(floods):
    with h5py.File(floods.path) as f:
        split, bounds = f["split"][:], f["bounds"][:]
        tile, block = f.attrs["tile_size_m"], int(f.attrs["split_block_chips"])
    rc = grid_positions(bounds, tile, floods.grid_extent)
    train, val = rc[split == 0], rc[split == 1]
    assert len(train) and len(val)
    assert 0.03 < len(val) / (floods.chips_kept + floods.chips_dropped_buffer) < 0.3
    # Chebyshev distance >= 2: no train chip touches a validation chip, not even at a corner.
    gaps = np.abs(train[:, None, :] - val[None, :, :]).max(axis=2)
    assert gaps.min() >= 2
    # Validation is made of whole blocks of the grid: no block holds both splits.
    assert block > 1
    val_blocks = {tuple(b) for b in val // block}
    assert not val_blocks & {tuple(b) for b in train // block}
    assert floods.chips_dropped_buffer > 0


def test_statistics_are_over_the_training_split(floods):
    with h5py.File(floods.path) as f:
        train = f["split"][:] == 0
        for m in ("lores", "sar"):
            data = f[m]["data"][:][train].astype(np.float64)
            expected_mean = np.nanmean(data, axis=(0, 2, 3))
            expected_std = np.nanstd(data, axis=(0, 2, 3))
            np.testing.assert_allclose(f[m]["mean"][:], expected_mean, rtol=1e-4)
            np.testing.assert_allclose(f[m]["std"][:], expected_std, rtol=1e-3)


def test_band_selection_reorders_channels(floods, samples, tmp_path, sen1floods11):
    out = tmp_path / "rgb.h5"
    summary = align(
        sar=sen1floods11 / f"{FLOODS}S1Hand.tif",
        lores=sen1floods11 / f"{FLOODS}S2Hand.tif",
        output=out,
        tile_size_m=240,
        gsd={"sar": 10, "lores": 10},
        bands={"lores": [4, 3, 2], "sar": [2]},
        progress=False,
    )
    assert summary.bands == {"lores": ["B4", "B3", "B2"], "sar": ["VH"]}
    with h5py.File(out) as picked, h5py.File(floods.path) as full:
        np.testing.assert_array_equal(picked["bounds"][:], full["bounds"][:])
        np.testing.assert_array_equal(picked["lores/data"][:20], full["lores/data"][:20][:, [3, 2, 1]])
        np.testing.assert_array_equal(picked["sar/data"][:20], full["sar/data"][:20][:, [1]])


def test_band_files_at_several_resolutions(samples, tmp_path):
    """BigEarthNet: Sentinel-2 bands as separate 10 m and 20 m files, Sentinel-1 VV/VH."""
    s2 = samples / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48"
    s1 = samples / "bigearthnet" / "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    stem1, stem2 = s1.name, s2.name
    out = tmp_path / "ben.h5"
    summary = align(
        lores=[s2 / f"{stem2}_B04.tif", s2 / f"{stem2}_B05.tif"],
        sar=[s1 / f"{stem1}_VV.tif", s1 / f"{stem1}_VH.tif"],
        output=out,
        tile_size_m=200,
        val_fraction=0,
        progress=False,
    )
    assert summary.gsd == {"lores": 10.0, "sar": 10.0}  # the finest file of each modality
    assert summary.chips_kept == 36 and summary.chips_val == 0
    with h5py.File(out) as f, rasterio.open(s2 / f"{stem2}_B05.tif") as b05:
        assert list(f["lores"].attrs["sources"]) == [f"{stem2}_B04.tif", f"{stem2}_B05.tif"]
        assert list(f["lores"].attrs["bands"]) == ["B04", "B05"]  # named from the band file names
        assert list(f["sar"].attrs["bands"]) == ["VV", "VH"]
        # The 20 m band is upsampled bilinearly to 10 m: compare with GDAL's bilinear read of
        # the same ground window (inside the chip, where both use the same neighbours).
        for i in (7, 14, 21):
            chip = f["lores/data"][i, 1].astype(np.float64)
            window = from_bounds(*f["bounds"][i], b05.transform)
            expected = b05.read(1, window=window, out_shape=(20, 20), resampling=Resampling.bilinear)
            np.testing.assert_allclose(chip[1:-1, 1:-1], expected[1:-1, 1:-1], rtol=0.02)


def test_output_is_replaced_atomically_with_overwrite(sn6_optical, samples, tmp_path):
    out = tmp_path / "set.h5"
    out.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        align(
            hires=samples / SN6 / "pan1.tif",
            lores=samples / SN6 / "ms1.tif",
            output=out,
            tile_size_m=60,
            progress=False,
        )
    assert out.read_bytes() == b"old"
    summary = align(
        hires=samples / SN6 / "pan1.tif",
        lores=samples / SN6 / "ms1.tif",
        output=out,
        tile_size_m=60,
        overwrite=True,
        progress=False,
    )
    assert summary.chips_in_grid == 16 and h5py.is_hdf5(out)  # 4 x 4 chips fit in 299.996 m
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]


def test_output_is_flushed_to_disk_before_the_rename_and_its_folder_entry_after(samples, tmp_path, monkeypatch):
    import salibi.fileio as fileio

    out = tmp_path / "set.h5"
    events: list[tuple[str, Path, bool]] = []  # (what was flushed, where, was the output there yet)
    flush_file, flush_folder = fileio.fsync_tree, fileio.fsync_dir

    def file_flushed(path: Path) -> None:
        events.append(("file", Path(path).parent, out.exists()))
        flush_file(path)

    def folder_flushed(path: Path) -> None:
        events.append(("folder", Path(path), out.exists()))
        flush_folder(path)

    monkeypatch.setattr(fileio, "fsync_tree", file_flushed)
    monkeypatch.setattr(fileio, "fsync_dir", folder_flushed)
    align(hires=samples / SN6 / "pan1.tif", lores=samples / SN6 / "ms1.tif", output=out, tile_size_m=60, progress=False)
    assert events == [("file", tmp_path, False), ("folder", tmp_path, True)]


def test_same_seed_same_split(floods, samples, tmp_path, sen1floods11):
    again = align(
        sar=sen1floods11 / f"{FLOODS}S1Hand.tif",
        lores=sen1floods11 / f"{FLOODS}S2Hand.tif",
        output=tmp_path / "again.h5",
        tile_size_m=240,
        gsd={"sar": 10, "lores": 10},
        progress=False,
    )
    with h5py.File(again.path) as a, h5py.File(floods.path) as b:
        np.testing.assert_array_equal(a["split"][:], b["split"][:])
        np.testing.assert_array_equal(a["bounds"][:], b["bounds"][:])


def test_footprint_is_the_intersection(sn6_sar, samples):
    """The SAR set: the SLC covers only 506 m of the 900 m scene; chips stay inside it."""
    with rasterio.open(samples / SN6 / "sar_vv.tif") as src:
        corners = [src.transform * c for c in ((0, 0), (src.width, 0), (0, src.height), (src.width, src.height))]
    xs, ys = zip(*corners)
    assert sn6_sar.footprint[0] == pytest.approx(min(xs)) and sn6_sar.footprint[3] == pytest.approx(max(ys))
    assert sn6_sar.footprint[2] - sn6_sar.footprint[0] < 510


def test_summary_text(floods):
    text = floods.format()
    assert f"{floods.chips_kept} chips" in text and "EPSG:32630" in text and "chips/s" in text
    assert "lores: 13 band(s)" in text and "24x24 px" in text


def test_output_path_is_the_one_asked_for(floods):
    assert Path(floods.path).name == "floods.h5"


def test_reading_in_small_batches_gives_the_same_set(sn6_optical, floods, samples, tmp_path, monkeypatch, sen1floods11):
    """Wide scenes are read in column batches under a memory budget: forcing one chip per
    batch must not change the result (to float rounding for windowed reads, to GDAL's warp
    approximation for reprojected inputs)."""
    import salibi.align.strips as strips

    monkeypatch.setattr(strips, "BATCH_BYTES", 1)
    small = align(
        hires=samples / SN6 / "pan1.tif",
        lores=samples / SN6 / "ms1.tif",
        output=tmp_path / "a.h5",
        tile_size_m=30,
        progress=False,
    )
    with h5py.File(small.path) as a, h5py.File(sn6_optical.path) as b:
        for name in ("bounds", "split"):
            np.testing.assert_array_equal(a[name][:], b[name][:])
        for name in ("hires/data", "lores/data", "lores/mean"):  # float rounding of window origins only
            np.testing.assert_allclose(a[name][:], b[name][:], rtol=1e-6)
    small = align(
        sar=sen1floods11 / f"{FLOODS}S1Hand.tif",
        lores=sen1floods11 / f"{FLOODS}S2Hand.tif",
        output=tmp_path / "b.h5",
        tile_size_m=240,
        gsd={"sar": 10, "lores": 10},
        progress=False,
    )
    with h5py.File(small.path) as a, h5py.File(floods.path) as b:
        np.testing.assert_array_equal(a["bounds"][:], b["bounds"][:])
        np.testing.assert_array_equal(a["split"][:], b["split"][:])
        x, y = a["lores/data"][:], b["lores/data"][:]
        both = ~np.isnan(x) & ~np.isnan(y)
        assert both.mean() > 0.99 and np.abs(x[both] - y[both]).mean() < 1e-3 * np.abs(y[both]).mean()
