"""salibi pretrain: DDP equivalence, damaged checkpoints, bad input (stops and kills: tests/faults)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from helpers import invoke as invoke_salibi
from helpers import metrics, run_in_process, run_salibi
from salibi.train import PretrainConfig
from salibi.train.run_plan import learning_rate

COMMON = ["--batch-size", "8", "--log-every", "1", "--quiet"]


def assert_same_curve(a: list[dict], b: list[dict], tolerance: float = 1e-4) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in ("loss", "contrastive", "reconstruction", "lr"):
            assert abs(x[key] - y[key]) <= tolerance * max(1.0, abs(y[key])), (x["step"], key, x[key], y[key])


@pytest.fixture(scope="module")
def reference_run(aligned_set, tmp_path_factory) -> Path:
    """One process, 12 uninterrupted steps: the curve the other runs must reproduce."""
    run = tmp_path_factory.mktemp("runs") / "reference"
    result = run_in_process(
        "pretrain", str(aligned_set), "--out", str(run), "--max-steps", "12", "--save-every", "100", *COMMON
    )
    assert result.returncode == 0, result.stderr
    return run


@pytest.mark.slow
def test_two_gloo_ranks_give_the_single_process_loss_curve(aligned_set, reference_run, tmp_path):
    run = tmp_path / "two"
    result = run_salibi(
        "pretrain",
        str(aligned_set),
        "--out",
        str(run),
        "--max-steps",
        "12",
        "--cpu-procs",
        "2",
        "--save-every",
        "100",
        *COMMON,
        check=True,
    )
    assert "trained 12/12 steps" in result.stdout
    assert_same_curve(metrics(run), metrics(reference_run))


@pytest.mark.slow
def test_truncated_newest_checkpoint_is_skipped_with_a_warning(aligned_set, reference_run, tmp_path):
    run = tmp_path / "damaged"
    args = ["pretrain", str(aligned_set), "--out", str(run), "--save-every", "3", "--max-steps", "12", *COMMON]
    assert run_in_process(*args).returncode == 0
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_0000006",
        "step_0000009",
        "step_0000012",
    ]  # --keep 3
    weights = run / "checkpoints" / "step_0000012" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    resumed = run_salibi(*args, "--resume", check=True)
    assert "skipping incomplete checkpoint" in resumed.stderr and "step_0000012" in resumed.stderr
    assert "trained 12/12 steps" in resumed.stdout
    assert [r["step"] for r in metrics(run)] == list(range(1, 13))
    assert_same_curve(metrics(run), metrics(reference_run), tolerance=1e-6)
    assert (run / "checkpoints" / "last").read_text().strip() == "step_0000012"
    from salibi.models import load_checkpoint

    load_checkpoint(run / "checkpoints" / "step_0000012")  # re-written whole


@pytest.mark.slow
def test_checkpoint_is_a_loadable_salibi_checkpoint(reference_run):
    from salibi.models import load_checkpoint

    model = load_checkpoint(reference_run)
    assert model.checkpoint_path.name == "step_0000012"
    assert model.modality_info["lores"]["bands"] == ["B04", "B03", "B02", "B08"]  # the aligned set's names
    assert model.modality_info["sar"]["gsd"] == 10.0
    assert len(model.modality_info["lores"]["mean"]) == 4
    assert model.checkpoint_metadata["step"] == 12
    run_doc = json.loads((reference_run / "run.json").read_text())
    assert run_doc["config"]["batch_size"] == 8 and run_doc["total_steps"] == 12


# -- in-process checks of options and bad input -------------------------------------------------------


def invoke(*args: str):
    return invoke_salibi("pretrain", *args)


def test_missing_data_file_is_one_clear_line(tmp_path):
    result = invoke(str(tmp_path / "nope.h5"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "nope.h5" in result.output and "salibi align" in result.output


def test_data_of_another_format_version_is_refused(aligned_set, tmp_path):
    copy = tmp_path / "v9.h5"
    copy.write_bytes(aligned_set.read_bytes())
    with h5py.File(copy, "r+") as f:
        f.attrs["format_version"] = 9
    result = invoke(str(copy), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert "v9.h5" in result.output and "version" in result.output


def test_more_gpus_than_present_is_refused(aligned_set, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke(str(aligned_set), "--out", str(tmp_path / "run"), "--gpus", "4")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --gpus 4: this machine has 0 usable CUDA GPU(s)")
    assert "--cpu-procs" in result.output
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_data_and_indivisible_batches(aligned_set, tmp_path):
    result = invoke(str(aligned_set), "--out", str(tmp_path / "run"), "--batch-size", "100000")
    assert result.exit_code == 1 and "lower --batch-size" in result.output
    result = invoke(str(aligned_set), "--out", str(tmp_path / "run"), "--batch-size", "9", "--cpu-procs", "2")
    assert result.exit_code == 1 and "divisible" in result.output
    result = invoke(str(aligned_set), "--out", str(tmp_path / "run"), "--max-steps", "3", "--epochs", "1")
    assert result.exit_code == 2


@pytest.mark.slow
def test_existing_run_needs_resume_and_resume_keeps_its_settings(aligned_set, reference_run):
    result = invoke(str(aligned_set), "--out", str(reference_run), "--max-steps", "12")
    assert result.exit_code == 1 and "--resume" in result.output
    result = invoke(str(aligned_set), "--out", str(reference_run), "--resume", "--model", "small")
    assert result.exit_code == 1 and "--model 'small' (the run has 'tiny')" in result.output
    result = invoke(str(aligned_set), "--out", str(reference_run), "--resume", "--max-steps", "12")
    assert result.exit_code == 0 and "already trained 12 of 12 steps" in result.output


def test_tensorboard_log_and_metrics_fields(aligned_set, tmp_path):
    run = tmp_path / "tb"
    result = invoke(str(aligned_set), "--out", str(run), "--max-steps", "2", "--log", "tensorboard", *COMMON)
    assert result.exit_code == 0, result.output
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    record = metrics(run)[-1]
    assert {"step", "loss", "contrastive", "reconstruction", "lr", "samples_per_s"} <= set(record)


def test_warmup_then_cosine_schedule():
    config = PretrainConfig(data=[], out="", lr=1e-3, batch_size=256, min_lr_ratio=0.1)
    lrs = [learning_rate(s, config, total_steps=100, warmup_steps=10) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)
    half = PretrainConfig(data=[], out="", lr=1e-3, batch_size=128)
    assert learning_rate(50, half, 100, 10) == pytest.approx(
        learning_rate(50, config, 100, 10) / 2 * (1 + 0.01) / (1 + 0.1), rel=0.2
    )
