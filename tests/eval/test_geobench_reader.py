"""The GEO-Bench reader on real files and on generated tasks of every kind."""

from __future__ import annotations

import datetime
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from salibi.errors import DataFormatError, InputError, MissingInputError, UnsafePickleError
from salibi.eval.geobench.tasks import Task, default_root, discover_tasks, open_task, split_date_suffix

from .conftest import REAL

OFFICIAL = REAL / "official_tests"


# -- real files ---------------------------------------------------------------------------


def test_real_eurosat_task(real_root):
    assert list(discover_tasks(real_root)) == ["m-eurosat"]
    task = open_task(real_root, "m-eurosat")
    specs = task.specs
    assert task.kind == "classification" and specs.label.n_classes == 10
    assert specs.patch_size == (64, 64) and specs.spatial_resolution == 10.0
    assert [b.name for b in specs.bands][:2] == ["01 - Coastal aerosol", "02 - Blue"]
    assert task.partition()["train"] == [f"id_{i:04d}" for i in range(5)]
    sample = task.read_sample("id_0003")
    assert list(sample["bands"]) == [b.name for b in specs.bands]
    red = sample["bands"]["04 - Red"]
    assert red.dtype == np.int16 and red.shape == (64, 64) and red.std() > 0
    assert sample["gsd"]["01 - Coastal aerosol"] == 10.0  # stored at 10 m, native 60 m
    assert sample["band_info"]["01 - Coastal aerosol"].spatial_resolution == 60.0
    assert isinstance(sample["label"], int) and 0 <= sample["label"] < 10
    assert task.band_stat("04 - Red")["mean"] == pytest.approx(1403.7, abs=0.1)


def test_real_old_format_brick_kiln_without_bands_order():
    task = Task(OFFICIAL / "brick_kiln_v1.0")
    assert task.specs.label.class_names == ("not brick kiln", "brick kiln")
    sample = task.read_sample("examples_0_12")
    assert len(sample["bands"]) == 13  # key order from the file, as there is no bands_order
    assert sample["bands"]["02 - Blue"].dtype == np.float64
    assert sample["label"] in (0, 1)


def test_real_segmentation_sample_and_dangling_text_link(copy_task):
    task = Task(OFFICIAL / "southAfricaCropType")
    assert task.kind == "segmentation" and task.specs.label.n_classes == 10
    sample = task.read_sample("ref_south_africa_crops_competition_v1_train_labels_0001_0")
    assert sample["label"].shape == (256, 256)
    assert "Cloud Probability" in sample["bands"] and "label" not in sample["bands"]
    assert sample["band_info"]["Cloud Probability"].kind == "CloudProbability"
    with pytest.raises(MissingInputError) as err:
        task.partition()
    message = str(err.value)
    assert "/mnt/home/geo-bench" in message and "does not exist" in message and "--partition" in message

    # With 1.00x_train beside it, the dangling default falls back to it.
    copy = Task(copy_task(OFFICIAL / "southAfricaCropType", "segmentation_v1.0"))
    name = "ref_south_africa_crops_competition_v1_train_labels_0001_0"
    (copy.path / "1.00x_train_partition.json").write_text(f'{{"train": ["{name}"], "valid": [], "test": ["{name}"]}}')
    assert copy.partition()["train"] == [name]


def test_real_missing_task_specs_is_a_clear_error():
    task = Task(OFFICIAL / "cvpr_chesapeake_landcover")
    with pytest.raises(
        MissingInputError, match=r"task_specs\.pkl is missing.*re-download task cvpr_chesapeake_landcover"
    ):
        task.specs  # noqa: B018 - reading the property is the test
    assert task.partition()["train"][0] == "id_000051"


# -- generated tasks ----------------------------------------------------------------------


def test_discovery_finds_every_generated_task(synthetic_root):
    tasks = discover_tasks(synthetic_root)
    assert set(tasks) == {
        "m-tiny-s2",
        "m-tiny-multilabel",
        "m-tiny-forestnet",
        "m-tiny-so2sat",
        "m-old-format",
        "m-tiny-seg",
        "m-tiny-neontree",
        "m-dangling",
    }
    assert tasks["m-tiny-seg"].parent.name == "segmentation_v1.0"
    # A benchmark folder itself works as the root too.
    assert set(discover_tasks(synthetic_root / "segmentation_v1.0")) == {"m-tiny-seg", "m-tiny-neontree", "m-dangling"}


def test_hidden_and_underscore_folders_are_skipped(tmp_path, synthetic_root):
    root = tmp_path / "root"
    shutil.copytree(synthetic_root / "classification_v1.0" / "m-tiny-s2", root / "classification_v1.0" / "m-tiny-s2")
    shutil.copytree(root / "classification_v1.0" / "m-tiny-s2", root / "classification_v1.0" / "_old")
    shutil.copytree(root / "classification_v1.0" / "m-tiny-s2", root / "classification_v1.0" / ".partial")
    assert list(discover_tasks(root)) == ["m-tiny-s2"]


def test_multilabel_sample(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-multilabel")
    assert task.kind == "multilabel" and task.specs.label.n_classes == 5
    sample = task.read_sample(task.partition()["train"][3])
    assert sample["label"].shape == (5,) and set(np.unique(sample["label"])) <= {0, 1}
    assert sample["label"].sum() == 2


def test_dated_keys(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-forestnet")
    sample = task.read_sample("id_0004")
    assert list(sample["bands"])[0] == "02 - Blue_2018-05-05"
    assert sample["dates"]["02 - Blue_2018-05-05"] == datetime.date(2018, 5, 5)
    assert sample["band_info"]["02 - Blue_2018-05-05"].kind == "Landsat8"
    assert sample["gsd"]["02 - Blue_2018-05-05"] == 15
    # Statistics are kept per band name; dated keys find them.
    assert task.band_stat("02 - Blue_2018-05-05") == task.band_stats["02 - Blue"]


def test_split_date_suffix():
    assert split_date_suffix("04 - Red_2020-01-05") == ("04 - Red", datetime.date(2020, 1, 5))
    assert split_date_suffix("label_2021-06-01") == ("label", datetime.date(2021, 6, 1))
    assert split_date_suffix("B4_2020-01-05_10-30-00-UTC") == ("B4", datetime.date(2020, 1, 5))
    assert split_date_suffix("12 - SWIR") == ("12 - SWIR", None)


def test_segmentation_label_key_with_date(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-seg")
    sample = task.read_sample("id_0001")
    assert set(sample["bands"]) == {"Red", "Green", "Blue"}
    assert sample["label"].shape == (40, 40) and set(np.unique(sample["label"])) == {0, 1}


def test_mixed_band_shapes(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-neontree")
    sample = task.read_sample("id_0000")
    shapes = {k: v.shape for k, v in sample["bands"].items()}
    assert shapes == {
        "Red": (40, 40),
        "Green": (40, 40),
        "Blue": (40, 40),
        "Canopy Height Model": (4, 4),
        "Hyperspectral": (4, 4, 8),
    }
    assert sample["gsd"]["Red"] == pytest.approx(0.1) and sample["gsd"]["Canopy Height Model"] == 1
    assert sample["band_info"]["Hyperspectral"].n_bands == 8


def test_old_format_without_bands_order(synthetic_root):
    task = open_task(synthetic_root, "m-old-format")
    with h5py.File(task.sample_path("examples_3")) as f:
        assert b"bands_order" not in f.attrs["pickle"].encode()
    sample = task.read_sample("examples_3")
    assert len(sample["bands"]) == 13 and sample["label"] == 1
    assert task.specs.bands[0].kind == "Sentinel2"


def test_dangling_symlink_falls_back_to_full_train(synthetic_root):
    task = open_task(synthetic_root, "m-dangling")
    link = task.path / "default_partition.json"
    assert link.is_symlink() and not link.exists()
    assert task.partition() == task.partition("1.00x_train")
    assert len(task.partition()["train"]) == 12


def test_named_partition(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-s2")
    assert task.partition("1.00x_train") == task.partition("default")
    half = task.partition("0.50x_train")
    assert half["train"] == task.partition()["train"][:6] and half["test"] == task.partition()["test"]
    with pytest.raises(
        MissingInputError,
        match=r"no readable partition '0\.01x_train'.*readable partitions: 0\.50x_train, 1\.00x_train, default",
    ):
        task.partition("0.01x_train")


# -- clear errors -------------------------------------------------------------------------


def test_missing_root_says_how_to_fix(tmp_path):
    with pytest.raises(MissingInputError, match=r"does not exist: pass --root or set GEO_BENCH_DIR"):
        discover_tasks(tmp_path / "nowhere")


def test_root_without_tasks(tmp_path):
    (tmp_path / "classification_v1.0").mkdir()
    with pytest.raises(MissingInputError, match=r"no GEO-Bench tasks under"):
        discover_tasks(tmp_path)


def test_unknown_task_lists_the_available_ones(synthetic_root):
    with pytest.raises(InputError, match=r"unknown GEO-Bench task 'm-eurosat'.*available: m-dangling, m-old-format"):
        open_task(synthetic_root, "m-eurosat")


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GEO_BENCH_DIR", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("GEO_BENCH_DIR")
    assert default_root() == Path.home() / "dataset" / "geobench"


def test_truncated_sample_file(copy_task, synthetic_root):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    path = task.sample_path("id_0001")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"id_0001\.hdf5 is not a readable HDF5 file.*re-download"):
        task.read_sample("id_0001")


def test_garbage_pickle_attribute(copy_task, synthetic_root):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    with h5py.File(task.sample_path("id_0002"), "a") as f:
        f.attrs["pickle"] = "b'\\x80\\x04\\x95garbage'"
    with pytest.raises(DataFormatError, match=r"id_0002\.hdf5: damaged pickle"):
        task.read_sample("id_0002")


def test_band_listed_but_missing(copy_task, synthetic_root):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    with h5py.File(task.sample_path("id_0002"), "a") as f:
        del f["04 - Red"]
    with pytest.raises(DataFormatError, match=r"band '04 - Red' listed in the sample metadata has no dataset"):
        task.read_sample("id_0002")


def test_sample_missing_from_disk(copy_task, synthetic_root):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    task.sample_path("id_0005").unlink()
    with pytest.raises(
        MissingInputError, match=r"id_0005\.hdf5 listed in the partition of task m-tiny-s2 does not exist"
    ):
        task.read_sample("id_0005")


def test_hostile_sample_attribute_does_not_run(copy_task, synthetic_root, tmp_path):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with h5py.File(task.sample_path("id_0000"), "a") as f:
        f.attrs["pickle"] = str(pickle.dumps({"label": Exploit()}))
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle (posix|nt|os)\.system from .*id_0000\.hdf5"):
        task.read_sample("id_0000")
    assert not marker.exists()


def test_segmentation_labels_of_wrong_rank(copy_task, synthetic_root):
    task = Task(copy_task(synthetic_root / "segmentation_v1.0" / "m-tiny-seg", "segmentation_v1.0"))
    with h5py.File(task.sample_path("id_0000"), "a") as f:
        del f["label_2021-06-01"]
        f["label_2021-06-01"] = np.zeros(5, dtype=np.int64)
    with pytest.raises(DataFormatError, match=r"segmentation label of shape \(5,\)"):
        task.read_sample("id_0000")
