"""A disk that fills up for real (a small tmpfs; root only, skipped with the reason elsewhere): one
line naming what could not be written and what is left, nothing half-written in place, and once
there is room the same command finishes the job."""

from __future__ import annotations

import json

import h5py
import pytest

from helpers import metrics, run_in_process

from .conftest import checkpoint_steps, one_error_line

pytestmark = pytest.mark.slow


def test_pretrain_on_a_full_disk_keeps_its_last_checkpoint_and_continues(aligned_set, tmpfs):
    from salibi.models import load_checkpoint

    disk = tmpfs.mount("8m")  # room for one checkpoint (~5.4 MB), not two
    run = disk / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), "--batch-size", "4", "--max-steps", "8",
               "--save-every", "2", "--keep", "3", "--log-every", "1", "--quiet", "--resume"]  # fmt: skip
    result = run_in_process(*command)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert "could not save the checkpoint of step 4 (" in line and "No space left on device" in line, line
    assert "the newest complete checkpoint is" in line and "step_0000002" in line and "--resume" in line, line
    assert checkpoint_steps(run) == [2] and not list((run / "checkpoints").glob(".step_*"))
    load_checkpoint(run)
    tmpfs.grow("64m")
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in metrics(run)] == list(range(1, 9))


def test_align_on_a_full_disk_leaves_nothing_and_succeeds_with_room(samples, tmpfs):
    disk = tmpfs.mount("256k")
    out = disk / "set.h5"
    sn6 = samples / "spacenet6_rotterdam"
    command = ["align", "--hires", str(sn6 / "pan1.tif"), "--lores", str(sn6 / "ms1.tif"), "--tile-size-m", "60",
               "-o", str(out)]  # fmt: skip
    result = run_in_process(*command)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert line == (
        f"Error: -o {out}: no space left on device in {disk}; nothing was written: free some space there or "
        "choose another output path"
    ), line
    assert list(disk.iterdir()) == []
    tmpfs.grow("16m")
    assert run_in_process(*command).returncode == 0
    assert h5py.is_hdf5(out)


@pytest.fixture
def checkpoint(tmp_path):
    import torch

    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(
        build("tiny", channels={"lores": 4}),
        tmp_path / "ckpt",
        bands={"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02", "B08"], "hires": ["red", "green", "blue"]},
        gsd={"sar": 10.0, "lores": 10.0, "hires": 0.5},
    )


def test_eval_results_on_a_full_disk(checkpoint, tmp_path, tmpfs):
    from salibi.eval.geobench.sample_tasks import write_shipped_tasks

    root = write_shipped_tasks(tmp_path / "geobench")
    disk = tmpfs.mount("4k")
    results = disk / "results.json"
    command = ["eval", "geobench", "--checkpoint", str(checkpoint), "--root", str(root), "--output", str(results),
               "--tasks", "raleigh-landcover", "--protocol", "knn,majority"]  # fmt: skip
    result = run_in_process(*command)
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr.strip().splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not results.exists()
    tmpfs.grow("16m")
    assert run_in_process(*command).returncode == 0
    assert "raleigh-landcover" in json.loads(results.read_text())["tasks"]


def test_embed_on_a_full_disk_then_continues(checkpoint, samples, tmp_path, tmpfs):
    import shutil

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i in range(3):
        shutil.copyfile(samples / "spacenet6_rotterdam" / "rgb_unmasked.tif", tiles / f"t{i}.tif")
    disk = tmpfs.mount("16k")
    out = disk / "out.h5"
    command = ["embed", str(tiles), "--checkpoint", str(checkpoint), "-o", str(out), "--batch-size", "1"]
    result = run_in_process(*command)
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert "No space left on device" in line or "no space" in line.lower(), line
    assert not out.exists()
    tmpfs.grow("16m")
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    with h5py.File(out) as f:
        assert sorted(p.decode() if isinstance(p, bytes) else str(p) for p in f["path"][:]) == [
            "t0.tif",
            "t1.tif",
            "t2.tif",
        ]
