"""The hand-written stub of the Rust extension matches the built module."""

from __future__ import annotations

import subprocess
import sys


def test_stub_matches_the_extension():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "salibi._core"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
