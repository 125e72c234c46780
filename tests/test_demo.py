"""salibi demo: the whole journey on the shipped data (with a reduced step count)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py

SALIBI = str(Path(sys.executable).with_name("salibi"))


def test_demo_runs_end_to_end_and_lays_out_its_outputs(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run([SALIBI, "demo", "--out", str(out), "--steps", "20"], capture_output=True, text=True,
                            env=env, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("1/4 align", "2/4 pretrain", "3/4 embed", "4/4 eval geobench"):
        assert step in result.stdout
    assert "pretrained" in result.stdout and "steps, loss" in result.stdout

    with h5py.File(out / "aligned.h5") as f:
        assert f.attrs["format"] == "salibi-aligned" and set(f) >= {"sar", "lores", "bounds", "split"}
    assert (out / "run" / "checkpoints" / "last").read_text().strip() == "step_0000020"
    assert len((out / "run" / "metrics.jsonl").read_text().splitlines()) >= 2
    with h5py.File(out / "embeddings.h5") as f:
        assert f.attrs["format"] == "salibi-embeddings"
        assert f["embedding"].shape[0] == len(f["path"]) > 60 and len(f["failed_path"]) == 0
        assert set(m.decode() for m in f["modality"][:]) == {"sar", "lores"}
        assert {round(g) for g in f["gsd"][:]} == {5, 10}  # NAIP and Sentinel tiles through one encoder
    results = json.loads((out / "eval.json").read_text())
    assert results["failed"] == {} and results["skipped"] == {}
    seg = results["tasks"]["sen1floods11-water-seg"]
    assert seg["seg"]["miou"] > seg["majority"]["miou"]
    assert set(results["tasks"]["sen1floods11-water"]) == {"knn", "linear", "majority"}
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG"

    # Running it again replaces the demo outputs instead of failing on them.
    again = subprocess.run([SALIBI, "demo", "--out", str(out), "--steps", "2"], capture_output=True, text=True,
                           env=env, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (out / "run" / "checkpoints" / "last").read_text().strip() == "step_0000002"
