"""salibi demo: the whole journey on the shipped data (with a reduced step count), run by a wheel
installed away from the checkout on the samples it carries; its bad input and --only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import pytest

from helpers import REPO, SALIBI


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_demo_end_to_end_on_the_samples_it_carries(tmp_path):
    """The package stands on its own: a wheel built by maturin, installed without the checkout,
    runs the whole journey from another folder on the samples it carries (nothing else is read:
    no ../shared/, no checkout around it), replaces an earlier demo's outputs and lays out its own."""
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
    # What an earlier demo left (a run past this one's steps, an aligned file this one does not
    # write, an embeddings file, results) is replaced; a file of the user's beside them is not.
    out = elsewhere / "demo"
    (out / "run" / "checkpoints").mkdir(parents=True)
    (out / "run" / "checkpoints" / "last").write_text("step_0000099\n")
    (out / "run" / "run.json").write_text("{}")
    (out / "aligned").mkdir()
    (out / "aligned" / "earlier.h5").write_bytes(b"stale")
    (out / "embeddings.h5").write_bytes(b"stale")
    (out / "eval.json").write_text("stale")
    (out / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "salibi", "demo", "--steps", "20", "--out", "demo"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
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

    assert (out / "notes.txt").read_text() == "mine"


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
