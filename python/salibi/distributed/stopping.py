"""Stopping a run without losing what it finished: Ctrl-C, SIGTERM, preemption, a dead launcher.

A stop is a request, answered at the end of the current step: every rank agrees on the step
(:meth:`salibi.distributed.ranks.Rank.max_over_ranks`), saves, and exits. What may send it:

- a terminal's Ctrl-C (SIGINT to the whole process group), ``kill -TERM -PGID``, SLURM's
  preemption and ``scancel``: every process gets the signal, launcher and ranks alike;
- a signal to one process only: the launcher, or one rank;
- the death of the launcher (``kill -9``): its ranks get SIGTERM (``PR_SET_PDEATHSIG``).

So the same request can arrive twice (from the terminal and again from a launcher), and must not
count twice. :class:`StopRequest` (in each rank) therefore takes any number of SIGINT/SIGTERM as
one request; only a process that trains alone, with no launcher that could repeat a signal,
takes a *second* Ctrl-C as "stop at once". :class:`StopRelay` (in the process that started the
ranks) does not forward signals: it writes a stop file that every rank checks after each step
(so ranks that had not yet installed their handlers stop too), kills the ranks if they have not
saved and exited ``grace`` seconds later, and kills them at once on a second Ctrl-C.

DataLoader workers never take SIGINT or SIGTERM: they start with both blocked
(:func:`stop_signals_held`) and ignore them (:func:`ignore_stop_signals`): a stop is their
rank's to make, and a worker killed by the signal would take its rank down mid-step.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STOP_FILE = "stop"


class StopRequest:
    """This process's stop request: SIGINT/SIGTERM (any number of them: one request), or the stop
    file of the :class:`StopRelay` that started it. ``escalate``: a second SIGINT raises
    KeyboardInterrupt at once (only for a process training alone, see the module docstring)."""

    def __init__(self, escalate: bool = False, stop_file: str | os.PathLike[str] | None = None) -> None:
        self.signal_name: str | None = None
        self.escalate = escalate
        self.stop_file = Path(stop_file) if stop_file is not None else None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            if self.escalate and signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signal_name = signal.Signals(signum).name

    def code(self) -> int:
        """The signal number of the request (0: none), to agree on over the ranks."""
        if not self.requested():
            return 0
        name = (self.signal_name or "").split()[0]
        return int(getattr(signal, name, signal.SIGTERM))

    def agree(self, code: int) -> bool:
        """Take the ranks' agreed ``code`` (:meth:`code`'s maximum over them): whether to stop."""
        if code and not self.requested():  # asked of another rank (the relay's file may be here now)
            self.signal_name = f"{signal.Signals(code).name} (to another rank)"
        return code > 0

    def requested(self) -> bool:
        """Whether a stop was asked for, by a signal or by the relay's stop file."""
        if self.signal_name is None and self.stop_file is not None and self.stop_file.exists():
            try:
                self.signal_name = self.stop_file.read_text(encoding="ascii").strip() or "SIGTERM"
            except OSError:
                self.signal_name = "SIGTERM"
        return self.signal_name is not None


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: the worker leaves SIGINT and SIGTERM to its rank."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (blocked) in this thread for the time of the block, then taken
    as usual: DataLoader workers started inside it inherit the blocked signals through fork and
    exec, so a stop sent to the process group while they start -- before their ``worker_init_fn``
    runs, during their seconds of importing torch under spawn -- cannot kill them (it did: "DataLoader
    worker is killed by signal: Interrupt", a traceback beside a saved run). A signal that arrives
    meanwhile reaches this process when the block ends."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when the process that started it dies (so the
    ranks of a killed launcher save and exit instead of training on as orphans). Elsewhere: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG


class StopRelay:
    """In the process that starts the ranks, for the time they run: takes SIGINT/SIGTERM, writes
    the stop file the ranks check after each step, and kills the ranks (SIGKILL) if they are still
    running ``grace`` seconds after the first signal, or at once on a second SIGINT.

    ``folder`` is a private folder the ranks share with it: the stop file, one ``rank<R>.pid``
    file per rank (so it knows whom to kill) and one ``rank<R>.error`` file per failed rank.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.folder = Path(tempfile.mkdtemp(prefix="salibi-ranks-"))
        self.signal_name: str | None = None
        #: why the ranks were killed: "grace" (not done ``grace`` s after the signal), "second SIGINT"
        self.killed: str | None = None
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}

    @property
    def stop_file(self) -> Path:
        return self.folder / _STOP_FILE

    def __enter__(self) -> StopRelay:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            with contextlib.suppress(OSError):
                self.stop_file.write_text(self.signal_name + "\n", encoding="ascii")
            self._timer = threading.Timer(self.grace, self._kill_ranks, args=("grace",))
            self._timer.daemon = True
            self._timer.start()
        elif signum == signal.SIGINT:
            self._kill_ranks("second SIGINT")

    def _kill_ranks(self, why: str) -> None:
        """SIGKILL every rank that has not finished (:func:`rank_finished`). A finished rank waits
        in torch's wrapper for the launcher to collect its result; killing it there would leave
        the launcher waiting for it forever, so its lock on its pid file keeps it alive."""
        import fcntl

        for pid_file in self.folder.glob("rank*.pid"):
            try:
                fd = os.open(pid_file, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while killing: the rank cannot finish now
                pid = int(os.pread(fd, 32, 0).decode("ascii"))
                self.killed = self.killed or why
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass  # finished (it holds the lock), or already gone
            finally:
                os.close(fd)

    def ranks(self) -> list[int]:
        """The ranks that registered (started far enough to install their stop handler)."""
        return sorted(int(p.stem[4:]) for p in self.folder.glob("rank*.pid") if p.stem[4:].isdigit())

    def rank_errors(self) -> dict[int, tuple[str, str]]:
        """``(kind, message)`` each failed rank left (:func:`report_rank_error`), by rank."""
        errors = {}
        for path in sorted(self.folder.glob("rank*.error")):
            with contextlib.suppress(OSError, ValueError):
                kind, _, message = path.read_text(encoding="utf-8").partition(" ")
                errors[int(path.stem[4:])] = (kind, message.strip())
        return errors


def register_rank(folder: str | os.PathLike[str], rank: int) -> int:
    """Tell the relay in ``folder`` this rank's process id; the open file, for :func:`rank_finished`."""
    fd = os.open(Path(folder) / f"rank{rank}.pid", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, str(os.getpid()).encode("ascii"))
    return fd


def rank_finished(fd: int) -> None:
    """Mark this rank finished (its result about to be returned): lock its pid file until the
    process exits, so the relay no longer kills it. Waits while the relay is killing it."""
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)


def report_rank_error(folder: str | os.PathLike[str], rank: int, kind: str, message: str) -> None:
    """Leave a failed rank's one-line message for the relay in ``folder``. ``kind``: "salibi" (a
    user error, to be said as is), "peer" (a collective failed because another rank died) or
    "bug" (the rank printed its traceback)."""
    with contextlib.suppress(OSError):
        text = f"{kind} {' '.join(message.split())}\n"
        (Path(folder) / f"rank{rank}.error").write_text(text, encoding="utf-8")
