"""Several ranks: disjoint, deterministic shards that cover the work; gloo ranks on CPU
(--cpu-procs, torch's elastic launcher); kill -9 mid-run and resume on another number of ranks
gives each chip once, equal to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from salibi.distributed.ranks import shard
from salibi.embed import embed, read_embeddings
from salibi.embed.embed_job import checkpoint_specs
from salibi.embed.output.store import Done
from salibi.embed.records import ReadSettings
from salibi.embed.work import item_size, plan_work
from salibi.models import load_checkpoint

from .make_tiles import NAIP

CHIP_M = 320  # 11 x 14 chips of 64 px over the NAIP quarter-quad


def naip_items(checkpoint, done=None):
    model = load_checkpoint(checkpoint)
    settings = ReadSettings("auto", None, checkpoint_specs(model), 8, 32)
    return plan_work(NAIP, settings, done or Done(), CHIP_M, None, 32).items


def chips_of(items):
    return [(item.row, col) for item in items for col in item.cols]


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_deterministic_and_cover_every_chip(checkpoint, world_size):
    items = naip_items(checkpoint)
    every = chips_of(items)
    assert len(every) == len(set(every)) == 154
    shards = [chips_of(shard(items, r, world_size)) for r in range(world_size)]
    assert sorted(c for s in shards for c in s) == sorted(every)
    assert sum(len(s) for s in shards) == len(every)  # disjoint
    assert shards == [chips_of(shard(naip_items(checkpoint), r, world_size)) for r in range(world_size)]
    # on resume the work left is sharded afresh: still disjoint and covering
    done = Done()
    done.add([(f"{NAIP.name}#r{r}c{c}", "lores") for r, c in every[::3]])
    left = naip_items(checkpoint, done)
    assert sum(item_size(i) for i in left) == 154 - len(every[::3])
    resumed = [chips_of(shard(left, r, world_size)) for r in range(world_size)]
    assert sorted(c for s in resumed for c in s) == sorted(set(every) - set(every[::3]))


@pytest.fixture(scope="module")
def reference(naip_outputs):
    """An uninterrupted single-process run (batch size 32: the batch size changes no row)."""
    return read_embeddings(naip_outputs[0] / "naip.h5")


def assert_each_chip_once(output: Path, reference) -> None:
    table = read_embeddings(output)
    assert sorted(table.path) == sorted(reference.path)
    assert len(set(table.path)) == len(table.path) == 154
    for i, path in enumerate(table.path):
        j = reference.row_of(path)
        np.testing.assert_allclose(table.embedding[i], reference.embedding[j], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(table.bounds[i], reference.bounds[j])
        np.testing.assert_array_equal(table.chip[i], reference.chip[j])


def start_and_kill(command: list[str], parts: Path) -> str:
    """Start ``command`` in its own process group, SIGKILL the group once a part file appears."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if parts.is_dir() and any(parts.glob("part-*.h5")):
            break
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and its ranks: the group this test started
    log = process.communicate()[0].decode()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{log}"
    return log


def embed_command(output: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "salibi", "embed", str(NAIP), "--checkpoint", str(checkpoint), "-o", str(output),
        "--chip-size-m", str(CHIP_M), "--batch-size", "8", "--device", "cpu", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_killed_single_process_run_resumes_on_two_ranks(checkpoint, reference, tmp_path):
    output = tmp_path / "naip.h5"
    parts = tmp_path / "naip.h5.parts"
    start_and_kill(embed_command(output, checkpoint), parts)
    assert not output.exists()
    finished = len(list(parts.glob("part-*.h5")))
    assert finished > 0
    with pytest.warns(UserWarning):
        summary = embed(NAIP, checkpoint, output, chip_size_m=CHIP_M, batch_size=8, cpu_procs=2, progress=False)
    assert summary.ranks == 2 and summary.skipped > 0 and summary.skipped + summary.embedded == 154
    assert "x 2 ranks" in summary.format()
    assert not parts.exists()
    assert_each_chip_once(output, reference)


@pytest.mark.slow
def test_killed_two_rank_geoparquet_run_resumes_in_one_process(checkpoint, reference, tmp_path):
    output = tmp_path / "naip.parquet"
    parts = tmp_path / "naip.parquet.parts"
    start_and_kill(embed_command(output, checkpoint, "--cpu-procs", "2"), parts)
    left = sorted(p.name for p in parts.glob("part-*.h5"))
    assert left and all(name.startswith("part-000000-000") for name in left)  # run 0, per-rank names
    with pytest.warns(UserWarning):
        summary = embed(NAIP, checkpoint, output, chip_size_m=CHIP_M, batch_size=8, progress=False)
    assert summary.ranks == 1 and summary.skipped + summary.embedded == 154 and summary.rows == 154
    assert_each_chip_once(output, reference)
