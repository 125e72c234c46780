"""The fault matrix's tools: the real command in fresh processes, signals to a process group, to the
launcher or to one rank, and a small tmpfs for a full disk (an unprivileged user for permissions,
``as_nobody`` and ``public_tmp``, is in tests/conftest.py: the other tests use it too)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import COMMAND_ENV, LAST_RESORT, SALIBI, metrics


def start_salibi(*args: str) -> subprocess.Popen:
    """The installed command in a session of its own: a signal to its process group is a terminal's."""
    return start_command([SALIBI, *args])


def start_command(command: list[str]) -> subprocess.Popen:
    """``command`` (salibi, or torchrun starting it) in a session of its own, as from a terminal."""
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=COMMAND_ENV, start_new_session=True
    )


def wait_for_step(process: subprocess.Popen, run: Path, step: int, timeout: float = LAST_RESORT) -> None:
    """Until ``metrics.jsonl`` records ``step`` (the run is past its start-up and training), or the
    process ends (a failure, with what it said)."""
    deadline = time.monotonic() + timeout
    while not any(r["step"] >= step for r in metrics(run)):
        if process.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {process.communicate()}")
        assert time.monotonic() < deadline, f"step {step} not reached in {timeout} s"
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``, oldest first."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def rank_pids(launcher: int) -> list[int]:
    """The rank processes a launcher started (torch's elastic launcher spawns them in rank order)."""
    ranks = []
    for pid in children(launcher):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                ranks.append(pid)
        except OSError:
            pass
    return ranks


def wait_gone(pids: list[int], timeout: float = LAST_RESORT) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still running after {timeout} s"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def send(process: subprocess.Popen, signum: int, target: str) -> list[int]:
    """``signum`` to ``target``: "group" (a terminal's Ctrl-C, ``kill -TERM -PGID``, SLURM), "launcher",
    or "rank N". Returns the rank processes as they were."""
    ranks = rank_pids(process.pid)
    if target == "group":
        os.killpg(process.pid, signum)
    elif target == "launcher":
        os.kill(process.pid, signum)
    else:
        os.kill(ranks[int(target.split()[1])], signum)
    return ranks


def one_error_line(stderr: str) -> str:
    """The one line a failed command printed (warnings aside): no traceback, nothing else."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def checkpoint_steps(run: Path) -> list[int]:
    return (
        sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*")) if (run / "checkpoints").exists() else []
    )


class Tmpfs:
    """A tmpfs of a given size (root only): a disk that fills up for real."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self, size: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"a small tmpfs could not be mounted for a full disk ({result.stderr.strip()}): needs root")
        return self.path

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Tmpfs]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is a small tmpfs, which only root can mount")
    disk = Tmpfs(tmp_path / "disk")
    yield disk
    disk.unmount()


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
