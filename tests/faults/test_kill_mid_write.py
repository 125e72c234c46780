"""SIGKILL in the middle of writing each kind of output (the data written, not yet flushed nor
renamed: :mod:`faults.kill_at_fsync`): the previous state survives whole, and the same command
run again finishes the job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from helpers import COMMAND_ENV, REPO, metrics, run_in_process

from .conftest import checkpoint_steps

pytestmark = pytest.mark.slow

KILLER = str(Path(__file__).with_name("kill_at_fsync.py"))


def killed_at(pattern: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, KILLER, pattern, *args], capture_output=True, text=True, env=COMMAND_ENV, timeout=600
    )
    assert result.returncode == -9, f"not killed at {pattern!r}: {result.returncode}\n{result.stderr}"
    return result


def test_pretrain_killed_while_saving_a_checkpoint(aligned_set, tmp_path):
    from salibi.models import load_checkpoint

    run = tmp_path / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), "--batch-size", "4", "--max-steps", "8",
               "--save-every", "2", "--log-every", "1", "--quiet", "--resume"]  # fmt: skip
    killed_at(r"/\.step_0000004\.[^/]*\.tmp/", *command)
    assert checkpoint_steps(run) == [2]  # step 4 was never renamed into place
    assert (run / "checkpoints" / "last").read_text().strip() == "step_0000002"
    load_checkpoint(run)  # the newest is whole
    assert list((run / "checkpoints").glob(".step_0000004.*.tmp"))  # what the kill left
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    assert [r["step"] for r in metrics(run)] == list(range(1, 9))
    assert checkpoint_steps(run) == [4, 6, 8] and not list((run / "checkpoints").glob(".step_*"))


def _align_command(samples, out):
    sn6 = samples / "spacenet6_rotterdam"
    return ["align", "--hires", str(sn6 / "pan1.tif"), "--lores", str(sn6 / "ms1.tif"), "--tile-size-m", "60",
            "-o", str(out)]  # fmt: skip


def test_align_killed_while_writing_its_output(samples, tmp_path):
    out = tmp_path / "set.h5"
    command = _align_command(samples, out)
    killed_at(r"/\.set\.h5\.[^/]*\.tmp$", *command)
    assert not out.exists()
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    with h5py.File(out) as f:
        assert f.attrs["format"] == "salibi-aligned" and f["hires"]["data"].shape[0] > 0


def test_align_run_again_clears_what_a_killed_run_left(samples, tmp_path):
    out = tmp_path / "set.h5"
    command = _align_command(samples, out)
    killed_at(r"/\.set\.h5\.[^/]*\.tmp$", *command)
    assert run_in_process(*command).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(
        build("tiny", channels={"lores": 4}),
        tmp_path_factory.mktemp("ckpt") / "ckpt",
        bands={"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02", "B08"], "hires": ["red", "green", "blue"]},
        gsd={"sar": 10.0, "lores": 10.0, "hires": 0.5},
    )


def test_eval_killed_while_writing_its_results(checkpoint, tmp_path):
    from salibi.eval.geobench.sample_tasks import write_shipped_tasks

    root = write_shipped_tasks(tmp_path / "geobench")
    results = tmp_path / "results.json"
    command = ["eval", "geobench", "--checkpoint", str(checkpoint), "--root", str(root), "--output", str(results),
               "--tasks", "raleigh-landcover", "--protocol", "knn,majority"]  # fmt: skip
    killed_at(r"/\.results\.json\.[^/]*\.tmp$", *command)
    assert not results.exists()
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    assert "raleigh-landcover" in json.loads(results.read_text())["tasks"]


@pytest.mark.parametrize("moment", ["part", "merge"])
def test_embed_killed_while_writing_then_the_same_command_finishes(moment, checkpoint, samples, tmp_path):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for i in range(3):
        shutil.copyfile(samples / "spacenet6_rotterdam" / "rgb_unmasked.tif", tiles / f"t{i}.tif")
    out = tmp_path / "out.h5"
    command = ["embed", str(tiles), "--checkpoint", str(checkpoint), "-o", str(out), "--batch-size", "1"]
    pattern = (
        r"\.parts/\.part-[^/]*\.tmp$" if moment == "part" else r"(\.parts/merged\.h5\.tmp|/\.out\.h5\.[^/]*\.tmp)$"
    )
    killed_at(pattern, *command)
    assert not out.exists() or h5py.is_hdf5(out)
    result = run_in_process(*command)
    assert result.returncode == 0, result.stderr
    with h5py.File(out) as f:
        paths = sorted(p.decode() if isinstance(p, bytes) else str(p) for p in f["path"][:])
    assert paths == ["t0.tif", "t1.tif", "t2.tif"]


def test_the_killer_kills_only_at_its_pattern(tmp_path):
    """The fault injection itself: a pattern that never matches lets the command run to its end."""
    result = subprocess.run(
        [sys.executable, KILLER, "never-matches", "bias", "--query", "4x4@10", "--key", "4x4@10", "-o",
         str(tmp_path / "b.png")],
        capture_output=True, text=True, env=COMMAND_ENV, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
