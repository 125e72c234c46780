"""The package stands on its own: a wheel built by maturin, installed without the checkout,
runs the demo from another folder on the samples it carries."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO


@pytest.mark.slow
def test_wheel_carries_the_samples_and_runs_the_demo_elsewhere(tmp_path):
    maturin = Path(sys.executable).with_name("maturin")
    built = subprocess.run(
        [str(maturin), "build", "--release", "--quiet", "-o", str(tmp_path / "dist")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("salibi-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "salibi/sample_data/SHA256SUMS" in names
    assert any(n.startswith("salibi/sample_data/landsat7_raleigh/") for n in names)
    assert not any(n.startswith(("data/", "tests/", "rust/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # PYTHONPATH puts the installed wheel before the editable checkout; dependencies come from this venv.
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "2"}
    env.pop("SALIBI_SAMPLES", None)
    where = subprocess.run(
        [sys.executable, "-c", "import salibi, salibi.samples as s; print(salibi.__file__); print(s.samples_dir())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout
    demo = subprocess.run(
        [sys.executable, "-m", "salibi", "demo", "--steps", "5", "--out", "out"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert (elsewhere / "out" / "eval.json").is_file() and "raleigh-landcover" in demo.stdout
