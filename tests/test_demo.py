"""salibi demo: the whole journey on the shipped data (with a reduced step count), also from a copy
of the samples alone (no ../shared/, no checkout around them)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py

from helpers import SALIBI


def test_demo_runs_end_to_end_and_lays_out_its_outputs(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        [SALIBI, "demo", "--out", str(out), "--steps", "20"], capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("1/5 align", "2/5 pretrain", "3/5 embed", "4/5 eval geobench", "5/5 eval retrieval"):
        assert step in result.stdout
    assert "pretrained" in result.stdout and "steps, loss" in result.stdout

    aligned = sorted((out / "aligned").glob("*.h5"))
    assert len(aligned) == 6  # one per BigEarthNet pair
    for path in aligned:
        with h5py.File(path) as f:
            assert f.attrs["format"] == "salibi-aligned" and set(f) >= {"sar", "lores", "bounds", "split"}
            assert [b.decode() if isinstance(b, bytes) else b for b in f["lores"].attrs["bands"]] == [
                "B02",
                "B03",
                "B04",
                "B08",
                "B11",
                "B12",
            ]
    assert (out / "run" / "checkpoints" / "last").read_text().strip() == "step_0000020"
    assert len((out / "run" / "metrics.jsonl").read_text().splitlines()) >= 2
    with h5py.File(out / "embeddings.h5") as f:
        assert f.attrs["format"] == "salibi-embeddings"
        assert f["embedding"].shape[0] == len(f["path"]) > 60 and len(f["failed_path"]) == 0
        assert set(m.decode() for m in f["modality"][:]) == {"sar", "lores"}
        assert {float(g) for g in f["gsd"][:]} == {10.0, 28.5}  # Sentinel and Landsat tiles through one encoder
    results = json.loads((out / "eval.json").read_text())
    assert results["failed"] == {} and results["skipped"] == {}
    seg = results["tasks"]["raleigh-landcover-seg"]
    assert seg["seg-linear"]["miou"] > seg["majority"]["miou"]
    assert set(results["tasks"]["raleigh-landcover"]) == {"knn", "linear", "majority"}
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG"

    # Beside every number of the checkpoint: the same model untrained, on the same test samples,
    # with the difference's paired interval; the untrained model is the run's own initial weights.
    untrained = json.loads((out / "eval.random-init.json").read_text())
    assert untrained["checkpoint"].endswith("(random-init)") and untrained["failed"] == {}
    assert set(untrained["tasks"]) == set(results["tasks"])
    assert "random init: the initial weights of the run" in result.stdout
    assert "| raleigh-landcover | knn | accuracy |" in result.stdout and "paired 95 % interval" in result.stdout
    assert "raleigh-landcover knn: " in result.stdout and "random init" in result.stdout.split("paired 95 %")[1]

    # Beside it, cross-modal retrieval on the 150 chips: the checkpoint, the untrained model, chance.
    retrieval = json.loads((out / "retrieval.json").read_text())
    assert retrieval["format"] == "salibi-retrieval" and retrieval["n_queries"] == 150
    assert list(retrieval["results"]) == ["sar->lores", "lores->sar"] and retrieval["split"] == "all"
    assert retrieval["baseline"]["name"] == "random-init" and retrieval["chance"]["sar->lores"]["recall@1"] == 1 / 150
    assert "Cross-modal retrieval on the 150 chips the model trained on" in result.stdout
    assert "| sar->lores | recall@1 |" in result.stdout and "- lores->sar: " in result.stdout

    # Running it again replaces the demo outputs instead of failing on them.
    again = subprocess.run(
        [SALIBI, "demo", "--out", str(out), "--steps", "2"], capture_output=True, text=True, env=env, timeout=900
    )
    assert again.returncode == 0, again.stderr
    assert (out / "run" / "checkpoints" / "last").read_text().strip() == "step_0000002"


def test_demo_needs_only_the_shipped_samples(tmp_path):
    """SALIBI_SAMPLES pointing at a copy of data/samples elsewhere: nothing else is read."""
    import shutil

    copy = tmp_path / "samples"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "samples", copy)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "SALIBI_SAMPLES": str(copy)}
    result = subprocess.run(
        [SALIBI, "demo", "--out", str(tmp_path / "demo"), "--steps", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raleigh-landcover" in result.stdout


def test_missing_samples_are_one_line_naming_the_fix(tmp_path):
    env = {**os.environ, "SALIBI_SAMPLES": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [SALIBI, "demo", "--out", str(tmp_path / "demo"), "--steps", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "SALIBI_SAMPLES" in result.stderr and "make_samples.py" in result.stderr


def test_only_align_writes_the_aligned_set_alone(tmp_path):
    out = tmp_path / "demo"
    (out / "run").mkdir(parents=True)  # other outputs are left alone
    result = subprocess.run(
        [SALIBI, "demo", "--out", str(out), "--only", "align"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((out / "aligned").glob("*.h5"))) == 6 and "150 chips" in result.stdout
    assert (out / "run").is_dir() and not (out / "eval.json").exists() and "2/5 pretrain" not in result.stdout
