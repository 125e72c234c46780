"""What tests in several folders share: where things are, the installed command, reading a run.

Fixtures live in conftest.py files; plain helpers live here (a module of its own name: ``from
conftest import`` finds whichever conftest.py was imported last).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
#: Real data that may be read in place but never copied into the project (see data/README.md).
SHARED = REPO.parent / "shared"
#: The installed command: tests run it in fresh processes where ranks, signals or exit codes matter.
SALIBI = str(Path(sys.executable).with_name("salibi"))
#: How long a test waits for a process before it gives up on it: tests wait on events (a line, a
#: file, an exit), never on a clock; this ceiling only keeps a hung process from hanging the suite.
LAST_RESORT = 1800
#: The environment of the commands tests start: one thread per process keeps multi-process runs
#: quick on a shared 2-core machine; warnings shown as they would be to a user.
COMMAND_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}


def run_salibi(
    *args: str, env: dict[str, str] | None = None, check: bool = False, **options: Any
) -> subprocess.CompletedProcess:
    """``salibi ARGS`` in a fresh process, to its end (``check``: fail the test on a non-zero exit,
    showing what it said)."""
    options.setdefault("timeout", LAST_RESORT)
    result = subprocess.run([SALIBI, *args], capture_output=True, text=True, env=env or COMMAND_ENV, **options)
    if check and result.returncode != 0:
        raise AssertionError(f"salibi {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def run_in_process(*args: str) -> subprocess.CompletedProcess:
    """``salibi ARGS`` in this process, as :func:`run_salibi` reports it (exit status, stdout,
    stderr): a start-up of torch fewer where the process itself is not under test (a command run
    again after a kill, on a full disk). An exception the command lets through fails the test; the
    SIGINT/SIGTERM handlers a pretraining run installs are put back."""
    import signal

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = invoke(*args)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["salibi", *args], result.exit_code, result.stdout, result.stderr)


def invoke(*args: str) -> Any:
    """``salibi ARGS`` in this process (click's test runner): quick, for options and bad input."""
    from click.testing import CliRunner

    from salibi.cli import cli

    return CliRunner().invoke(cli, list(args))


def metrics(run: Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (none before it exists; a line still being
    written by a running process is left out)."""
    from salibi.runs import METRICS_JSONL

    path = Path(run) / METRICS_JSONL
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    return [json.loads(line) for line in lines[:-1]]  # the last item: "" or a line not yet ended
