"""GEO-Bench-2 datasets read from the genuine sample root (../shared/geobench2_samples), as the
official reader loads them: splits, tacoreader's order, bands, labels and GSDs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.eval.geobench2.datasets import CONVENTIONS, SKIPPED
from salibi.eval.geobench2.reader import GeoBench2Task, discover_datasets, is_geobench2_root
from salibi.eval.geobench2.tortilla import Tortilla

from . import tortilla_writer as W


@pytest.fixture(scope="module")
def root(shared) -> Path:
    return shared("geobench2_samples")


@pytest.fixture(scope="module")
def tasks(root) -> dict[str, GeoBench2Task]:
    found, skipped = discover_datasets(root)
    assert skipped == {}
    return found


def test_root_is_detected_and_every_sample_dataset_found(root, tasks, shared):
    assert is_geobench2_root(root) and is_geobench2_root(root / "benv2")
    assert not is_geobench2_root(shared("geobench_samples"))  # GEO-Bench v1: HDF5 folders
    assert sorted(tasks) == ["benv2", "burn_scars", "spacenet2"]
    one, _ = discover_datasets(root / "spacenet2")  # a dataset folder as the root
    assert list(one) == ["spacenet2"]


def test_split_sizes_and_tacoreader_order(tasks):
    sizes = {name: {k: len(v) for k, v in t.partition().items()} for name, t in tasks.items()}
    assert sizes == {
        "benv2": {"train": 2, "valid": 2, "test": 2},
        "burn_scars": {"train": 10, "valid": 3, "test": 3},
        "spacenet2": {"train": 9, "valid": 6, "test": 6},
    }
    # Sorted by tortilla:id as strings, like tacoreader.load([...]): sample_10 before sample_2.
    train = tasks["burn_scars"].partition()["train"]
    assert train == sorted(train) and train[:3] == ["sample_1", "sample_12", "sample_13"]
    assert tasks["benv2"].partitions() == ["default"]
    with pytest.raises(InputError, match="one partition"):
        tasks["benv2"].partition("1.00x_train")


def test_benv2_s1_is_stored_vh_then_vv_and_labels_are_19_hot(tasks, root):
    task = tasks["benv2"]
    outer = {e.id: e for e in Tortilla.open(root / "benv2" / "geobench_benv2.tortilla").entries}
    for name in sum(task.partition().values(), []):
        sample = task.read_sample(name)
        vv, vh = sample["bands"]["s1:VV"], sample["bands"]["s1:VH"]
        assert vv.mean() > vh.mean() + 3  # co-polarised backscatter is stronger (dB): VV really is VV
        names = outer[name].fields["labels"]
        label = sample["label"]
        assert label.dtype == np.int8 and label.shape == (19,) and label.sum() == len(names)
        classes = CONVENTIONS["benv2"].label.classes
        assert {classes[i] for i in np.flatnonzero(label)} == set(names)
        assert set(sample["gsd"].values()) == {10.0}  # S2 too, despite its 60 m geotransform
    assert task.kind == "multilabel" and task.specs.patch_size == (120, 120)


def test_burn_scars_missing_pixels_become_the_ignored_value_2(tasks):
    task = tasks["burn_scars"]
    values: set[int] = set()
    for name in task.partition()["train"]:
        sample = task.read_sample(name)
        values |= set(np.unique(sample["label"]).tolist())
        assert sample["bands"]["hls:B02"].dtype == np.float64
        assert sample["gsd"]["hls:B8A"] == pytest.approx(9.97)  # 10 m in degrees, from the georeference
    assert values <= {0, 1, 2} and 2 in values and 1 in values
    assert task.specs.label.n_classes == 2  # so 2 is outside the classes and ignored in scoring


def test_spacenet2_mask_plus_one_and_worldview_layout(tasks):
    task = tasks["spacenet2"]
    sample = task.read_sample(task.partition()["test"][0])
    assert set(np.unique(sample["label"]).tolist()) <= {1, 2}  # 0 (background) stays unused
    assert sample["bands"]["worldview:red"].max() > 0 and sample["bands"]["worldview:coastal"].max() == 0
    assert sample["gsd"]["worldview:red"] == 0.5 and sample["gsd"]["pan:pan"] == 0.5
    assert task.specs.patch_size == (200, 200) and task.specs.spatial_resolution == 0.5
    only_pan = task.with_sources(["pan"])
    assert set(only_pan.read_sample(sample["name"])["bands"]) == {"pan:pan"}


def test_every_dataset_is_implemented_or_skipped_with_a_reason():
    issue = {"benv2", "so2sat", "treesatai", "forestnet", "burn_scars", "caffe", "cloudsen12", "flair2", "fotw",
             "kuro_siwo", "spacenet2", "spacenet7", "dynamic_earthnet", "pastis"}  # fmt: skip
    assert issue <= set(CONVENTIONS) | set(SKIPPED)
    assert not set(CONVENTIONS) & set(SKIPPED)
    for name in ("biomassters", "everwatch", "nzcattle", "substation"):
        assert any(word in SKIPPED[name] for word in ("regression", "detection", "instance"))


def test_unknown_and_skipped_datasets_are_reported(tmp_path):
    one = W.sample("sample_0", "train", [W.Item("img", "GTiff", W.geotiff(W.banded(1)))])
    W.write_dataset(tmp_path / "caffe", "geobench_caffe.tortilla", [one])
    W.write_dataset(tmp_path / "mystery", "geobench_mystery.tortilla", [one])
    tasks, skipped = discover_datasets(tmp_path)
    assert tasks == {} and skipped["caffe"] == SKIPPED["caffe"]
    assert "not a GEO-Bench-2 dataset salibi knows" in skipped["mystery"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="no GEO-Bench-2 datasets"):
        discover_datasets(tmp_path / "empty")


def test_a_missing_part_or_a_damaged_sample_fails_with_one_line(tmp_path, root):
    dataset = tmp_path / "benv2"
    dataset.mkdir()
    data = bytearray((root / "benv2" / "geobench_benv2.tortilla").read_bytes())
    first = Tortilla.open(root / "benv2" / "geobench_benv2.tortilla").entries[0]
    data[first.offset : first.offset + 2] = b"XX"  # sample_0's own magic
    (dataset / "geobench_benv2.tortilla").write_bytes(bytes(data))
    task = discover_datasets(tmp_path)[0]["benv2"]
    assert task.read_sample("sample_1")["label"].shape == (19,)  # the others are fine
    with pytest.raises(DataFormatError, match="item 'sample_0'") as caught:
        task.read_sample("sample_0")
    assert "\n" not in str(caught.value)
    (dataset / "geobench_benv2.tortilla").unlink()
    with pytest.raises(MissingInputError, match="geobench_benv2.tortilla missing"):
        GeoBench2Task(dataset, CONVENTIONS["benv2"]).partition()
