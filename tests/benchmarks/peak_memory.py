"""Peak memory of one call, for the benchmark scripts.

CUDA: the caching allocator's peak above what was allocated before the call. CPU: the process's
resident high-water mark above its resident size before the call (Linux ``/proc``), which also
sees buffers that compiled kernels allocate outside torch. That is exact only where freed memory
goes back to the system: malloc keeps freed blocks below its (rising) mmap threshold for reuse,
so a later call could reuse an earlier call's memory unseen. CPU measurements therefore run in a
child process started with ``MALLOC_MMAP_THRESHOLD_=65536`` (every block of 64 KiB or more is
mapped and unmapped on its own): :func:`measure_in_child` re-runs the calling script there.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def cpu_measurable() -> bool:
    """Whether this process can measure CPU memory exactly (Linux, malloc set as above)."""
    return Path("/proc/self/clear_refs").exists() and os.environ.get("MALLOC_MMAP_THRESHOLD_") == "65536"


def measure_in_child(arguments: list[str]) -> None:
    """Run this script again with ``arguments`` in a child whose malloc returns freed memory;
    its output is this process's."""
    if not Path("/proc/self/clear_refs").exists():
        print("  (peak CPU memory is measured through Linux's /proc; skipped here)")
        return
    subprocess.run([sys.executable, sys.argv[0], *arguments], env={**os.environ, **_MALLOC}, check=True)


def _resident(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())[1]) * 1024  # type: ignore[index]


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes one call of ``fn`` holds at its peak above what was held before it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not cpu_measurable():
        raise RuntimeError("CPU memory is measured in a child process: see measure_in_child")
    Path("/proc/self/clear_refs").write_text("5")  # restart the high-water mark here
    before = _resident("VmRSS")
    fn()
    return _resident("VmHWM") - before
