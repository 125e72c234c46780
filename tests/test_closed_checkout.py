"""A checkout under a folder that others may not enter (root's 0700 home, a ``mktemp -d`` folder):
the tests that run a command as ``nobody`` skip with the reason instead of failing (8 of them
failed there: ``nobody`` could not reach the interpreter or the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import LAST_RESORT, REPO, SHARED

ONE_UNPRIVILEGED_TEST = "tests/align/test_align_cli.py::test_output_folder_not_writable"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs tests as nobody")
def test_unprivileged_tests_skip_with_the_reason_in_a_closed_folder():
    closed = Path(tempfile.mkdtemp(prefix="salibi-closed-"))  # 0700: nobody may not enter it
    try:
        assert closed.stat().st_mode & 0o777 == 0o700
        clone = closed / "salibi"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=LAST_RESORT)
        (closed / "shared").symlink_to(SHARED)  # the real data, read in place as beside any clone
        result = subprocess.run(
            [sys.executable, "-m", "pytest", ONE_UNPRIVILEGED_TEST, "-p", "no:cacheprovider", "-rs", "-n", "0"],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=LAST_RESORT,
        )
    finally:
        subprocess.run(["rm", "-rf", str(closed)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "failed" not in result.stdout, result.stdout
    assert "the unprivileged user nobody cannot run" in result.stdout and str(clone) in result.stdout, result.stdout
