"""Shared pytest configuration."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bigearthnet_pair import align_pair
from helpers import REPO, SAMPLES, SHARED
from http_server import FileServer

# Under pytest-xdist (make test runs two workers) each worker and the commands it starts use one
# thread: two workers of two threads each on two cores slow every torch test down.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: The unprivileged user permission tests run as (CI runs the tests as root, who may read and write anything).
NOBODY = 65534


def shared_path(*parts: str) -> Path:
    """``../shared/<parts>`` from the project root. Missing: the test fails naming the path when
    ``CI`` is set (CI always has it), and is skipped with that reason elsewhere."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"{path} not found: tests read real data in place from ../shared/ beside the project"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


# Tests run on 2 CPU cores next to other work: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Files with more slow tests first, in order otherwise: with --dist loadfile and
    # --no-loadscope-reorder (the Makefile) the long files start first and the short ones fill
    # in after, so no worker ends the run alone on a long file while the other waits.
    slow = Counter(item.nodeid.split("::")[0] for item in items if "slow" in item.keywords)
    items.sort(key=lambda item: -slow[item.nodeid.split("::")[0]])
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda:
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU (see tests/benchmarks/gpu_check.sh)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real sample rasters shipped in data/samples (see data/README.md)."""
    return SAMPLES


@pytest.fixture(scope="session")
def shared():
    """:func:`shared_path`: ``shared("data", "naip_5m")`` -> ``../shared/data/naip_5m`` or fail/skip."""
    return shared_path


@pytest.fixture(scope="session")
def sen1floods11() -> Path:
    """The Sen1Floods11 chip Spain_7370579 (S1, S2, hand label), read in place from ../shared/."""
    return shared_path("data", "sen1floods11")


def nobody_command(command: list[str]) -> list[str]:
    """``command`` as the unprivileged user ``nobody`` (the tests run as root in CI, and root
    reads and writes whatever the permissions say); skipped, with the reason, where that cannot
    be done: no ``setpriv``, or a checkout or interpreter ``nobody`` cannot reach (a clone under
    a folder that others may not enter, such as root's 0700 home)."""
    if os.geteuid() != 0:
        return command  # already unprivileged
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run a command as an unprivileged user")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    reason = _nobody_cannot_run(tuple(prefix))
    if reason:
        pytest.skip(reason)
    return [*prefix, *command]


@functools.cache
def _nobody_cannot_run(prefix: tuple[str, ...]) -> str | None:
    """Why ``nobody`` cannot run this interpreter on this checkout (None: it can), asked once."""
    import subprocess

    probe = f"import salibi; open({str(REPO / 'pyproject.toml')!r}).close()"
    result = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, text=True)
    if result.returncode == 0:
        return None
    said = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    return (
        f"the unprivileged user nobody cannot run {sys.executable} on the checkout {REPO} ({said}): "
        "a folder above them is closed to other users; clone into a folder others may enter to run this test"
    )


@pytest.fixture(scope="session")
def as_nobody() -> Callable[[list[str]], list[str]]:
    """:func:`nobody_command`: ``as_nobody([...])`` -> that command as ``nobody`` (or the test is skipped)."""
    return nobody_command


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder every user may enter (pytest's own are root's alone), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="salibi-tests-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[FileServer]:
    """A real HTTP server (tests/http_server.py) serving ``server.root`` (a fresh folder) on
    127.0.0.1 with Range requests and redirects (``server.redirect(name)``), stopped afterwards."""
    root = tmp_path / "www"
    root.mkdir()
    with FileServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def aligned_set(tmp_path_factory, samples) -> Path:
    """An aligned training set of one shipped BigEarthNet square: 25 chips of 240 m (S1 VV/VH + 4 S2 bands, 10 m)."""
    return align_pair(samples, tmp_path_factory.mktemp("aligned") / "s1s2.h5")
