"""``salibi eval geobench`` end to end: files written, tables, skips, failures, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from salibi.cli import cli
from salibi.eval.protocols.linear_probe import C_GRID
from salibi.models import build, save_checkpoint

from .conftest import REAL


def linear_c_grid():
    return C_GRID


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["eval", "geobench", *args], env=env, catch_exceptions=False)


def _subset(root: Path, target: Path, *names: str) -> Path:
    for benchmark in ("classification_v1.0", "segmentation_v1.0"):
        for name in names:
            if (root / benchmark / name).exists():
                shutil.copytree(root / benchmark / name, target / benchmark / name, symlinks=True)
    return target


@pytest.mark.slow
def test_end_to_end_on_every_task_kind(synthetic_root, random_checkpoint, tmp_path):
    out = tmp_path / "out" / "results.json"
    result = _run(
        "--checkpoint",
        str(random_checkpoint),
        "--root",
        str(synthetic_root),
        "--output",
        str(out),
        "--tasks",
        "m-tiny-s2,m-tiny-multilabel,m-tiny-seg,m-dangling,m-old-format",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert {"checkpoint", "partition", "tasks", "skipped", "failed", "intervals", "runs"} <= set(document)
    assert document["format"] == "salibi-eval-results" and document["format_version"] == 2
    assert document["checkpoint"] == str(random_checkpoint) and document["partition"] == "default"
    assert document["skipped"] == {} and document["failed"] == {}
    tasks, intervals = document["tasks"], document["intervals"]
    assert set(tasks) == {"m-tiny-s2", "m-tiny-multilabel", "m-tiny-seg", "m-dangling", "m-old-format"}
    assert set(tasks["m-tiny-s2"]) == {"knn", "linear", "majority"}
    assert set(tasks["m-tiny-seg"]) == {"seg-linear", "seg-fpn", "majority"}
    assert set(tasks["m-tiny-seg"]["majority"]) == {"miou", "pixel_accuracy"}
    assert set(tasks["m-tiny-s2"]["knn"]) == {"accuracy"}
    assert set(tasks["m-tiny-multilabel"]["linear"]) == {"f1_micro", "map_micro", "f1_macro"}
    assert set(tasks["m-tiny-seg"]["seg-fpn"]) == {"miou", "pixel_accuracy"}
    # Every value has its interval, and lies in it.
    for task, per_protocol in tasks.items():
        for protocol, metrics in per_protocol.items():
            assert set(intervals[task][protocol]) == set(metrics)
            for metric, value in metrics.items():
                low, high = intervals[task][protocol][metric]
                assert low - 1e-9 <= value <= high + 1e-9, (task, protocol, metric)
    # The tasks carry a signal, so a frozen random encoder does far better than chance.
    assert tasks["m-tiny-s2"]["knn"]["accuracy"] > 0.6 and tasks["m-tiny-s2"]["linear"]["accuracy"] > 0.6
    assert tasks["m-tiny-multilabel"]["knn"]["f1_micro"] > 0.5
    assert tasks["m-tiny-seg"]["seg-linear"]["miou"] > 0.5 and tasks["m-dangling"]["seg-fpn"]["miou"] > 0.5
    # ... and than the majority-class reference reported beside them.
    assert tasks["m-tiny-s2"]["knn"]["accuracy"] > tasks["m-tiny-s2"]["majority"]["accuracy"]
    assert tasks["m-tiny-seg"]["seg-fpn"]["miou"] > tasks["m-tiny-seg"]["majority"]["miou"]
    linear = next(r for r in document["runs"] if r["task"] == "m-tiny-s2" and r["protocol"] == "linear")
    assert linear["best_c"] in linear_c_grid() and linear["n_train"] == 12 and linear["feature_dim"] == 64
    fpn = next(r for r in document["runs"] if r["task"] == "m-tiny-seg" and r["protocol"] == "seg-fpn")
    assert fpn["blocks"] == [0, 1] and fpn["parameters"]["epochs"] == 10
    header, *rows = out.with_suffix(".csv").read_text().splitlines()
    assert header.startswith("dataset,method,metric_name,metric_value,ci_lower,ci_upper,feature_dim,best_c,")
    assert any(r.startswith("m-tiny-s2,knn5,accuracy,") for r in rows)
    assert any(r.startswith("m-tiny-multilabel,linear,micro_mAP,") for r in rows)
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| m-tiny-s2 | knn | accuracy |" in result.stdout and "| deterministic |" in result.stdout
    assert not list(out.parent.glob(".*.tmp"))  # no temporary files left behind


def test_seeds_repeat_only_the_seeded_protocols(synthetic_root, random_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    args = ["--checkpoint", str(random_checkpoint), "--root", str(synthetic_root), "--output", str(out)]
    result = _run(*args, "--tasks", "m-tiny-seg", "--seeds", "3", "--protocol", "seg-linear,majority")
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    seg = document["tasks"]["m-tiny-seg"]["seg-linear"]
    # Heads trained from three seeds differ a little: mean, std and IQM over seeds.
    assert 0 < seg["miou"] <= 1 and seg["miou_std"] > 0 and "miou_iqm" in seg
    assert f"{seg['miou']:.3f} ± {seg['miou_std']:.3f}" in result.stdout
    runs = [(r["protocol"], r["seed"]) for r in document["runs"]]
    assert sorted(runs) == [("majority", 0), ("seg-linear", 0), ("seg-linear", 1), ("seg-linear", 2)]
    assert "miou_std" not in document["tasks"]["m-tiny-seg"]["majority"]  # deterministic: no fake std
    low, high = document["intervals"]["m-tiny-seg"]["seg-linear"]["miou"]
    assert low < seg["miou"] < high

    # Resuming with more seeds computes only the new ones.
    result = _run(*args, "--tasks", "m-tiny-seg", "--seeds", "4", "--protocol", "seg-linear,majority")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr
    again = json.loads(out.read_text())
    assert len(again["runs"]) == 5
    assert again["runs"][:4] == document["runs"]  # the finished runs are kept as they were
    assert "seg-linear (default, seed 3)" in result.stderr and "seed 0)" not in result.stderr


def test_hostile_task_fails_alone_and_never_runs(synthetic_root, random_checkpoint, tmp_path):
    root = _subset(synthetic_root, tmp_path / "root", "m-tiny-s2")
    hostile = root / "classification_v1.0" / "m-evil"
    shutil.copytree(root / "classification_v1.0" / "m-tiny-s2", hostile)
    marker = tmp_path / "pwned"
    (hostile / "task_specs.pkl").write_bytes(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())
    out = tmp_path / "results.json"
    result = _run("--checkpoint", str(random_checkpoint), "--root", str(root), "--output", str(out))
    assert result.exit_code == 1
    assert not marker.exists()
    document = json.loads(out.read_text())
    assert "m-tiny-s2" in document["tasks"]
    reason = document["failed"]["m-evil"]
    assert "refusing to unpickle os.system from" in reason and "task_specs.pkl" in reason
    assert "Error: 1 task(s) failed: m-evil" in result.stderr


def test_missing_task_specs_alone_is_the_error(random_checkpoint, tmp_path):
    # The one task asked for fails: nothing to report, so its reason is the error and nothing is written.
    result = _run(
        "--checkpoint",
        str(random_checkpoint),
        "--root",
        str(REAL / "official_tests"),
        "--output",
        str(tmp_path / "r.json"),
        "--tasks",
        "cvpr_chesapeake_landcover",
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cvpr_chesapeake_landcover: "), result.stderr
    assert "task_specs.pkl is missing" in lines[0]
    assert not list(tmp_path.iterdir())


def test_when_every_task_fails_the_first_is_the_error_and_nothing_is_written(
    synthetic_root, random_checkpoint, tmp_path
):
    from salibi.errors import TasksFailedError
    from salibi.eval.evaluate import evaluate_geobench
    from salibi.eval.settings import GeoBenchSettings

    root = tmp_path / "root"
    for name in ("m-evil", "m-evil-too", "m-evil-three"):
        _subset(synthetic_root, tmp_path / "copy", "m-tiny-s2")
        shutil.copytree(tmp_path / "copy" / "classification_v1.0" / "m-tiny-s2", root / "classification_v1.0" / name)
        shutil.rmtree(tmp_path / "copy")
        (root / "classification_v1.0" / name / "task_specs.pkl").write_bytes(b"cos\nsystem\n(Vtrue\ntR.")
    out = tmp_path / "out" / "results.json"
    out.parent.mkdir()
    result = _run("--checkpoint", str(random_checkpoint), "--root", str(root), "--output", str(out))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: m-evil: refusing to unpickle os.system from ")
    assert result.stderr.rstrip().endswith("(and 2 more tasks failed: m-evil-three, m-evil-too)")
    assert not list(out.parent.iterdir())
    lines, updates = [], []
    with pytest.raises(TasksFailedError) as raised:
        settings = GeoBenchSettings(root=root, device="cpu")
        evaluate_geobench(random_checkpoint, settings, log=lines.append, on_update=updates.append)
    assert sorted(raised.value.failed) == ["m-evil", "m-evil-three", "m-evil-too"]
    assert all("refusing to unpickle" in why for why in raised.value.failed.values())
    assert lines == [] and updates == []


def test_skipped_tasks_say_why(synthetic_root, tmp_path):
    sar_only = build("tiny", modalities=("sar", "lores"), channels={"lores": 2})
    ckpt = save_checkpoint(sar_only, tmp_path / "ckpt", bands={"sar": ["VV", "VH"], "lores": ["VV", "VH"]})
    out = tmp_path / "r.json"
    result = _run(
        "--checkpoint",
        str(ckpt),
        "--root",
        str(synthetic_root),
        "--output",
        str(out),
        "--tasks",
        "m-tiny-s2,m-tiny-seg",
        "--protocol",
        "knn",
    )
    assert result.exit_code == 0, result.output
    skipped = json.loads(out.read_text())["skipped"]
    assert "no checkpoint modality matches the task's bands" in skipped["m-tiny-s2"]
    assert "no requested protocol applies to a segmentation task" in skipped["m-tiny-seg"]
    assert "--protocol seg" in skipped["m-tiny-seg"]
    assert "Skipped:" in result.stdout


@pytest.mark.slow
def test_shared_geobench_samples_end_to_end(random_checkpoint, tmp_path, copy_task):
    """The real GEO-Bench files of ../shared: m-eurosat as it is, and South Africa crop type
    (whose default partition dangles) with a partition file of its five samples added."""
    out = tmp_path / "eurosat.json"
    result = _run("--checkpoint", str(random_checkpoint), "--output", str(out), env={"GEO_BENCH_DIR": str(REAL)})
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    eurosat = document["tasks"]["m-eurosat"]
    assert set(eurosat) == {"knn", "linear", "majority"}
    # train = valid = test in these five samples, all of one class: every protocol is right, as is chance.
    assert eurosat["knn"]["accuracy"] == eurosat["majority"]["accuracy"] == 1.0
    assert document["intervals"]["m-eurosat"]["linear"]["accuracy"] == [1.0, 1.0]

    crops = copy_task(REAL / "official_tests" / "southAfricaCropType", "segmentation_v1.0")
    (crops / "default_partition.json").unlink()
    names = sorted(p.stem for p in crops.glob("*.hdf5"))
    (crops / "default_partition.json").write_text(json.dumps({"train": names, "valid": names, "test": names}))
    out = tmp_path / "crops.json"
    result = _run("--checkpoint", str(random_checkpoint), "--root", str(crops.parents[1]), "--output", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    seg = document["tasks"]["southAfricaCropType"]
    assert set(seg) == {"seg-linear", "seg-fpn", "majority"}
    for protocol in seg:
        low, high = document["intervals"]["southAfricaCropType"][protocol]["miou"]
        assert 0 <= low <= seg[protocol]["miou"] <= high <= 1
    # Trained and scored on the same five images, the heads beat the constant prediction.
    assert seg["seg-linear"]["pixel_accuracy"] > seg["majority"]["pixel_accuracy"]
    assert "| southAfricaCropType | seg-fpn | miou |" in result.stdout


def test_partitions_curve_and_saved_features(synthetic_root, random_checkpoint, tmp_path):
    import h5py

    from salibi.eval.output.feature_store import read_features

    out = tmp_path / "curve.json"
    features = tmp_path / "features"
    result = _run(
        "--checkpoint", str(random_checkpoint), "--root", str(synthetic_root), "--output", str(out),
        "--tasks", "m-tiny-s2", "--protocol", "knn,majority", "--partitions", "all", "--save-features", str(features),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["partition"] == "1.00x_train" and document["partitions"][-1] == "1.00x_train"
    # The fixtures have two train-size partitions; the half one trains on 6 of the 12 samples.
    assert set(document["partition_results"]) == {"0.50x_train", "1.00x_train"}
    sizes = {(r["partition"], r["protocol"]): (r["n_train"], r["n_test"]) for r in document["runs"]}
    assert sizes[("0.50x_train", "knn")] == (6, 6) and sizes[("1.00x_train", "knn")] == (12, 6)
    assert "| m-tiny-s2 | knn | 0.50x_train | 6 | accuracy |" in result.stdout
    assert out.with_name("curve.partitions.png").read_bytes()[:4] == b"\x89PNG"
    x, y, ids = read_features(features / "m-tiny-s2" / "train.h5")
    assert x.shape == (12, 64) and x.dtype == np.float32 and len(ids) == 12 and y.dtype == np.int64
    with h5py.File(features / "m-tiny-s2" / "test.h5") as f:
        assert f.attrs["format"] == "salibi-eval-features" and f.attrs["split"] == "test"
        assert f.attrs["checkpoint"] == str(random_checkpoint)
    # The saved features give the saved kNN result with scikit-learn.
    from sklearn.neighbors import KNeighborsClassifier

    tx, ty, _ = read_features(features / "m-tiny-s2" / "test.h5")
    accuracy = KNeighborsClassifier(5, algorithm="brute").fit(x, y).score(tx, ty)
    assert document["partition_results"]["1.00x_train"]["m-tiny-s2"]["knn"]["accuracy"] == pytest.approx(accuracy)


def test_resuming_another_checkpoints_results_is_refused(synthetic_root, random_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    args = ["--root", str(synthetic_root), "--output", str(out), "--tasks", "m-old-format", "--protocol", "majority"]
    assert _run("--checkpoint", str(random_checkpoint), *args).exit_code == 0
    other = save_checkpoint(build("tiny", modalities=("sar", "lores"), channels={"lores": 13}), tmp_path / "other")
    result = _run("--checkpoint", str(other), *args)
    assert result.exit_code == 1 and "pass --overwrite" in result.stderr
    assert _run("--checkpoint", str(other), *args, "--overwrite").exit_code == 0


def test_compare_aggregate_normalises_with_the_roots_normalizer(tmp_path):
    def document(values):
        runs = [
            {"task": t, "protocol": "linear", "partition": "default", "seed": 0, "kind": "classification",
             "metrics": {"accuracy": v}, "replicates": {"accuracy": [v - 0.01, v + 0.01]}}
            for t, v in values.items()
        ]  # fmt: skip
        tasks = {t: {"linear": {"accuracy": v}} for t, v in values.items()}
        return {"checkpoint": "c", "partition": "default", "tasks": tasks, "runs": runs, "skipped": {}, "failed": {}}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(document({"m-eurosat": 0.9, "m-brick-kiln": 0.95, "m-other": 0.5})))
    b.write_text(json.dumps(document({"m-eurosat": 0.8, "m-brick-kiln": 0.9, "m-other": 0.5})))
    root = tmp_path / "geobench"
    (root / "classification_v1.0").mkdir(parents=True)
    (root / "classification_v1.0" / "normalizer.json").write_text(
        json.dumps({"m-eurosat": [0.5, 1.0], "m-brick-kiln": [0.8, 1.0]})
    )
    result = _run("--compare", str(a), str(b), "--aggregate", "--root", str(root))
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("| linear |"))
    # a: eurosat (0.9-0.5)/0.5 = 0.8, brick (0.95-0.8)/0.2 = 0.75 -> IQM of two values = 0.775
    assert row.split("|")[2].strip().startswith("0.775 [") and "(2 tasks)" in row
    assert row.split("|")[3].strip().startswith("0.550 [")
    assert "left out (not in normalizer.json): m-other" in result.stdout
    raw = _run("--compare", str(a), "--aggregate", "--root", str(tmp_path / "none"))
    # Raw: the IQM of 0.5, 0.9 and 0.95 (a quarter of three values trims none) = their mean.
    assert "raw scores" in raw.stdout and "| linear | 0.783 [" in raw.stdout


def test_compare_table(synthetic_root, random_checkpoint, tmp_path):
    paths = []
    for name, protocol in (("alibi", "knn"), ("scale-alibi", "knn,linear")):
        path = tmp_path / f"{name}.json"
        assert (
            _run(
                "--checkpoint",
                str(random_checkpoint),
                "--root",
                str(synthetic_root),
                "--output",
                str(path),
                "--tasks",
                "m-old-format",
                "--protocol",
                protocol,
            ).exit_code
            == 0
        )
        paths.append(str(path))
    result = _run("--compare", *paths)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "| task | protocol | metric | alibi | scale-alibi |"
    assert any(line.startswith("| m-old-format | knn | accuracy | ") for line in lines)
    linear = next(line for line in lines if line.startswith("| m-old-format | linear | accuracy |"))
    assert linear.split("|")[4].strip() == "–"  # not run in the first file


@pytest.mark.parametrize(
    "args,message",
    [
        (["--root", "/nonexistent/geobench"], "GEO-Bench root /nonexistent/geobench does not exist"),
        (["--tasks", "m-nope"], "unknown GEO-Bench task(s) m-nope"),
    ],
)
def test_user_errors_are_one_line(synthetic_root, random_checkpoint, tmp_path, args, message):
    base = ["--checkpoint", str(random_checkpoint), "--root", str(synthetic_root), "--output", str(tmp_path / "r.json")]
    result = _run(*base, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_existing_output_is_not_overwritten_without_consent(synthetic_root, random_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("{}")
    result = _run("--checkpoint", str(random_checkpoint), "--root", str(synthetic_root), "--output", str(out))
    assert result.exit_code == 1 and "pass --overwrite" in result.stderr
    assert out.read_text() == "{}"


@pytest.mark.parametrize("args", [[], ["--checkpoint", "x", "--protocol", "knn,svm"], ["a.json"], ["--compare"]])
def test_usage_errors_exit_2(args):
    assert _run(*args).exit_code == 2


def test_compare_of_a_non_results_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    result = _run("--compare", str(bad))
    assert result.exit_code == 1 and 'no "tasks" object' in result.stderr


def test_compare_needs_no_checkpoint(tmp_path):
    # --compare reads JSON only: no checkpoint, no root.
    a = tmp_path / "a.json"
    a.write_text(
        json.dumps(
            {
                "checkpoint": "c",
                "partition": "default",
                "tasks": {"t": {"knn": {"accuracy": 0.5}}},
                "skipped": {},
                "failed": {},
            }
        )
    )
    result = _run("--compare", str(a))
    assert result.exit_code == 0 and "| t | knn | accuracy | 0.500 |" in result.stdout


def test_results_json_is_strict(tmp_path):
    from salibi.eval.output.report import markdown_table
    from salibi.eval.output.results import write_results

    results = {
        "checkpoint": "c",
        "partition": "default",
        "skipped": {},
        "failed": {},
        "tasks": {"t": {"seg": {"miou": float("nan"), "miou_std": 0.0}}},
    }
    path = write_results(results, tmp_path / "r.json")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))["tasks"]["t"]["seg"]["miou"] is None
    assert "| t | seg | miou | n/a |" in markdown_table(results)


def test_option_defaults_are_the_settings_defaults():
    """Every option of a GeoBenchSettings field defaults to the field's default (shared options included)."""
    import dataclasses

    from salibi.cli.eval import geobench
    from salibi.eval.settings import GeoBenchSettings

    options = {p.name: p.default for p in geobench.params}
    defaults = GeoBenchSettings()
    for field in dataclasses.fields(GeoBenchSettings):
        if field.name == "protocol_settings":  # library-only: every protocol parameter at once
            assert field.name not in options
            continue
        expected = getattr(defaults, field.name)
        found = tuple(options[field.name].split(",")) if field.name == "protocols" else options[field.name]
        assert found == expected, field.name
