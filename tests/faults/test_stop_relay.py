"""Defect 6 and the stop protocol's edges, with stand-in ranks (no torch): the launcher gives its
ranks ``--stop-grace`` seconds after the first signal (torch's agent gave 30, then SIGKILL), kills
at once on a second Ctrl-C, and never kills a rank that has finished (it waits for its result to
be collected: killing it there hangs the launcher)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers import COMMAND_ENV, LAST_RESORT

SCRIPT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from salibi.distributed.stopping import StopRelay

    grace, signals = float(sys.argv[1]), sys.argv[2].split(",")
    RANK = (
        "import signal, sys, time; from salibi.distributed.stopping import register_rank, rank_finished; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "fd = register_rank(sys.argv[1], int(sys.argv[2])); "
        "rank_finished(fd) if sys.argv[3] == 'finished' else None; "
        "open(sys.argv[1] + '/rank' + sys.argv[2] + '.ready', 'w').close(); time.sleep(600)"
    )
    with StopRelay(grace) as relay:
        ranks = [
            subprocess.Popen([sys.executable, "-c", RANK, str(relay.folder), str(r), state])
            for r, state in enumerate(("training", "finished"))
        ]
        while len(list(relay.folder.glob("rank*.ready"))) < 2:  # registered, the finished one locked
            time.sleep(0.05)
        started = time.monotonic()
        for name in signals:
            os.kill(os.getpid(), getattr(signal, name))
            time.sleep(0.2)
        ranks[0].wait()
        print(round(time.monotonic() - started, 1), ranks[0].poll(), ranks[1].poll(), relay.killed,
              relay.stop_file.read_text().strip(), sep="|")
        ranks[1].kill()
    """
)


def _relay(grace: float, signals: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(grace), signals],
        capture_output=True,
        text=True,
        env=COMMAND_ENV,
        timeout=LAST_RESORT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split("|")


def test_ranks_get_the_grace_period_then_are_killed_but_not_a_finished_one():
    elapsed, training, finished, why, signal_name = _relay(2.0, "SIGTERM")
    assert training == "-9" and finished == "None"  # the finished rank is left alone
    assert why == "grace" and signal_name == "SIGTERM"  # killed by the relay's timer, not torch's fixed 30 s
    assert float(elapsed) >= 1.9  # the grace given


@pytest.mark.parametrize("signals", ["SIGINT,SIGINT", "SIGTERM,SIGINT"])
def test_a_second_ctrl_c_kills_the_training_ranks_at_once(signals):
    elapsed, training, finished, why, signal_name = _relay(120.0, signals)
    assert training == "-9" and finished == "None" and why == "second SIGINT"
    assert float(elapsed) < 120 and signal_name == signals.split(",")[0]  # not after the grace


def test_repeated_sigterm_is_one_request():
    """SLURM and a process group may deliver SIGTERM more than once: no escalation."""
    elapsed, training, finished, why, signal_name = _relay(2.0, "SIGTERM,SIGTERM,SIGTERM")
    assert why == "grace" and float(elapsed) >= 1.9
