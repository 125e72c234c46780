"""The fault matrix of ``salibi pretrain``: what was finished survives, and the same command continues.

One run folder per chain, one command for every launch (``--resume`` starts a fresh folder too, as
the SLURM recipe relies on). Each launch is interrupted -- SIGINT or SIGTERM to the process group (a
terminal's Ctrl-C, ``kill -TERM -PGID``, SLURM), to the launcher or to one rank; SIGKILL of the
launcher or of one rank -- and must leave a complete checkpoint at least as new as the last step it
saved; the last launch runs to the end, with every step logged once and the loss curve of an
uninterrupted run. Chains differ in DataLoader workers (defect 2: a worker killed by the group's
SIGTERM took its rank down).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SIGNALS, checkpoint_steps, metrics, one_error_line, run_salibi, send, start_salibi, wait_gone

pytestmark = pytest.mark.slow

STEPS = 60
COMMON = ["--batch-size", "4", "--log-every", "1", "--save-every", "2", "--max-steps", str(STEPS), "--quiet"]

# (signal, target) per launch, in order; every chain then runs to the end.
CHAINS = {
    "two-ranks-with-workers": (
        ["--cpu-procs", "2", "--num-workers", "1"],
        [
            ("SIGTERM", "group"),
            ("SIGINT", "rank 1"),
            ("SIGTERM", "rank 0"),
            ("SIGKILL", "launcher"),
            ("SIGKILL", "rank 1"),
        ],
    ),
    "one-process": (["--num-workers", "0"], [("SIGINT", "group"), ("SIGTERM", "group")]),
}
# Also here: SIGINT to a two-rank group without workers, SIGTERM to a process with workers
# (test_a_signal_to_the_process_group_...); SIGTERM to the launcher alone: tests/train/test_pretrain.py.


@pytest.fixture(scope="module")
def uninterrupted(aligned_set, tmp_path_factory) -> list[dict]:
    run = tmp_path_factory.mktemp("reference") / "run"
    result = run_salibi("pretrain", str(aligned_set), "--out", str(run), *COMMON)
    assert result.returncode == 0, result.stderr
    return metrics(run)


@pytest.mark.parametrize("chain", list(CHAINS))
def test_every_interruption_keeps_what_was_finished_and_the_same_command_continues(
    chain, aligned_set, uninterrupted, tmp_path
):
    options, interruptions = CHAINS[chain]
    run = tmp_path / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), *COMMON, *options, "--resume"]
    saved = 0
    for name, target in interruptions:
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
    the interruption must leave, and return the newest complete checkpoint's step."""
    from salibi.models import load_checkpoint

    process = start_salibi(*command)
    deadline = time.monotonic() + 300
    while not any(r["step"] >= after for r in metrics(run)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run did not reach the step"
        time.sleep(0.05)
    ranks = send(process, signum, target)
    what = f"{signal.Signals(signum).name} to the {target}"
    if signum == signal.SIGKILL and target == "launcher":
        process.wait(timeout=30)
        wait_gone(ranks)  # the ranks of a killed launcher save and exit by themselves
    else:
        try:
            out, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(["ps", "-eo", "pid,ppid,stat,wchan:24,etime,args"], capture_output=True, text=True)
            process.kill()
            raise AssertionError(f"{what}: still running after 300 s\n{tree.stdout}") from None
        if signum == signal.SIGKILL:  # a rank killed: the job fails, in one line naming what is left
            assert process.returncode == 1, (what, out, err)
            line = one_error_line(err)
            assert f"rank {target.split()[1]} was killed" in line and "newest complete checkpoint" in line, line
        else:
            assert process.returncode == 0, (what, out, err)
            assert "stopped by SIG" in out and "continue with:" in out and "--resume" in out, (what, out)
            assert "Traceback" not in err and "killed by signal" not in err, (what, err)
    steps = checkpoint_steps(run)
    assert steps, f"{what}: no checkpoint"
    newest = max(steps)
    load_checkpoint(run / "checkpoints" / f"step_{newest:07d}")  # complete
    logged = max(r["step"] for r in metrics(run))
    if signum != signal.SIGKILL or target == "launcher":
        assert newest == logged, f"{what}: saved step {newest}, but step {logged} was finished"
    assert not list((run / "checkpoints").glob(".step_*")) or signum == signal.SIGKILL
    return newest


def test_the_ranks_of_a_killed_launcher_refuse_a_second_run_until_they_have_saved(aligned_set, tmp_path):
    """While the ranks of a killed launcher finish their checkpoint, the same command is refused
    (rank 0 holds the run's lock) instead of training into the same folder at the same time."""
    from .conftest import wait_for_step

    run = tmp_path / "run"
    command = ["pretrain", str(aligned_set), "--out", str(run), *COMMON, "--cpu-procs", "2", "--resume"]
    process = start_salibi(*command)
    wait_for_step(process, run, 2)
    ranks = send(process, signal.SIGSTOP, "rank 0")  # rank 0 holds the lock and cannot save yet
    process.kill()
    process.wait(timeout=30)
    again = run_salibi(*command)
    assert again.returncode == 1 and "another salibi pretrain" in one_error_line(again.stderr)
    for pid in ranks:
        subprocess.run(["kill", "-CONT", str(pid)], check=False)
    wait_gone(ranks)
    assert checkpoint_steps(run)


# -- the two defects behind the matrix, each in its most direct form ------------------------------


@pytest.mark.parametrize(
    "signum,options",
    [
        # Defect 1: the terminal's SIGINT and then the launcher's reached the ranks, and the second
        # aborted them mid-step: exit 0, "stopped by SIGINT after step 0", often no checkpoint.
        # (torch's agent forwarded at once, so the two often merged into one and the run survived:
        # the test sends the second itself, 0.2 s later.)
        (signal.SIGINT, ["--cpu-procs", "2"]),
        # Defect 2: the group's SIGTERM killed the DataLoader workers, and with them the run
        # ("DataLoader worker ... is killed by signal: Terminated", exit 1, no checkpoint).
        (signal.SIGTERM, ["--num-workers", "2"]),
    ],
    ids=["ctrl-c-two-ranks", "sigterm-dataloader-workers"],
)
def test_a_signal_to_the_process_group_saves_the_step_it_finished(signum, options, aligned_set, tmp_path):
    from .conftest import wait_for_step

    run = tmp_path / "run"
    process = start_salibi(
        "pretrain", str(aligned_set), "--out", str(run), "--batch-size", "4", "--log-every", "1", "--save-every",
        "1000", "--max-steps", "1000", "--quiet", *options,
    )  # fmt: skip
    wait_for_step(process, run, 3)
    ranks = send(process, signum, "group")
    if ranks:  # and again to each rank a moment later, as a launcher that forwards signals does
        time.sleep(0.2)
        for pid in ranks:
            os.kill(pid, signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    logged = max(r["step"] for r in metrics(run))
    assert f"stopped by {signal.Signals(signum).name} after step {logged}" in out, (out, err)
    assert checkpoint_steps(run) == [logged] and logged >= 3  # saved on the way out: no periodic save
