"""The stop matrix of ``salibi pretrain`` (:mod:`faults.stop_matrix`, docs/STOP_MATRIX.md): every way
a job is asked to stop saves the step it finished.

A combination is {SIGINT, SIGTERM} x {the process group, the launcher, one rank} x {1, 2 ranks} x
{0, 1, 2 DataLoader workers} x {salibi's own launcher (``--cpu-procs N``, as ``--gpus N``),
torchrun}. Each one starts a run, sends the signal once step 2 is logged, and requires:

- the checkpoint of the last step logged, complete (every file as its saver wrote it), and a
  stop message naming exactly that checkpoint (torchrun's own exit status aside: it re-raises
  the signal it was sent after its ranks have exited);
- the same command with ``--resume`` (on one process, no workers) ends on the loss curve of an
  uninterrupted run.

One step per epoch (``--batch-size 24`` of 25 chips) puts every stop next to an epoch boundary,
where the first defect lived: a rank that saw the stop between epochs left without saving.

CI runs :data:`CI_SUBSET` (every value of every factor at least once, four runs of 66);
``SALIBI_STOP_MATRIX=pairwise`` runs nine (every value of every factor beside every value of
every other), ``SALIBI_STOP_MATRIX=full`` all.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from helpers import metrics, run_in_process

from .conftest import checkpoint_steps, children, rank_pids, start_command, wait_for_step
from .stop_matrix import ALL, CI_SUBSET, DEFECT, FACTORS, PAIRWISE, STEPS, combo_id

pytestmark = pytest.mark.slow

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
COMMON = ["--batch-size", "24", "--log-every", "1", "--save-every", "1000", "--max-steps", str(STEPS), "--quiet"]

#: Which combinations run: CI's subset, the pairwise one or every one (SALIBI_STOP_MATRIX).
RUN = {"full": ALL, "pairwise": PAIRWISE}.get(os.environ.get("SALIBI_STOP_MATRIX", ""), CI_SUBSET)


@pytest.fixture(scope="module")
def uninterrupted(aligned_set, tmp_path_factory) -> list[dict]:
    run = tmp_path_factory.mktemp("reference") / "run"
    result = run_in_process("pretrain", str(aligned_set), "--out", str(run), *COMMON)
    assert result.returncode == 0, result.stderr
    return metrics(run)


def _command(launcher: str, ranks: int, workers: int, data: Path, run: Path) -> list[str]:
    pretrain = ["pretrain", str(data), "--out", str(run), *COMMON, "--num-workers", str(workers)]
    if launcher == "torchrun":
        return [
            TORCHRUN,
            "--standalone",
            f"--nproc-per-node={ranks}",
            "--monitor-interval=0.2",
            "-m",
            "salibi",
            *pretrain,
        ]
    return [str(Path(sys.executable).with_name("salibi")), *pretrain, "--cpu-procs", str(ranks)]


def _ranks(launcher: str, ranks: int, pid: int) -> list[int]:
    """The rank processes in rank order (torchrun starts them in order; salibi's one rank is itself)."""
    if launcher == "salibi":
        return rank_pids(pid) if ranks > 1 else [pid]
    found = []
    for child in children(pid):
        try:
            if b"salibi" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("combo", ALL, ids=[combo_id(c) for c in ALL])
def test_a_stop_saves_the_step_finished_names_it_and_resumes_exactly(combo, aligned_set, uninterrupted, tmp_path):
    if combo not in RUN:
        pytest.skip("beyond the subset CI runs; SALIBI_STOP_MATRIX=pairwise or full runs more")
    launcher, ranks, target, workers, name = combo
    run = tmp_path / "run"
    process = start_command(_command(launcher, ranks, workers, aligned_set, run))
    wait_for_step(process, run, 2)
    pids = _ranks(launcher, ranks, process.pid)
    assert len(pids) == ranks, f"found rank processes {pids} of {process.pid}"
    signum = getattr(signal, name)
    if target == "group":
        os.killpg(process.pid, signum)
        if launcher == "salibi" and ranks > 1:
            # And again to each rank, as a launcher that forwards signals does (torch's agent did:
            # defect 1). The pause only spaces the two out; merged or not, the run must save.
            time.sleep(0.2)
            for pid in pids:
                os.kill(pid, signum)
    elif target == "launcher":
        os.kill(process.pid, signum)
    else:
        os.kill(pids[-1], signum)  # the last rank: not the one that saves
    out, err = process.communicate(timeout=600)
    what = f"{name} to the {target} ({combo_id(combo)})"

    logged = max(r["step"] for r in metrics(run))
    saved = run / "checkpoints" / f"step_{logged:07d}"
    assert checkpoint_steps(run) == [logged], (what, checkpoint_steps(run), logged, out, err)
    from salibi.train.training_state import verify_saved

    assert verify_saved(saved) == logged
    message = re.search(r"stopped by (SIG\w+).* after step (\d+).*; checkpoint (\S+)", out)
    assert message, (what, out, err)
    assert int(message[2]) == logged and Path(message[3]) == saved, (what, out)
    assert "Traceback" not in err or launcher == "torchrun", (what, err)  # torchrun re-raises its signal
    if launcher == "salibi" or target == "rank":
        assert process.returncode == 0, (what, out, err)

    # The same command, in this process: one start-up fewer.
    resumed = run_in_process("pretrain", str(aligned_set), "--out", str(run), *COMMON, "--resume")
    assert resumed.returncode == 0 and f"trained {STEPS}/{STEPS} steps" in resumed.stdout, resumed.stdout
    records = metrics(run)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # each step once
    for ours, theirs in zip(records, uninterrupted):
        for key in ("loss", "contrastive", "reconstruction", "lr"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-4), (what, ours["step"], key)


def test_the_subsets_cover_every_value_and_every_pair_of_values():
    """CI's subset meets every value of each factor, the defect's combination among them; the
    pairwise subset meets every value of each factor beside every value of every other."""
    assert len(ALL) == 66 and set(CI_SUBSET) | set(PAIRWISE) <= set(ALL) and DEFECT in CI_SUBSET
    assert len(set(CI_SUBSET)) == len(CI_SUBSET) == 4 and len(set(PAIRWISE)) == len(PAIRWISE) == 9
    for i, values in enumerate(FACTORS.values()):
        assert {c[i] for c in CI_SUBSET} == set(values), list(FACTORS)[i]
    for i, j in itertools.combinations(range(len(FACTORS)), 2):
        assert {(c[i], c[j]) for c in ALL} == {(c[i], c[j]) for c in PAIRWISE}, list(FACTORS)[i : j + 1 : j - i]


def test_docs_stop_matrix_is_current():
    from helpers import REPO

    from .stop_matrix import markdown

    assert (REPO / "docs" / "STOP_MATRIX.md").read_text() == markdown(), (
        "docs/STOP_MATRIX.md is stale: python tests/faults/stop_matrix.py > docs/STOP_MATRIX.md"
    )
