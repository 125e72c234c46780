"""``salibi eval geobench --baseline random-init``: the run's own initial weights beside its
checkpoint, on the same test samples, with the paired difference."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from salibi.cli import cli
from salibi.eval.geobench.sample_tasks import write_shipped_tasks
from salibi.models import save_checkpoint
from salibi.runs import step_name, write_last
from salibi.train import PretrainConfig
from salibi.train.initial_weights import initial_model, record_initial_weights

pytestmark = pytest.mark.slow

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    return write_shipped_tasks(tmp_path_factory.mktemp("tasks"))


def _run_folder(folder, seed: int):
    """A run folder as salibi pretrain leaves it: run.json, the initial-weight record, and a
    checkpoint whose weights moved away from the initial ones."""
    config = PretrainConfig(data=[], out=str(folder), model="tiny", variant="scale-alibi", seed=seed)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"format": "salibi-run", "config": {"seed": seed}}))
    record_initial_weights(folder, initial_model(config, ("sar", "lores"), {"sar": 2, "lores": 6}, 10.0), seed, "x")
    model = initial_model(config, ("sar", "lores"), {"sar": 2, "lores": 6}, 10.0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)
    save_checkpoint(
        model,
        folder / "checkpoints" / step_name(10),
        bands={"sar": ["VV", "VH"], "lores": BANDS},
        gsd={"sar": 10.0, "lores": 10.0},
        mean={"sar": [0.0, 0.0], "lores": [100.0] * 6},
        std={"sar": [1.0, 1.0], "lores": [50.0] * 6},
    )
    write_last(folder, step_name(10))
    return folder


def _evaluate(run, tasks, output):
    args = ["eval", "geobench", "--checkpoint", str(run), "--root", str(tasks), "--tasks", "raleigh-landcover"]
    args += ["--protocol", "knn,majority", "--output", str(output), "--device", "cpu", "--baseline", "random-init"]
    return CliRunner().invoke(cli, args)


def test_baseline_is_the_runs_initial_weights_beside_the_checkpoint(tasks, tmp_path):
    run = _run_folder(tmp_path / "run", seed=2)
    result = _evaluate(run, tasks, tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert "random init: the initial weights of the run" in result.output and "seed 2" in result.output
    trained = json.loads((tmp_path / "out.json").read_text())
    untrained = json.loads((tmp_path / "out.random-init.json").read_text())
    assert untrained["checkpoint"] == f"{trained['checkpoint']} (random-init)"
    mine = trained["tasks"]["raleigh-landcover"]["knn"]["accuracy"]
    theirs = untrained["tasks"]["raleigh-landcover"]["knn"]["accuracy"]
    rows = [line for line in result.output.splitlines() if line.startswith("| raleigh-landcover | knn |")]
    row = rows[-1]  # the comparison table (the checkpoint's own table comes first)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == f"{mine:.3f}" and cells[5] == f"{theirs:.3f}" and cells[7] == f"{mine - theirs:+.3f}"
    assert cells[9] == f"{trained['tasks']['raleigh-landcover']['majority']['accuracy']:.3f}"  # chance
    assert "raleigh-landcover knn: " in result.output


def test_a_run_whose_weights_do_not_reproduce_its_record_is_refused(tasks, tmp_path):
    run = _run_folder(tmp_path / "run", seed=2)
    (run / "run.json").write_text(json.dumps({"format": "salibi-run", "config": {"seed": 3}}))  # not its seed
    result = _evaluate(run, tasks, tmp_path / "out.json")
    assert result.exit_code == 1
    assert "does not reproduce the run's recorded initial weights" in result.output
