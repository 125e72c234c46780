"""Band -> checkpoint modality mapping."""

from __future__ import annotations

import pytest

from salibi.eval.band_matching import default_band_names, map_task_bands
from salibi.eval.geobench.tasks import BandInfo, LabelType, Task, TaskSpecs, open_task

from .conftest import REAL, S2_NAMES

FULL = {"lores": S2_NAMES, "sar": ["VV", "VH"], "hires": ["red", "green", "blue"]}
GSD = {"lores": 10.0, "sar": 10.0, "hires": 1.0}


def _pairs(inputs, modality):
    [m] = [m for m in inputs.modalities if m.modality == modality]
    return {x.checkpoint_band: x.task_band for x in m.matches}


def _specs(bands, gsd=10.0):
    return TaskSpecs("t", (32, 32), tuple(bands), LabelType("classification", 2), gsd)


def test_eurosat_shifted_names_are_corrected(real_root):
    task = open_task(real_root, "m-eurosat")
    inputs = map_task_bands(task.specs, {"lores": S2_NAMES}, {"lores": 10.0}, task.name)
    pairs = _pairs(inputs, "lores")
    assert pairs["B04"] == "04 - Red" and pairs["B08"] == "08 - NIR"
    # geobench issue #28: "08A" holds B09, "09" B10, "10" B11, "11" B12, "12" B8A.
    assert pairs["B09"] == "08A - Vegetation Red Edge"
    assert pairs["B10"] == "09 - Water vapour"
    assert pairs["B11"] == "10 - SWIR - Cirrus"
    assert pairs["B12"] == "11 - SWIR"
    assert pairs["B8A"] == "12 - SWIR"


def test_the_same_names_elsewhere_are_taken_as_written(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-s2")
    pairs = _pairs(map_task_bands(task.specs, {"lores": S2_NAMES}, {"lores": 10.0}, task.name), "lores")
    assert pairs["B8A"] == "08A - Vegetation Red Edge" and pairs["B12"] == "12 - SWIR"


def test_brick_kiln_true_colour_bands_and_zero_filled_gaps():
    task = Task(REAL / "official_tests" / "brick_kiln_v1.0")
    inputs = map_task_bands(task.specs, {"lores": S2_NAMES}, {"lores": 10.0}, "m-brick-kiln")
    pairs = _pairs(inputs, "lores")
    assert pairs["B07"] == "06 - Vegetation Red Edge" and pairs["B8A"] == "07 - Vegetation Red Edge"
    assert pairs["B11"] == "08A - Vegetation Red Edge" and pairs["B12"] == "09 - Water vapour"
    assert inputs.modalities[0].missing == ["B06", "B09", "B10"]  # not in the file: fed zeros
    rgb = _pairs(
        map_task_bands(task.specs, {"hires": ["red", "green", "blue"]}, {"hires": 1.0}, "m-brick-kiln"), "hires"
    )
    assert rgb == {"red": "10 - SWIR - Cirrus", "green": "11 - SWIR", "blue": "12 - SWIR"}


def test_rgb_checkpoint_reads_sentinel2_by_colour(real_root):
    task = open_task(real_root, "m-eurosat")
    pairs = _pairs(map_task_bands(task.specs, {"hires": ["red", "green", "blue"]}, {"hires": 1.0}, task.name), "hires")
    assert pairs == {"red": "04 - Red", "green": "03 - Green", "blue": "02 - Blue"}


def test_swir_checkpoint_names_read_sentinel2_bands(real_root):
    task = open_task(real_root, "m-eurosat")
    bands = {"lores": ["red", "nir", "swir1", "swir2"]}
    pairs = _pairs(map_task_bands(task.specs, bands, {"lores": 10.0}, task.name), "lores")
    # B11 and B12, under m-eurosat's shifted names.
    assert pairs == {"red": "04 - Red", "nir": "08 - NIR", "swir1": "10 - SWIR - Cirrus", "swir2": "11 - SWIR"}


def test_optical_modality_closest_in_gsd_is_chosen(synthetic_root, real_root):
    eurosat = open_task(real_root, "m-eurosat")
    seg = open_task(synthetic_root, "m-tiny-seg")  # RGB at 0.5 m
    lores_rgb = {"lores": ["B04", "B03", "B02"], "hires": ["red", "green", "blue"]}
    assert [m.modality for m in map_task_bands(eurosat.specs, lores_rgb, GSD, eurosat.name).modalities] == ["lores"]
    assert [m.modality for m in map_task_bands(seg.specs, lores_rgb, GSD, seg.name).modalities] == ["hires"]


def test_landsat_by_colour_and_wavelength(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-forestnet")
    # Six Landsat-8 bands cover too little of a 13-band Sentinel-2 encoder...
    assert [m.modality for m in map_task_bands(task.specs, FULL, GSD, task.name).modalities] == ["hires"]
    # ... but match a six-band one: colours (SWIR1/SWIR2 too) as aliases, B8A by wavelength.
    six = {"lores": ["B02", "B03", "B04", "B8A", "B11", "B12"]}
    inputs = map_task_bands(task.specs, six, {"lores": 10.0}, task.name)
    [lores] = inputs.modalities
    assert _pairs(inputs, "lores") == {
        "B02": "02 - Blue",
        "B03": "03 - Green",
        "B04": "04 - Red",
        "B8A": "05 - NIR",
        "B11": "06 - SWIR1",
        "B12": "07 - SWIR2",
    }
    scores = {m.checkpoint_band: m.score for m in lores.matches}
    # Colours are aliases across sensors, SWIR1/SWIR2 included (salibi.bands); the B8A -> NIR
    # match above is by wavelength only.
    assert scores["B02"] == 1 and scores["B11"] == 1 and scores["B8A"] == 2


def test_so2sat_uses_sar_intensities_beside_optical(synthetic_root):
    task = open_task(synthetic_root, "m-tiny-so2sat")
    inputs = map_task_bands(task.specs, FULL, GSD, task.name)
    assert [m.modality for m in inputs.modalities] == ["lores", "sar"]
    assert _pairs(inputs, "sar") == {"VV": "06 - VV.LEE Filtered", "VH": "05 - VH.LEE Filtered"}
    assert inputs.modalities[0].missing == ["B01", "B09", "B10"]


def test_unmatched_task_is_skipped_with_reason():
    specs = _specs(
        [BandInfo("Canopy Height Model", "ElevationBand"), BandInfo("Hyperspectral", "HyperSpectralBands", n_bands=369)]
    )
    inputs = map_task_bands(specs, FULL, GSD)
    assert inputs.modalities == []
    assert "no checkpoint modality matches" in inputs.reason and "Canopy Height Model" in inputs.reason
    assert "lores: B01" in inputs.reason


def test_too_few_bands_is_not_a_match_and_says_so():
    specs = _specs(
        [
            BandInfo("04 - Red", "Sentinel2", ("4", "04", "red"), 10, 0.665),
            BandInfo("03 - Green", "Sentinel2", ("3", "03", "green"), 10, 0.56),
        ]
    )
    inputs = map_task_bands(specs, {"lores": S2_NAMES, "hires": ["red", "green", "blue"]}, GSD)
    assert inputs.modalities == []
    assert "Partial matches: lores (2 of 13 bands), hires (2 of 3 bands)" in inputs.reason


def test_sar_only_checkpoint_on_optical_task(real_root):
    task = open_task(real_root, "m-eurosat")
    inputs = map_task_bands(task.specs, {"sar": ["VV", "VH"]}, {"sar": 10.0}, task.name)
    assert not inputs.modalities and "sar: VV VH" in inputs.reason


@pytest.mark.parametrize(
    "modality,channels,names",
    [
        ("lores", 13, S2_NAMES),
        ("lores", 3, ["red", "green", "blue"]),
        ("sar", 2, ["VV", "VH"]),
        ("hires", 4, ["red", "green", "blue", "nir"]),
    ],
)
def test_default_band_names(modality, channels, names):
    assert default_band_names(modality, channels) == names
