"""What pretrain works out before any rank starts, and what a checkpoint records of its data:
--cpu-procs on a GPU machine (defect 4), weight decay (11), several files' statistics and GSDs
(11), --resume with other data (11), memory (10), DDP without masking (3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from helpers import SALIBI
from helpers import invoke as invoke_salibi
from salibi.models import build
from salibi.models.config import ModelConfig
from salibi.train.config import PretrainConfig
from salibi.train.loop import _build_optimizer

QUICK = ["--batch-size", "4", "--log-every", "1", "--quiet", "--save-every", "100"]


def invoke(*args: str):
    return invoke_salibi("pretrain", *args)


# -- defect 4: --cpu-procs N on a machine with a GPU ----------------------------------------------


def test_cpu_procs_means_cpu_ranks_whether_or_not_there_is_a_gpu():
    from salibi.train.config import choose_devices

    assert choose_devices(None, 2, cuda_devices=1) == (0, 2)  # used to be (1 GPU, ignored)
    assert choose_devices(None, 2, cuda_devices=0) == (0, 2)
    assert choose_devices(None, None, cuda_devices=1) == (1, 1)
    assert choose_devices(None, None, cuda_devices=0) == (0, 1)
    assert choose_devices(2, None, cuda_devices=4) == (2, 1)
    assert choose_devices(0, 3, cuda_devices=4) == (0, 3)
    with pytest.raises(ValueError, match="give one of them"):
        choose_devices(2, 2, cuda_devices=4)


def test_cpu_procs_is_obeyed_on_a_machine_that_reports_a_gpu(aligned_set, tmp_path, monkeypatch):
    """The command itself, with torch told there is one GPU: 2 CPU ranks are planned (a batch of 3
    does not divide over them), where the old command planned one GPU process."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = invoke(str(aligned_set), "--out", str(tmp_path / "run"), "--cpu-procs", "2", "--batch-size", "3")
    assert result.exit_code == 1, result.output
    assert "divisible by the number of ranks (2)" in result.output
    assert not (tmp_path / "run").exists()


# -- defect 11: weight decay ----------------------------------------------------------------------


def test_no_weight_decay_on_tokens_temperature_biases_and_norms():
    torch.manual_seed(0)
    model = build("tiny")
    plan = SimpleNamespace(config=PretrainConfig(data=[], out=""), total_steps=10, warmup_steps=1)
    decayed, plain = _build_optimizer(model, plan).param_groups  # type: ignore[arg-type]
    assert decayed["weight_decay"] > 0 and plain["weight_decay"] == 0
    names = {id(p): n for n, p in model.named_parameters()}
    undecayed = {names[id(p)] for p in plain["params"]}
    assert "mask_token" in undecayed and "logit_scale" in undecayed
    assert {f"modality_tokens.{m}" for m in model.modalities} <= undecayed
    assert "encoders.sar.blocks.0.norm1.weight" in undecayed and "decoder_embed.bias" in undecayed
    assert {names[id(p)] for p in decayed["params"]} >= {"decoder_embed.weight", "encoders.sar.patch_embed.weight"}


# -- defect 11: several training files ------------------------------------------------------------


def test_a_checkpoint_records_all_files_statistics_and_gsds(aligned_set, coarse_set, tmp_path):
    """Two files at 10 m and 20 m: the checkpoint's statistics are those of both files' training
    pixels, its GSD says they differ, and L is a patch of the coarsest GSD (it was the first file's)."""
    from salibi.data import open_aligned
    from salibi.models import load_checkpoint

    run = tmp_path / "two"
    result = invoke(str(aligned_set), str(coarse_set), "--out", str(run), "--max-steps", "2", *QUICK)
    assert result.exit_code == 0, result.output
    model = load_checkpoint(run)

    pixels, sums, squares = 0, 0.0, 0.0
    for path in (aligned_set, coarse_set):
        with open_aligned(path) as f:
            train = f["split"][:] == 0
            data = f["lores"]["data"][:][train][:, 0].astype("float64")
            pixels, sums, squares = pixels + data.size, sums + data.sum(), squares + (data**2).sum()
    mean = sums / pixels
    assert model.modality_info["lores"]["mean"][0] == pytest.approx(mean, rel=1e-4)
    assert model.modality_info["lores"]["std"][0] == pytest.approx((squares / pixels - mean**2) ** 0.5, rel=1e-3)
    with open_aligned(aligned_set) as first:
        assert model.modality_info["lores"]["mean"][0] != pytest.approx(float(first["lores"]["mean"][0]), rel=1e-3)
    assert model.modality_info["sar"]["gsd"] is None
    assert model.checkpoint_metadata["data_gsd"]["sar"] == [10.0, 20.0]
    assert model.config.ref_length == 8 * 20.0


def test_pooled_statistics_weigh_each_file_by_its_training_pixels(aligned_set, coarse_set):
    from salibi.train.data_facts import read_data_facts

    facts = read_data_facts([aligned_set, coarse_set])
    a, b = facts.files
    pooled = facts.pooled_info()["sar"]
    na = a.train_chips * a.modalities["sar"].chip[0] * a.modalities["sar"].chip[1]
    nb = b.train_chips * b.modalities["sar"].chip[0] * b.modalities["sar"].chip[1]
    ma, mb = a.modalities["sar"].mean[1], b.modalities["sar"].mean[1]
    assert pooled["mean"][1] == pytest.approx((na * ma + nb * mb) / (na + nb))
    assert facts.coarsest_gsd() == 20.0 and pooled["gsd_per_file"] == [10.0, 20.0]
    one = read_data_facts([aligned_set]).pooled_info()["sar"]
    assert one["gsd"] == 10.0 and one["mean"] == pytest.approx(list(a.modalities["sar"].mean))


def test_resume_refuses_other_data_and_accepts_the_same_files_moved(aligned_set, coarse_set, tmp_path):
    run = tmp_path / "run"
    assert invoke(str(aligned_set), "--out", str(run), "--max-steps", "1", *QUICK).exit_code == 0
    # Other data: refused, where --resume used to train on the stored paths without a word.
    result = invoke(str(coarse_set), "--out", str(run), "--max-steps", "2", "--resume", *QUICK)
    assert result.exit_code == 1
    assert "not the data" in result.output and str(aligned_set) in result.output
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_0000001"]
    # The same file under another name (moved): resumed, and recorded where it is now.
    moved = tmp_path / "moved.h5"
    shutil.copyfile(aligned_set, moved)
    result = invoke(str(moved), "--out", str(run), "--max-steps", "2", "--resume", *QUICK)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["config"]["data"] == [str(moved)]
    # The same file twice: refused before anything is written.
    result = invoke(str(aligned_set), str(aligned_set), "--out", str(tmp_path / "twice"), *QUICK)
    assert result.exit_code == 1 and "given twice" in result.output
    assert not (tmp_path / "twice").exists()


# -- defect 10: memory, estimated before any rank starts ------------------------------------------


def test_the_default_alignment_of_naip_needs_0_6_gb_of_masked_bias_per_sample_for_base():
    """960 m chips at 0.6 m: 1600 px, 100 x 100 patches of 16 px = 10,000 tokens, 5,000 kept."""
    from salibi.train.memory import GIB, check_step_memory, estimate_step_memory

    config = ModelConfig.for_size("base", modalities=("lores", "hires"))
    one = estimate_step_memory(config, {"hires": (1600, 1600)}, 0.5, 1, 2, parameters=0)
    two = estimate_step_memory(config, {"hires": (1600, 1600)}, 0.5, 2, 2, parameters=0)
    per_sample_bias = two.biases - one.biases
    assert per_sample_bias == 12 * 5000 * 5000 * 2  # 0.6 GB in bf16
    assert one.tokens["hires"] == (10000, 5000)
    chips = {"lores": (96, 96), "hires": (1600, 1600)}
    estimate = estimate_step_memory(config, chips, 0.5, 32, 2)
    with pytest.raises(Exception) as err:
        check_step_memory(estimate, 80 * GIB, "each GPU", "base")
    message = str(err.value)
    assert "GiB per rank" in message and "80.0 GiB of each GPU" in message and "10000 tokens" in message
    assert "--batch-size" in message and "--gsd hires=" in message and "--tile-size-m" in message
    check_step_memory(estimate_step_memory(config, chips, 0.5, 1, 2), 80 * GIB, "each GPU", "base")  # one fits


def test_a_step_that_cannot_fit_is_refused_before_any_rank_starts(huge_chip_set, tmp_path):
    """A set whose chips are 3840 px at 0.25 m (57,600 tokens): refused in the parent with the numbers,
    in a process whose address space is capped so that a regression fails instead of swapping."""
    run = tmp_path / "run"
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30)); "
    code = limit + "import sys; from salibi.cli import main; sys.argv = ['salibi'] + sys.argv[1:]; main()"
    args = ["pretrain", str(huge_chip_set), "--out", str(run), "--model", "base", "--batch-size", "8", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: one training step needs an estimated"), result.stderr
    assert "57600 tokens" in lines[0] and "--batch-size" in lines[0] and "--tile-size-m" in lines[0]
    assert not run.exists()


# -- defect 3: --mask-ratio 0 under DDP -----------------------------------------------------------


def test_ddp_is_told_which_runs_leave_parameters_without_gradient(aligned_set):
    from salibi.train.data_facts import read_data_facts
    from salibi.train.loop import some_modality_unmasked

    facts = read_data_facts([aligned_set])  # 24 px chips: 9 patches of 8 px per modality

    def plan(ratio: float) -> SimpleNamespace:
        return SimpleNamespace(config=PretrainConfig(data=[], out="", mask_ratio=ratio), data=facts)

    assert some_modality_unmasked(plan(0.0), 8)  # nothing masked: decoder and fusion idle
    assert not some_modality_unmasked(plan(0.1), 8)  # int(9 * 0.9) = 8 of 9 patches kept: one masked
    assert not some_modality_unmasked(plan(0.5), 8)
    assert some_modality_unmasked(plan(0.5), 24)  # one patch per chip: nothing can be masked


@pytest.mark.slow
def test_two_ranks_train_without_masking(aligned_set, tmp_path):
    run = tmp_path / "unmasked"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["pretrain", str(aligned_set), "--out", str(run), "--cpu-procs", "2", "--mask-ratio", "0"]
    result = subprocess.run(
        [SALIBI, *args, "--max-steps", "3", *QUICK], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "trained 3/3 steps" in result.stdout
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(r["reconstruction"] == 0 for r in records)
