"""Shared pytest configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
#: Real data that may be read in place but never copied into the project (see data/README.md).
SHARED = REPO.parent / "shared"


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
