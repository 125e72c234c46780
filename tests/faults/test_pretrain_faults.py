"""The kill matrix of ``salibi pretrain``: what was finished survives, and the same command continues.

One run folder, one command for every launch (``--resume`` starts a fresh folder too, as the SLURM
recipe relies on). Each launch is killed -- SIGKILL of the launcher (its ranks save and exit by
themselves) or of one rank (the job fails in one line naming the newest complete checkpoint) --
and must leave a complete checkpoint at least as new as the last step it saved; the last launch
runs to the end, with every step logged once and the loss curve of an uninterrupted run.
Stops (SIGINT and SIGTERM to the group, the launcher or one rank, with 1 or 2 ranks, 0 to 2
DataLoader workers, salibi's launcher or torchrun) are the stop matrix: test_stop_matrix.py.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from helpers import metrics, run_in_process, run_salibi

from .conftest import SIGNALS, checkpoint_steps, one_error_line, send, start_salibi, wait_for_step, wait_gone

pytestmark = pytest.mark.slow

STEPS = 24
COMMON = ["--batch-size", "4", "--log-every", "1", "--save-every", "2", "--max-steps", str(STEPS), "--quiet"]
#: Two ranks with a DataLoader worker each: the kills, in order; the run then goes to the end.
KILLS = [("SIGKILL", "launcher"), ("SIGKILL", "rank 1")]


@pytest.fixture(scope="module")
def uninterrupted(aligned_set, tmp_path_factory) -> list[dict]:
    run = tmp_path_factory.mktemp("reference") / "run"
    result = run_in_process("pretrain", str(aligned_set), "--out", str(run), *COMMON)
    assert result.returncode == 0, result.stderr
    return metrics(run)


def test_every_kill_keeps_what_was_finished_and_the_same_command_continues(aligned_set, uninterrupted, tmp_path):
    run = tmp_path / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), *COMMON, "--cpu-procs", "2", "--num-workers", "1"]
    command.append("--resume")
    saved = 0
    for name, target in KILLS:
        step = _interrupt(command, run, SIGNALS[name], target, after=saved + 2)
        assert step > saved, f"{name} to the {target}: no progress kept (newest checkpoint {step}, before {saved})"
        saved = step
    result = run_salibi(*command)
    assert result.returncode == 0, result.stderr
    assert f"trained {STEPS}/{STEPS} steps" in result.stdout
    records = metrics(run)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # each step once
    for ours, theirs in zip(records, uninterrupted):
        for key in ("loss", "contrastive", "reconstruction", "lr"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-4), (ours["step"], key)


def _interrupt(command: list[str], run: Path, signum: int, target: str, after: int) -> int:
    """Start ``command``, send ``signum`` to ``target`` once step ``after`` is logged, check what
    the kill must leave, and return the newest complete checkpoint's step."""
    from salibi.models import load_checkpoint

    process = start_salibi(*command)
    wait_for_step(process, run, after)
    ranks = send(process, signum, target)
    what = f"{signal.Signals(signum).name} to the {target}"
    if target == "launcher":
        process.wait()
        wait_gone(ranks)  # the ranks of a killed launcher save and exit by themselves
    else:  # a rank killed: the job fails, in one line naming what is left
        out, err = process.communicate()
        assert process.returncode == 1, (what, out, err)
        line = one_error_line(err)
        assert f"rank {target.split()[1]} was killed" in line and "newest complete checkpoint" in line, line
    steps = checkpoint_steps(run)
    assert steps, f"{what}: no checkpoint"
    newest = max(steps)
    load_checkpoint(run / "checkpoints" / f"step_{newest:07d}")  # complete
    if target == "launcher":
        assert newest == max(r["step"] for r in metrics(run)), f"{what}: the step finished was not saved"
    return newest


def test_the_ranks_of_a_killed_launcher_refuse_a_second_run_until_they_have_saved(aligned_set, tmp_path):
    """While the ranks of a killed launcher finish their checkpoint, the same command is refused
    (rank 0 holds the run's lock) instead of training into the same folder at the same time."""
    run = tmp_path / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), *COMMON, "--cpu-procs", "2", "--resume"]
    process = start_salibi(*command)
    wait_for_step(process, run, 2)
    ranks = send(process, signal.SIGSTOP, "rank 0")  # rank 0 holds the lock and cannot save yet
    process.kill()
    process.wait()
    again = run_salibi(*command)
    assert again.returncode == 1 and "another salibi pretrain" in one_error_line(again.stderr)
    for pid in ranks:
        subprocess.run(["kill", "-CONT", str(pid)], check=False)
    wait_gone(ranks)
    assert checkpoint_steps(run)
