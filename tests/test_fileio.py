"""salibi.fileio: staging names that say whose they are, what killed writers left is cleared (never
a live writer's), finished outputs get the mode a plain open() or mkdir() gives, and an HDF5 file
whose writes fail is given up without crashing the process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from salibi import fileio


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process umask the test changes."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_finished_files_and_folders_get_the_mode_open_and_mkdir_give(tmp_path, umask, mask):
    os.umask(mask)
    with open(tmp_path / "plain", "w"):
        pass
    (tmp_path / "plain_dir").mkdir()
    written = fileio.write_atomic(tmp_path / "results.json", "{}")
    with fileio.staging_file(tmp_path / "chart.png") as staging:
        staging.write_bytes(b"png")
    with fileio.staging_dir(tmp_path / "ckpt") as folder:
        (folder / "config.json").write_text("{}")
    with fileio.staging_hdf5(tmp_path / "set.h5") as staged:
        staged.file.attrs["format"] = "x"
    from salibi.models import build, save_checkpoint

    save_checkpoint(build("tiny", modalities=("lores",)), tmp_path / "model")

    def mode(name: str) -> int:
        return (tmp_path / name).stat().st_mode & 0o777

    assert mode("plain") == 0o666 & ~mask and mode("plain_dir") == 0o777 & ~mask
    assert {mode(written.name), mode("chart.png"), mode("set.h5"), mode("ckpt/config.json")} == {0o666 & ~mask}
    assert mode("ckpt") == mode("model") == 0o777 & ~mask
    assert mode("model/config.json") == 0o666 & ~mask


def _owner() -> tuple[str, str]:
    """(pid, host) as this process writes them into staging names."""
    with tempfile.TemporaryDirectory() as folder, fileio.staging_file(Path(folder) / "probe") as staging:
        found = re.fullmatch(r"\.probe\.(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]{8}\.tmp", staging.name)
    assert found, staging.name
    return found[1], found[2]


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_staging_names_carry_the_writers_pid():
    pid, _ = _owner()
    assert int(pid) == os.getpid()


def test_what_dead_writers_left_is_removed_and_nothing_else(tmp_path):
    pid, host = _owner()
    dead = _dead_pid()
    stale_file = tmp_path / f".set.h5.{dead}@{host}.0123abcd.tmp"
    stale_dir = tmp_path / f".set.h5.{dead}@{host}.4567cdef.tmp"
    stale_file.write_bytes(b"half a file")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"half")
    kept = [
        tmp_path / f".set.h5.{pid}@{host}.89abcdef.tmp",  # a live writer's: this process
        tmp_path / f".set.h5.1@{host}.89abcdef.tmp",  # a live writer's: another user's process
        tmp_path / f".set.h5.{dead}@elsewhere.0123abcd.tmp",  # another machine's (a shared file system)
        tmp_path / f".set.h5.bak.{dead}@{host}.0123abcd.tmp",  # another output's
        tmp_path / ".set.h5.k2j3h4g5.tmp",  # not of this form (whose is unknown)
        tmp_path / "set.h5",
    ]
    for path in kept:
        path.write_bytes(b"keep")
    assert sorted(fileio.remove_stale_staging(tmp_path / "set.h5")) == sorted([stale_file, stale_dir])
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_the_next_write_of_an_output_clears_what_a_killed_one_left(tmp_path):
    _, host = _owner()
    dead = _dead_pid()
    (tmp_path / f".results.json.{dead}@{host}.0123abcd.tmp").write_bytes(b"half")
    (tmp_path / f".step_0000004.{dead}@{host}.0123abcd.tmp").mkdir()
    fileio.write_atomic(tmp_path / "results.json", "{}")
    with fileio.staging_dir(tmp_path / "step_0000004") as staging:
        (staging / "config.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "step_0000004"]


# A file size limit makes writes past it fail (EFBIG) as a full disk does: no root, no tmpfs.
_FAILING_HDF5 = """
import os, resource, sys
import numpy as np
from salibi.fileio import staging_hdf5

resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
target = sys.argv[1]
for attempt in range(2):  # the process goes on after a failed file, and can fail again
    try:
        with staging_hdf5(target) as staged:
            data = staged.file.create_dataset("data", shape=(0, 64, 64), maxshape=(None, 64, 64), dtype="f4",
                                              chunks=(1, 64, 64))
            for i in range(64):  # 1 MiB in chunks of 16 KiB, most of them in HDF5's chunk cache until closed
                data.resize(i + 1, axis=0)
                data[i] = np.full((64, 64), i, np.float32)
                if sys.argv[3] == "check":
                    staged.check()
    except OSError as err:
        print(err.errno, sorted(os.listdir(os.path.dirname(target))))
"""


@pytest.mark.parametrize("when", ["check", "close"])
@pytest.mark.parametrize("limit", [100, 100_000, 600_000])
def test_an_hdf5_file_whose_writes_fail_is_given_up_cleanly(tmp_path, when, limit):
    """HDF5 cannot close a file whose flush failed, and the next try crashes the process: the
    failed write is raised by check() or close() instead, and the process lives on."""
    result = subprocess.run(
        [sys.executable, "-c", _FAILING_HDF5, str(tmp_path / "set.h5"), str(limit), when],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.returncode, result.stderr)  # -11: SIGSEGV
    assert result.stdout.splitlines() == ["27 []", "27 []"], result.stdout + result.stderr  # EFBIG, nothing left


def test_write_json_is_strict_json_with_missing_metrics_as_null(tmp_path):
    import json

    path = fileio.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.5, float("inf")], "c": (2, "x")})
    text = path.read_text()
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [2, "x"]}
    assert "NaN" not in text and "Infinity" not in text and text.endswith("\n")
