"""Aligned sets of tests/train beside tests/conftest.py's ``aligned_set``: the same square at 20 m, huge chips."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigearthnet_pair import align_pair


@pytest.fixture(scope="session")
def coarse_set(tmp_path_factory, samples) -> Path:
    """The same square at 20 m: 9 chips of 320 m (16 px)."""
    return align_pair(samples, tmp_path_factory.mktemp("aligned") / "s1s2_20m.h5", tile_size_m=320, gsd=20.0)


@pytest.fixture(scope="session")
def huge_chip_set(tmp_path_factory) -> Path:
    """16 chips of 960 m: high-res at 0.25 m (3840 px, 57,600 tokens of 16 px), low-res at 10 m."""
    from faults.aligned_files import write_aligned

    path = tmp_path_factory.mktemp("aligned") / "huge.h5"
    return write_aligned(path, {"lores": (3, 96, 10.0), "hires": (3, 3840, 0.25)}, fill=None)
