"""``salibi eval geobench`` end to end: files written, tables, skips, failures, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from salibi.cli import cli
from salibi.models import build, save_checkpoint

from .conftest import REAL


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
    assert set(document) == {"checkpoint", "partition", "tasks", "skipped", "failed"}
    assert document["checkpoint"] == str(random_checkpoint) and document["partition"] == "default"
    assert document["skipped"] == {} and document["failed"] == {}
    tasks = document["tasks"]
    assert set(tasks) == {"m-tiny-s2", "m-tiny-multilabel", "m-tiny-seg", "m-dangling", "m-old-format"}
    assert set(tasks["m-tiny-s2"]) == {"knn", "linear", "majority"}
    assert set(tasks["m-tiny-seg"]) == {"seg", "majority"}
    assert set(tasks["m-tiny-seg"]["majority"]) == {"miou", "miou_std", "pixel_accuracy", "pixel_accuracy_std"}
    assert set(tasks["m-tiny-s2"]["knn"]) == {"accuracy", "accuracy_std"}
    assert set(tasks["m-tiny-multilabel"]["linear"]) == {"f1_macro", "f1_macro_std"}
    assert set(tasks["m-tiny-seg"]["seg"]) == {"miou", "miou_std", "pixel_accuracy", "pixel_accuracy_std"}
    # The tasks carry a signal, so a frozen random encoder does far better than chance.
    assert tasks["m-tiny-s2"]["knn"]["accuracy"] > 0.6 and tasks["m-tiny-s2"]["linear"]["accuracy"] > 0.6
    assert tasks["m-tiny-multilabel"]["knn"]["f1_macro"] > 0.5
    assert tasks["m-tiny-seg"]["seg"]["miou"] > 0.5 and tasks["m-dangling"]["seg"]["miou"] > 0.5
    # ... and than the majority-class reference reported beside them.
    assert tasks["m-tiny-s2"]["knn"]["accuracy"] > tasks["m-tiny-s2"]["majority"]["accuracy"]
    assert tasks["m-tiny-seg"]["seg"]["miou"] > tasks["m-tiny-seg"]["majority"]["miou"]
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| m-tiny-s2 | knn | accuracy |" in result.stdout
    assert not list(out.parent.glob(".*.tmp"))  # no temporary files left behind


def test_seeds_give_mean_and_std(synthetic_root, random_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    result = _run(
        "--checkpoint",
        str(random_checkpoint),
        "--root",
        str(synthetic_root),
        "--output",
        str(out),
        "--tasks",
        "m-tiny-seg",
        "--seeds",
        "3",
    )
    assert result.exit_code == 0, result.output
    seg = json.loads(out.read_text())["tasks"]["m-tiny-seg"]["seg"]
    # Heads trained from three seeds differ a little.
    assert 0 < seg["miou"] <= 1 and seg["miou_std"] > 0
    assert f"{seg['miou']:.3f} ± {seg['miou_std']:.3f}" in result.stdout


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


def test_missing_task_specs_fails_that_task(random_checkpoint, tmp_path):
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
    assert (
        "task_specs.pkl is missing"
        in json.loads((tmp_path / "r.json").read_text())["failed"]["cvpr_chesapeake_landcover"]
    )


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


def test_real_eurosat_end_to_end(random_checkpoint, tmp_path):
    out = tmp_path / "eurosat.json"
    result = _run(
        "--checkpoint",
        str(random_checkpoint),
        "--output",
        str(out),
        "--protocol",
        "knn,linear",
        env={"GEO_BENCH_DIR": str(REAL)},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert set(document["tasks"]) == {"m-eurosat"}
    # train = valid = test in these five samples: a nearest-neighbour vote recalls them.
    assert document["tasks"]["m-eurosat"]["knn"]["accuracy"] == 1.0


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
    from salibi.eval.report import markdown_table, write_results

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
