"""Modality routing of GEO-Bench-2 tasks: each source feeds its sensor family's encoder, joint
features when two or more are usable, ``--features MODALITY`` for one, and the ``inputs[TASK]``
record of what fed the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from salibi.eval.geobench2.conventions import SENSOR_MODALITY
from salibi.eval.geobench2.datasets import CONVENTIONS
from salibi.eval.geobench2.modality_routing import route_inputs
from salibi.eval.geobench2.reader import GeoBench2Task, discover_datasets

from . import tortilla_writer as W

LORES = ["B02", "B03", "B04", "B08", "B11", "B12"]
ALL = {"sar": ["VV", "VH"], "lores": LORES, "hires": ["red", "green", "blue"]}
GSD = {"sar": 10.0, "lores": 10.0, "hires": 1.0}


@pytest.fixture(scope="module")
def real(shared) -> dict[str, GeoBench2Task]:
    return discover_datasets(shared("geobench2_samples"))[0]


def test_every_source_feeds_its_sensor_familys_encoder():
    expected = {"sentinel2": "lores", "hls": "lores", "landsat8": "lores", "sentinel1": "sar", "sar": "sar",
                "aerial": "hires", "worldview": "hires", "planet": "hires", "elevation": None}  # fmt: skip
    assert SENSOR_MODALITY == expected
    for convention in CONVENTIONS.values():
        for source in convention.sources:
            assert source.modality == expected[source.sensor]


def test_benv2_joint_sar_and_lores_with_the_physical_polarisations(real):
    inputs = route_inputs(real["benv2"], ALL, GSD)
    assert inputs.joint and [m.modality for m in inputs.modalities] == ["sar", "lores"]
    assert inputs.sources == {"sar": "s1", "lores": "s2"}
    record = inputs.record
    assert record["features"] == "joint"
    sar, lores = record["modalities"]
    assert sar["bands"] == {"VV": "s1:VV", "VH": "s1:VH"} and sar["gsd"] == 10.0 and sar["sensor"] == "sentinel1"
    assert lores["bands"]["B08"] == "s2:B08" and lores["gsd"] == 10.0  # not the 60 m of the S2 geotransform


def test_features_one_modality_or_joint_or_a_reason(real):
    lores = route_inputs(real["benv2"], ALL, GSD, "lores")
    assert not lores.joint and [m.modality for m in lores.modalities] == ["lores"]
    assert lores.record["features"] == "lores" and "s1" in lores.record["unused"]
    hires = route_inputs(real["benv2"], ALL, GSD, "hires")
    assert not hires.modalities and "no usable hires encoder" in hires.reason and "usable: sar, lores" in hires.reason
    joint = route_inputs(real["spacenet2"], ALL, GSD, "joint")
    assert not joint.modalities and "two or more" in joint.reason
    alone = route_inputs(real["spacenet2"], ALL, GSD)
    assert not alone.joint and alone.sources == {"hires": "worldview"}
    with pytest.raises(ValueError, match="choose among"):
        route_inputs(real["benv2"], ALL, GSD, "rgb")


def test_a_checkpoint_without_the_modality_or_the_bands(real):
    no_sar = route_inputs(real["benv2"], {"lores": LORES, "hires": ["red", "green", "blue"]}, GSD)
    assert not no_sar.joint and no_sar.sources == {"lores": "s2"}
    assert any("which the checkpoint lacks" in r for r in no_sar.record["unmatched"])
    thirteen = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    burn = route_inputs(real["burn_scars"], {"lores": thirteen}, GSD)  # 6 HLS bands cannot stand for 13
    assert not burn.modalities and "6 of 13 bands" in burn.reason
    burn = route_inputs(real["burn_scars"], {"lores": LORES}, GSD)
    assert burn.sources == {"lores": "hls"} and burn.record["modalities"][0]["bands"]["B08"] == "hls:B8A"
    assert burn.record["modalities"][0]["gsd"] == pytest.approx(9.97)


def test_two_sources_of_one_encoder_the_better_match_feeds_it(real):
    # A one-band "green" encoder: WorldView's green band (same colour) beats pan (0.54 um, by wavelength).
    green = route_inputs(real["spacenet2"], {"hires": ["green"]}, GSD)
    assert green.sources == {"hires": "worldview"}
    pan = route_inputs(real["spacenet2"].with_sources(["pan"]), {"hires": ["green"]}, GSD)
    assert pan.sources == {"hires": "pan"} and pan.record["modalities"][0]["bands"] == {"green": "pan:pan"}
    record = route_inputs(real["spacenet2"], ALL, GSD).record
    assert record["unused"]["pan"] == "feeds hires; worldview feeds that encoder"


def _write(root: Path, name: str, items: list[W.Item], **fields) -> GeoBench2Task:
    for part, file_name in enumerate(CONVENTIONS[name].files):
        W.write_dataset(root / name, file_name, [W.sample(f"sample_{part}", "train", items, **fields)])
    return discover_datasets(root)[0][name]


def test_three_modalities_joint_and_the_cir_aerial_bands(tmp_path):
    items = [
        W.Item("aerial", "GTiff", W.geotiff(W.banded(4, 32, "uint8", 10), gsd=0.2)),
        W.Item("s1", "GTiff", W.geotiff(W.banded(3, 6, "float32"))),
        W.Item("s2", "GTiff", W.geotiff(W.banded(12, 6))),
    ]
    task = _write(tmp_path, "treesatai", items, species_labels=["Acer"])
    inputs = route_inputs(task, ALL, GSD)
    assert inputs.joint and [m.modality for m in inputs.modalities] == ["sar", "lores", "hires"]
    hires = inputs.record["modalities"][2]
    assert hires["bands"] == {"red": "aerial:red", "green": "aerial:green", "blue": "aerial:blue"}
    assert hires["gsd"] == 0.2


def test_pastis_ascending_s1_on_a_tie_and_elevation_never_routed(tmp_path):
    series = W.hdf5(W.banded(3, 8, "float32")[None])
    items = [W.Item("s2", "HDF5", W.hdf5(W.banded(10, 8, "float32")[None])), W.Item("s1a", "HDF5", series),
             W.Item("s1d", "HDF5", series), W.Item("semantic", "HDF5", W.hdf5(W.banded(1, 8, "int64")))]  # fmt: skip
    inputs = route_inputs(_write(tmp_path, "pastis", items), ALL, GSD)
    assert inputs.sources == {"sar": "s1_asc", "lores": "s2"}
    flair = [W.Item("aerial", "GTiff", W.geotiff(W.banded(5, 8, "uint8", 10), gsd=0.2)),
             W.Item("mask", "GTiff", W.geotiff(W.banded(1, 8, "uint8", 1)))]  # fmt: skip
    record = route_inputs(_write(tmp_path, "flair2", flair), ALL, GSD).record
    assert "elevation" in record["unused"] and "elevation" not in record["modalities"][0]["bands"].values()


def test_segmentation_puts_the_encoder_on_the_label_grid_first(tmp_path):
    items = [
        W.Item("planet_0", "GTiff", W.geotiff(W.banded(4, 16), gsd=3.0)),
        W.Item("s2", "GTiff", W.geotiff(W.banded(12, 8), gsd=6.0)),
        W.Item("label", "GTiff", W.geotiff(W.banded(1, 16, "uint8", 1))),
    ]
    inputs = route_inputs(_write(tmp_path, "dynamic_earthnet", items), ALL, GSD)
    assert inputs.joint and [m.modality for m in inputs.modalities] == ["hires", "lores"]
    assert [m["gsd"] for m in inputs.record["modalities"]] == [3.0, 6.0]
