"""Each implemented GEO-Bench-2 dataset's conventions (item positions, band orders, label columns
and remaps, time steps, GSDs), on small tortillas written here in the layout the official
generators write. Band ``i`` (stored order) holds ``100 * (i + 1)``, so a wrong order shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from salibi.errors import DataFormatError
from salibi.eval.geobench2.datasets import CONVENTIONS
from salibi.eval.geobench2.reader import GeoBench2Task, discover_datasets

from . import tortilla_writer as W

S2_12 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _dataset(root: Path, name: str, samples: Sequence[W.Item]) -> GeoBench2Task:
    """``samples`` written into the dataset's files (spread over its parts), then discovered."""
    files = CONVENTIONS[name].files
    for part, file_name in enumerate(files):
        W.write_dataset(root / name, file_name, samples[part :: len(files)])
    return discover_datasets(root)[0][name]


def _tif(count: int, size: int = 16, dtype: str = "uint16", base: int | None = None, **options) -> bytes:
    base = base or (10 if dtype == "uint8" else 100)  # uint8 holds up to 25 bands of 10 * (i + 1)
    return W.geotiff(W.banded(count, size, dtype, base), **options)


def _mask(values: Sequence[int], size: int = 16, dtype: str = "uint8") -> bytes:
    mask = np.zeros((1, size, size), dtype=dtype)
    for i, value in enumerate(values):
        mask[0, i] = value
    return W.geotiff(mask)


def _stored_order(sample: dict, keys: Sequence[str], base: int = 100) -> list[int]:
    """The stored position (1-based) each key was read from."""
    return [int(np.nanmax(sample["bands"][k])) // base for k in keys]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_so2sat_s1_real_parts_vh_first_labels_by_index(tmp_path):
    items = [W.Item("s1", "GTiff", _tif(2, dtype="float32", crs=None)), W.Item("s2", "GTiff", _tif(10, crs=None))]
    samples = [
        W.sample(f"sample_{i}", split, items, labels=i) for i, split in enumerate(["train", "validation", "test"])
    ]
    task = _dataset(tmp_path, "so2sat", samples)
    sample = task.read_sample("sample_1")
    assert _stored_order(sample, ["s1:VH.Real", "s1:VV.Real"]) == [1, 2]
    keys = [f"s2:{b}" for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")]
    assert _stored_order(sample, keys) == list(range(1, 11))
    assert sample["label"] == 1 and set(sample["gsd"].values()) == {10.0}  # no georeference: nominal
    bad = _dataset(tmp_path / "bad", "so2sat", [W.sample("sample_0", "train", items, labels=17)])
    with pytest.raises(DataFormatError, match="not an index below 17"):
        bad.read_sample("sample_0")


def test_treesatai_cir_aerial_s1_s2_orders_and_species_labels(tmp_path):
    items = [
        W.Item("aerial", "GTiff", _tif(4, size=32, dtype="uint8", gsd=0.2)),
        W.Item("s1", "GTiff", _tif(3, size=6, dtype="float32")),
        W.Item("s2", "GTiff", _tif(12, size=6)),
    ]
    task = _dataset(tmp_path, "treesatai", [W.sample("sample_0", "train", items, species_labels=["Picea", "Acer"])])
    sample = task.read_sample("sample_0")
    assert _stored_order(sample, ["aerial:nir", "aerial:green", "aerial:blue", "aerial:red"], 10) == [1, 2, 3, 4]
    assert _stored_order(sample, ["s1:VV", "s1:VH", "s1:VV/VH"]) == [1, 2, 3]
    s2 = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09"]
    assert _stored_order(sample, [f"s2:{b}" for b in s2]) == list(range(1, 13))
    assert sample["gsd"]["aerial:red"] == 0.2 and sample["gsd"]["s2:B04"] == 10.0
    classes = CONVENTIONS["treesatai"].label.classes
    assert [classes[i] for i in np.flatnonzero(sample["label"])] == ["Acer", "Picea"]


def test_forestnet_landsat8_bands_and_nominal_15_m(tmp_path):
    items = [W.Item("image", "GTiff", _tif(6, dtype="uint8", crs="EPSG:4326", gsd=15 / 111320))]
    task = _dataset(tmp_path, "forestnet", [W.sample("sample_0", "train", items, labels=3)])
    sample = task.read_sample("sample_0")
    assert _stored_order(sample, [f"landsat8:LC08_B{n}" for n in range(2, 8)], 10) == [1, 2, 3, 4, 5, 6]
    assert set(sample["gsd"].values()) == {15.0} and sample["label"] == 3
    info = sample["band_info"]["landsat8:LC08_B5"]
    assert info.kind == "Landsat8" and "nir" in info.alt_names and info.wavelength == pytest.approx(0.865)


def test_cloudsen12_twelve_bands_and_classes_as_stored(tmp_path):
    items = [W.Item("s2l2a", "GTiff", _tif(12)), W.Item("target", "GTiff", _mask([0, 1, 2, 3, 9]))]
    task = _dataset(tmp_path, "cloudsen12", [W.sample("sample_0", "train", items)])
    sample = task.read_sample("sample_0")
    assert _stored_order(sample, [f"s2:{b}" for b in S2_12]) == list(range(1, 13))
    assert sample["label"][:5, 0].tolist() == [0, 1, 2, 3, 9]  # 9 is outside the 4 classes: ignored
    assert task.specs.label.n_classes == 4 and task.specs.patch_size == (16, 16)


def test_flair2_rgbn_plus_elevation_and_mask_shifted(tmp_path):
    items = [
        W.Item("aerial", "GTiff", _tif(5, dtype="uint8", gsd=0.2)),
        W.Item("mask", "GTiff", _mask([1, 5, 13, 14, 19])),
    ]
    task = _dataset(tmp_path, "flair2", [W.sample("sample_0", "train", items)])
    sample = task.read_sample("sample_0")
    keys = ["aerial:red", "aerial:green", "aerial:blue", "aerial:nir", "aerial:elevation"]
    assert _stored_order(sample, keys, 10) == [1, 2, 3, 4, 5]
    assert sample["label"][:5, 0].tolist() == [0, 4, 12, 12, 12]  # > 13 -> 13 ("other"), then minus 1
    assert sample["band_info"]["aerial:elevation"].kind == "ElevationBand"


def test_fotw_window_a_and_the_semantic_mask(tmp_path):
    items = [
        W.Item("win_a", "GTiff", _tif(4)),
        W.Item("win_b", "GTiff", _tif(4, base=1000)),
        W.Item("instance_mask", "GTiff", _mask([7, 7, 7])),
        W.Item("semantic_3class_mask", "GTiff", _mask([0, 1, 2])),
    ]
    task = _dataset(tmp_path, "fotw", [W.sample("sample_0", "train", items)])
    sample = task.read_sample("sample_0")
    assert _stored_order(sample, ["win_a:B04", "win_a:B03", "win_a:B02", "win_a:B08"]) == [1, 2, 3, 4]
    assert sample["label"][:3, 0].tolist() == [0, 1, 2]


def test_kuro_siwo_post_event_valid_mask_and_remap(tmp_path):
    valid = np.ones((1, 16, 16), dtype="uint8")
    valid[0, :4] = 0
    items = [
        W.Item("pre_event_1", "GTiff", _tif(2, dtype="float32", base=1000)),
        W.Item("pre_event_2", "GTiff", _tif(2, dtype="float32", base=2000)),
        W.Item("post_event", "GTiff", _tif(2, dtype="float32")),
        W.Item("dem", "GTiff", _tif(1, dtype="float32", base=5000)),
        W.Item("mask", "GTiff", _mask([0, 1, 2, 3, 8])),
        W.Item("invalid_data", "GTiff", W.geotiff(valid)),
    ]
    samples = [W.sample(str(i), "train", items) for i in (0, 1, 2, 10)]
    task = _dataset(tmp_path, "kuro_siwo", samples)
    assert task.partition()["train"] == ["0", "1", "10", "2"]  # tortilla:id sorted as strings
    sample = task.read_sample("10")
    assert _stored_order(sample, ["post:VV", "post:VH"]) == [1, 2]  # the post-event image, VV then VH
    assert np.isnan(sample["bands"]["post:VV"][:4]).all() and not np.isnan(sample["bands"]["post:VV"][4:]).any()
    assert sample["label"][:5, 0].tolist() == [1, 2, 3, 0, 0]
    assert set(sample["gsd"].values()) == {10.0}


def test_spacenet7_rgb_of_four_bands_and_mask_plus_one(tmp_path):
    items = [W.Item("images", "GTiff", _tif(4, dtype="uint8", gsd=4.77)), W.Item("mask", "GTiff", _mask([0, 1]))]
    task = _dataset(tmp_path, "spacenet7", [W.sample("sample_0", "train", items)])
    sample = task.read_sample("sample_0")
    assert sorted(sample["bands"]) == ["planet:blue", "planet:green", "planet:red"]
    assert _stored_order(sample, ["planet:red", "planet:green", "planet:blue"], 10) == [1, 2, 3]
    assert sample["label"][:3, 0].tolist() == [1, 2, 1] and sample["gsd"]["planet:red"] == 4.0


def test_dynamic_earthnet_first_planet_image_s2_and_label_by_id_over_three_parts(tmp_path):
    def items(n_planet: int) -> list[W.Item]:
        planets = [W.Item(f"planet_{i}", "GTiff", _tif(4, gsd=3.0, base=100 + 1000 * i)) for i in range(n_planet)]
        return [*planets, W.Item("s1", "GTiff", _tif(2, dtype="float32", base=7000)),
                W.Item("s2", "GTiff", _tif(12, gsd=3.0)), W.Item("label", "GTiff", _mask([0, 6]))]  # fmt: skip

    samples = [W.sample(f"sample_{i}", "train" if i < 4 else "test", items(2 + i % 2)) for i in range(6)]
    task = _dataset(tmp_path, "dynamic_earthnet", samples)
    assert sorted(sum(task.partition().values(), [])) == [f"sample_{i}" for i in range(6)]
    sample = task.read_sample("sample_3")
    assert _stored_order(sample, ["planet:blue", "planet:green", "planet:red", "planet:nir"]) == [1, 2, 3, 4]
    s2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B10", "B11", "B12"]
    assert _stored_order(sample, [f"s2:{b}" for b in s2]) == list(range(1, 13))
    assert sample["label"][:2, 0].tolist() == [0, 6] and sample["gsd"]["s2:B04"] == 3.0


def test_pastis_first_time_step_of_hdf5_series_and_semantic_channel(tmp_path):
    def series(count: int, steps: int = 3) -> bytes:
        # step t, band i holds 100 * (i + 1) + 10000 * t
        data = np.stack([W.banded(count, 8, "float32") + 10000 * t for t in range(steps)])
        return W.hdf5(data)

    target = np.zeros((3, 8, 8), dtype="int64")
    target[0, 0, :2] = [5, 19]
    target[1] = 99
    items = [W.Item("s2", "HDF5", series(10)), W.Item("s1a", "HDF5", series(3)), W.Item("s1d", "HDF5", series(3)),
             W.Item("semantic", "HDF5", W.hdf5(target)), W.Item("instance", "HDF5", W.hdf5(target[:1]))]  # fmt: skip
    samples = [W.sample(f"sample_{i}", "train", items) for i in range(3)]
    task = _dataset(tmp_path, "pastis", samples)
    sample = task.read_sample("sample_2")
    keys = [f"s2:{b}" for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")]
    assert _stored_order(sample, keys) == list(range(1, 11))  # and from step 0 (later steps add 10000)
    assert _stored_order(sample, ["s1_asc:VV", "s1_asc:VH", "s1_asc:VV/VH"]) == [1, 2, 3]
    assert sample["label"][0, :3].tolist() == [5, 19, 0] and task.specs.label.n_classes == 20
    assert set(sample["gsd"].values()) == {10.0}


def test_missing_item_and_unknown_class_fail_with_one_line(tmp_path):
    short = [W.Item("s1", "GTiff", _tif(2, dtype="float32"))]
    task = _dataset(tmp_path, "benv2", [W.sample("sample_0", "train", short, labels=["Pastures"])])
    with pytest.raises(DataFormatError, match="has no item 1 .items: s1.") as caught:
        task.read_sample("sample_0")
    assert "\n" not in str(caught.value)
    full = [*short, W.Item("s2", "GTiff", _tif(12))]
    task = _dataset(tmp_path / "b", "benv2", [W.sample("sample_0", "train", full, labels=["Pastures", "Moon"])])
    with pytest.raises(DataFormatError, match="unknown class 'Moon'"):
        task.read_sample("sample_0")
