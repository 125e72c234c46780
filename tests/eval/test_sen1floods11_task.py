"""The real-pixel Sen1Floods11 task (read in place from ../shared/): its layout, and a pretrained
tiny encoder beats a constant."""

from __future__ import annotations

import ast
import json
import pickle

import numpy as np
import pytest
import torch

from salibi.errors import OutputExistsError
from salibi.eval.band_matching import map_task_bands
from salibi.eval.evaluate import checkpoint_bands, evaluate_geobench
from salibi.eval.geobench.sample_tasks import write_sen1floods11_task
from salibi.eval.geobench.tasks import Task, discover_tasks
from salibi.eval.model_inputs import band_normalisation, prepare_sample
from salibi.eval.scoring.task_metrics import mean_iou
from salibi.eval.settings import GeoBenchSettings
from salibi.models import build, load_checkpoint, save_checkpoint

from .conftest import S2_NAMES

CHIP = 32
PRETRAIN_STEPS = 120


@pytest.fixture(scope="module")
def flood_root(tmp_path_factory, sen1floods11):
    root = tmp_path_factory.mktemp("floods")
    write_sen1floods11_task(root, sen1floods11, chip=CHIP)
    write_sen1floods11_task(root, sen1floods11, chip=CHIP, kind="classification")
    return root


def test_layout_and_contents(flood_root):
    tasks = discover_tasks(flood_root)
    assert set(tasks) == {"sen1floods11-water-seg", "sen1floods11-water"}
    seg = Task(tasks["sen1floods11-water-seg"])
    assert seg.benchmark == "segmentation_v1.0" and seg.kind == "segmentation"
    assert seg.specs.patch_size == (CHIP, CHIP) and seg.specs.spatial_resolution == 10.0
    assert [b.kind for b in seg.specs.bands] == ["Sentinel2"] * 13 + ["Sentinel1"] * 2
    split = seg.partition()
    assert {k: len(v) for k, v in split.items()} == {"train": 160, "valid": 32, "test": 64}
    assert not set(split["train"]) & set(split["test"])
    assert seg.partition("1.00x_train") == split
    sample = seg.read_sample(split["test"][0])
    assert sample["bands"]["04 - Red"].dtype == np.int16 and sample["bands"]["VV"].dtype == np.float32
    assert sample["label"].shape == (CHIP, CHIP) and set(np.unique(sample["label"])) <= {-1, 0, 1}
    assert set(json.loads((seg.path / "band_stats.json").read_text())) >= {"04 - Red", "VV", "VH", "label"}
    cls = Task(tasks["sen1floods11-water"])
    labels = [cls.read_sample(n)["label"] for n in cls.partition()["test"]]
    assert set(labels) == {0, 1}


def test_written_pickles_are_what_geobench_writes(flood_root, fixture_generator):
    import h5py

    seg = Task(flood_root / "segmentation_v1.0" / "sen1floods11-water-seg")
    with fixture_generator.geobench_modules("geobench") as gb, h5py.File(seg.sample_path("chip_03_05")) as f:
        specs = pickle.loads((seg.path / "task_specs.pkl").read_bytes())
        assert isinstance(specs.bands_info[0], gb.Sentinel2) and specs.patch_size == (CHIP, CHIP)
        assert specs.label_type.n_classes == 2
        attrs = ast.literal_eval(f.attrs["pickle"])
        assert b"affine" in attrs and b"rasterio.crs" in attrs  # georeference as geobench stores it
    meta = seg.read_sample("chip_03_05")
    assert meta["dates"]["VV"].isoformat() == "2019-09-18"


def test_refuses_to_overwrite(flood_root, sen1floods11):
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_sen1floods11_task(flood_root, sen1floods11, chip=CHIP)


def _pretrain(task: Task, steps: int, tmp_path):
    """A tiny model trained on the task's training chips with its own forward loss."""
    model = build("tiny", modalities=("sar", "lores"), channels={"lores": 13})
    bands = {"lores": S2_NAMES, "sar": ["VV", "VH"]}
    inputs = map_task_bands(task.specs, bands, {"lores": 10.0, "sar": 10.0}, task.name)
    names = task.partition()["train"]
    stats = band_normalisation(task, inputs, names)
    stacks: dict[str, list[np.ndarray]] = {"lores": [], "sar": []}
    for name in names:
        sample = task.read_sample(name)
        for modality in inputs.modalities:
            stacks[modality.modality].append(prepare_sample(sample, modality, stats, 8, False)[0])
    data = {m: torch.from_numpy(np.stack(v)) for m, v in stacks.items()}
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = last = None
    for _ in range(steps):
        pick = torch.randint(len(names), (32,), generator=generator)
        loss = model({"lores": data["lores"][pick], "sar": data["sar"][pick], "gsd": {"lores": 10.0, "sar": 10.0}})[
            "loss"
        ]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        first = first if first is not None else loss.item()
        last = loss.item()
    assert last < first  # it learned something
    return save_checkpoint(
        model.eval(), tmp_path / "pretrained", bands=bands, gsd={"lores": 10.0, "sar": 10.0}, step=steps
    )


@pytest.mark.slow
def test_pretrained_tiny_encoder_beats_a_constant_predictor(flood_root, tmp_path):
    seg = Task(flood_root / "segmentation_v1.0" / "sen1floods11-water-seg")
    checkpoint = _pretrain(seg, PRETRAIN_STEPS, tmp_path)
    results = evaluate_geobench(checkpoint, GeoBenchSettings(root=flood_root, device="cpu"), log=lambda _: None)
    assert results["failed"] == {} and results["skipped"] == {}

    test_labels = np.stack([seg.read_sample(n)["label"] for n in seg.partition()["test"]])
    constant = max(mean_iou(test_labels, np.full_like(test_labels, c), 2) for c in (0, 1))
    miou = results["tasks"]["sen1floods11-water-seg"]["seg-linear"]["miou"]
    assert miou > constant + 0.2, (miou, constant)

    cls = Task(flood_root / "classification_v1.0" / "sen1floods11-water")
    labels = np.array([cls.read_sample(n)["label"] for n in cls.partition()["test"]])
    majority = max(np.mean(labels == 0), np.mean(labels == 1))
    for protocol in ("knn", "linear"):
        accuracy = results["tasks"]["sen1floods11-water"][protocol]["accuracy"]
        assert accuracy > majority + 0.1, (protocol, accuracy, majority)
    # The checkpoint's own description drove the band mapping.
    bands, _ = checkpoint_bands(load_checkpoint(checkpoint))
    assert bands == {"sar": ["VV", "VH"], "lores": S2_NAMES}
