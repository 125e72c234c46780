"""``salibi eval geobench`` on the genuine GEO-Bench-2 sample root: detection, joint features of
the cross-modal encoder, ``inputs[TASK]``, skips and a damaged file failing only its task."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from salibi.cli import cli
from salibi.eval.evaluate import checkpoint_bands, evaluate_geobench
from salibi.eval.features import extract_features
from salibi.eval.geobench2.modality_routing import route_inputs
from salibi.eval.geobench2.reader import discover_datasets
from salibi.eval.geobench2.tortilla import Tortilla
from salibi.eval.model_inputs import band_normalisation, prepare_sample
from salibi.eval.protocols.registry import ProtocolSettings
from salibi.eval.settings import GeoBenchSettings
from salibi.models import build, save_checkpoint

LORES = ["B02", "B03", "B04", "B08", "B11", "B12"]
FAST = ProtocolSettings(seg_linear_steps=10, fpn_epochs=1, resamples=50)


@pytest.fixture(scope="module")
def root(shared) -> Path:
    return shared("geobench2_samples")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("tiny", modalities=("sar", "lores", "hires"), channels={"lores": len(LORES)}).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gb2ckpt") / "ckpt"
    bands = {"lores": LORES, "sar": ["VV", "VH"], "hires": ["red", "green", "blue"]}
    save_checkpoint(model, path, bands=bands, gsd={"lores": 10.0, "sar": 10.0, "hires": 1.0})
    return path


def test_joint_features_are_the_cross_modal_encoders_pooled_tokens(root, model, checkpoint):
    from salibi.models import load_checkpoint

    model = load_checkpoint(checkpoint).eval()
    task = discover_datasets(root)[0]["benv2"]
    bands, gsd = checkpoint_bands(model)
    joint = route_inputs(task, bands, gsd)
    names = task.partition()["train"]
    stats = band_normalisation(task, joint, names)
    pooled = extract_features(model, task, joint, names, stats).pooled
    assert pooled.shape == (2, model.config.dim)
    sample, patch = task.read_sample(names[0]), model.config.patch_size
    images = {
        m.modality: torch.from_numpy(prepare_sample(sample, m, stats, patch, False)[0])[None] for m in joint.modalities
    }
    with torch.inference_mode():
        expected = model.embed_joint(images, {"sar": 10.0, "lores": 10.0})[0].numpy()
    np.testing.assert_allclose(pooled[0], expected, rtol=1e-4, atol=1e-5)
    joint.joint = False  # the same encoders, unimodal: concatenated means, not the joint tokens
    separate = extract_features(model, task, joint, names, stats).pooled
    assert separate.shape == (2, 2 * model.config.dim)
    with torch.inference_mode():
        lores = model.embed(images["lores"], modality="lores", gsd=10.0)[0].numpy()
    np.testing.assert_allclose(separate[0, model.config.dim :], lores, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_every_sample_dataset_scored_end_to_end_with_inputs_recorded(root, checkpoint):
    settings = GeoBenchSettings(
        root=root, protocols="knn,linear,seg-linear,majority", device="cpu", protocol_settings=FAST
    )
    document = evaluate_geobench(checkpoint, settings)
    assert document["benchmark"] == "geobench2" and document["failed"] == {} and document["skipped"] == {}
    assert set(document["tasks"]) == {"benv2", "burn_scars", "spacenet2"}
    assert set(document["tasks"]["benv2"]) == {"knn", "linear", "majority"}
    assert set(document["tasks"]["spacenet2"]) == {"seg-linear", "majority"}
    for task, protocols in document["tasks"].items():
        for protocol, metrics in protocols.items():
            metric = "f1_micro" if task == "benv2" else "miou"
            assert 0.0 <= metrics[metric] <= 1.0, (task, protocol)
            low, high = document["intervals"][task][protocol][metric]
            assert low <= metrics[metric] <= high
    inputs = document["inputs"]
    assert inputs["benv2"]["features"] == "joint"
    assert [(m["modality"], m["source"], m["gsd"]) for m in inputs["benv2"]["modalities"]] == [
        ("sar", "s1", 10.0),
        ("lores", "s2", 10.0),
    ]
    assert inputs["burn_scars"]["modalities"][0]["bands"]["B08"] == "hls:B8A"
    assert inputs["spacenet2"]["modalities"][0]["gsd"] == 0.5
    assert {r["task"] for r in document["runs"]} == {"benv2", "burn_scars", "spacenet2"}


def test_a_damaged_dataset_fails_with_one_line_and_skips_are_reported(root, checkpoint, tmp_path):
    copy = tmp_path / "gb2"
    shutil.copytree(root / "spacenet2", copy / "spacenet2")
    (copy / "benv2").mkdir()
    data = bytearray((root / "benv2" / "geobench_benv2.tortilla").read_bytes())
    second = Tortilla.open(root / "benv2" / "geobench_benv2.tortilla").entries[1]
    data[second.offset + 2 : second.offset + 10] = (10**12).to_bytes(8, "little")  # a footer far past the end
    (copy / "benv2" / "geobench_benv2.tortilla").write_bytes(bytes(data))
    (copy / "caffe").mkdir()
    shutil.copy(root / "spacenet2" / "geobench_spacenet2.tortilla", copy / "caffe" / "geobench_caffe.tortilla")
    settings = GeoBenchSettings(root=copy, protocols="majority", device="cpu", protocol_settings=FAST)
    document = evaluate_geobench(checkpoint, settings)
    reason = document["failed"]["benv2"]
    assert "\n" not in reason and "item 'sample_1'" in reason and "outside" in reason
    assert set(document["tasks"]) == {"spacenet2"}  # the others go on
    assert "polarisation" in document["skipped"]["caffe"]


def test_features_choice_and_benchmark_on_the_command_line(root, checkpoint, tmp_path, shared):
    out = tmp_path / "r.json"
    args = ["eval", "geobench", "--checkpoint", str(checkpoint), "--root", str(root), "--output", str(out)]
    result = CliRunner().invoke(
        cli, [*args, "--tasks", "benv2,spacenet2", "--protocol", "majority", "--features", "lores"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["inputs"]["benv2"]["features"] == "lores" and list(document["tasks"]) == ["benv2"]
    assert "GEO-Bench-2, partition" in result.output and "- benv2: lores: lores <- s2 (B02<-B02," in result.output
    assert "no usable lores encoder" in document["skipped"]["spacenet2"]
    v1 = CliRunner().invoke(
        cli,
        [
            "eval",
            "geobench",
            "--checkpoint",
            str(checkpoint),
            "--root",
            str(shared("geobench_samples")),
            "--output",
            str(tmp_path / "v1.json"),
            "--features",
            "joint",
        ],  # fmt: skip
    )
    assert v1.exit_code == 1 and "applies to GEO-Bench-2" in v1.output
    forced = CliRunner().invoke(cli, [*args, "--overwrite", "--benchmark", "geobench2", "--tasks", "nothing"])
    assert forced.exit_code == 1 and "nothing" in forced.output


def test_partitions_all_on_geobench2_is_the_one_train_split(root, checkpoint):
    """GEO-Bench-2 has no train-size partitions: the curve of each task is one point, its whole
    train split (as 1.00x_train), not a failure naming the partitions it lacks."""
    settings = GeoBenchSettings(
        root=root, tasks="benv2", protocols="majority", partitions="all", device="cpu", protocol_settings=FAST
    )
    document = evaluate_geobench(checkpoint, settings)
    assert not document["failed"], document["failed"]
    assert document["partition"] == "1.00x_train" and list(document["partition_results"]) == ["1.00x_train"]
    assert "majority" in document["tasks"]["benv2"]
