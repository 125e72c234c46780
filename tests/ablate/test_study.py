"""salibi ablate end to end on the shipped aligned set: the files, GEO-Bench and retrieval
compared between variants, a second call that trains nothing, an interrupted run resumed with
salibi pretrain --resume, retrieval skipped with its reason where the data has no chip of the
split, and a run whose initial weights are not the study's refused."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from salibi.ablate import AblationSettings, run_ablation
from salibi.ablate.report import summary_text
from salibi.ablate.study_plan import StudyLayout
from salibi.errors import SalibiError
from salibi.runs import INITIAL_WEIGHTS_JSON, step_name, write_last

pytestmark = pytest.mark.slow

VARIANTS = ("scale-alibi", "alibi")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """Two of the demo's aligned BigEarthNet files (salibi demo --only align)."""
    from salibi.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, only="align", log=lambda message: None)
    return sorted(str(p) for p in (out / "aligned").glob("*.h5"))[:2]


def _settings(aligned, out) -> AblationSettings:
    return AblationSettings(
        data=list(aligned),
        out=str(out),
        variants=VARIANTS,
        max_steps=4,
        batch_size=8,
        lr=5e-3,
        pretrain_args=["--save-every", "2", "--log-every", "2", "--quiet"],
        protocols=("knn",),
        tasks="raleigh-landcover",
        device="cpu",
        retrieval_split="all",  # the demo's aligned files are all training chips
    )


def _weights_digest(run) -> str:
    return hashlib.sha256((run / "checkpoints" / step_name(4) / "model.safetensors").read_bytes()).hexdigest()


def test_study_writes_its_files_resumes_and_trains_nothing_the_second_time(aligned, tmp_path):
    out = tmp_path / "study"
    lines: list[str] = []
    study = run_ablation(_settings(aligned, out), log=lines.append)
    layout = StudyLayout(out)
    assert study.trained == ["scale-alibi-seed0", "alibi-seed0"] and not study.failed

    document = json.loads(layout.json.read_text())
    assert set(document["variants"]) == {*VARIANTS, "random-init"}
    accuracy = document["variants"]["alibi"]["raleigh-landcover"]["knn"]["accuracy"]
    low, high = document["intervals"]["alibi"]["raleigh-landcover"]["knn"]["accuracy"]
    assert low <= accuracy <= high
    assert set(document["differences"]) == {"alibi", "random-init"}
    diff = document["differences"]["alibi"]["raleigh-landcover"]["knn"]["accuracy"]
    reference = document["variants"]["scale-alibi"]["raleigh-landcover"]["knn"]["accuracy"]
    assert diff["delta"] == pytest.approx(accuracy - reference)
    assert diff["excludes_zero"] == (diff["interval"][0] > 0 or diff["interval"][1] < 0)
    assert document["runs"]["alibi"] == [str(out / "runs" / "alibi-seed0")]
    commands = [c.split()[:3] for c in document["commands"]]
    assert [c[:2] for c in commands[:2]] == [["salibi", "pretrain"]] * 2
    assert commands[2:] == [["salibi", "eval", "geobench"]] * 3 + [["salibi", "eval", "retrieval"]] * 3
    assert "majority" in document["variants"]["random-init"]["raleigh-landcover"]
    markdown = layout.markdown.read_text()
    assert "| raleigh-landcover | knn | accuracy | alibi |" in markdown and "paired 95 % interval" in markdown

    # Retrieval on the study's own chips, the same comparisons from the same kind of replicates.
    section = document["retrieval"]
    assert section["n_queries"] == 50 and section["split"] == "all" and section["modalities"] == ["sar", "lores"]
    assert set(section["variants"]) == {*VARIANTS, "random-init"} and set(section["differences"]) == {
        "alibi",
        "random-init",
    }
    for name in ("alibi", "random-init"):
        own = json.loads(layout.retrieval(f"{name}-seed0").read_text())
        reference = json.loads(layout.retrieval("scale-alibi-seed0").read_text())
        for metric in ("recall@1", "median_rank"):
            value = section["variants"][name]["sar->lores"][metric]
            assert value == own["results"]["sar->lores"][metric]
            diff = section["differences"][name]["sar->lores"][metric]
            assert diff["delta"] == pytest.approx(value - reference["results"]["sar->lores"][metric])
            low, high = section["intervals"][name]["sar->lores"][metric]
            assert low <= value <= high
    assert section["chance"]["lores->sar"]["recall@1"] == 1 / 50
    assert "| sar->lores | recall@1 | alibi |" in markdown and "Reading (retrieval):" in markdown
    assert layout.chart.read_bytes()[:4] == b"\x89PNG"

    # Every variant and the untrained model started from the same weights: the study's record
    # and each run's own agree, parameter by parameter.
    shared = json.loads(layout.shared_initial_weights.read_text())["seeds"]["0"]
    assert shared["shared"] == shared["equal"] > 50 and shared["only_in"] == {}
    for variant in VARIANTS:
        record = json.loads((out / "runs" / f"{variant}-seed0" / INITIAL_WEIGHTS_JSON).read_text())["parameters"]
        assert {n: d["sha256"] for n, d in record.items()} == shared["parameters"]

    # A second identical call trains and evaluates nothing, and reports the same.
    before = {v: _weights_digest(out / "runs" / f"{v}-seed0") for v in VARIANTS}
    again = run_ablation(_settings(aligned, out), log=lines.append)
    assert again.trained == [] and again.evaluated == []
    assert again.document["differences"] == study.document["differences"]

    # Interrupted after step 2 (its newest checkpoint): the next call resumes it with
    # salibi pretrain --resume and ends on the weights of the uninterrupted run.
    run = out / "runs" / "alibi-seed0"
    shutil.rmtree(run / "checkpoints" / step_name(4))
    write_last(run, step_name(2))
    resumed = run_ablation(_settings(aligned, out), log=lines.append)
    assert resumed.trained == ["alibi-seed0"] and resumed.evaluated == ["alibi-seed0", "alibi-seed0 (retrieval)"]
    assert any("alibi-seed0: resuming at step 2 of 4" in line for line in lines)
    assert {v: _weights_digest(out / "runs" / f"{v}-seed0") for v in VARIANTS} == before
    assert resumed.document["variants"] == study.document["variants"]
    assert resumed.document["retrieval"]["variants"] == study.document["retrieval"]["variants"]

    # Retrieval alone on a split the data has no chip of: nothing trained, retrieval skipped with why.
    settings = _settings(aligned, out)
    settings.evals, settings.retrieval_split = ("retrieval",), "validation"
    skipped = run_ablation(settings)
    assert skipped.trained == [] and "0 validation chips" in skipped.document["retrieval"]["skipped"]
    summary = summary_text(skipped.document)
    assert summary.startswith("Cross-modal retrieval: skipped: ") and "raleigh-landcover" not in summary

    # A run whose record of its initial weights is not the study's: refused, never compared.
    record_path = out / "runs" / "alibi-seed0" / INITIAL_WEIGHTS_JSON
    record = json.loads(record_path.read_text())
    name = next(iter(record["parameters"]))
    record["parameters"][name]["sha256"] = "0" * 64
    record_path.write_text(json.dumps(record))
    with pytest.raises(SalibiError, match="started from other weights"):
        run_ablation(_settings(aligned, out))
