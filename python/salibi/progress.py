"""One progress display for long jobs (align, embed, pretrain): a rich bar with a rate column on
a terminal, an occasional plain line otherwise (logs stay readable), or nothing."""

from __future__ import annotations

import sys
import time
from typing import Any


class RateProgress:
    """Counts ``unit`` items of ``total``. ``plain_every``: seconds between plain lines when
    stderr is not a terminal (None: print nothing there). ``transient``: the bar disappears
    when done (a summary line follows). ``completed``: items already done before this display
    started (a resumed job); the rate counts the new ones only."""

    def __init__(
        self,
        description: str,
        unit: str,
        total: int,
        enabled: bool = True,
        plain_every: float | None = 10.0,
        transient: bool = False,
        completed: int = 0,
    ) -> None:
        self.description, self.unit, self.total = description, unit, total
        self.enabled, self.plain_every, self.done, self.start = enabled, plain_every, completed, completed
        self.started = self.last_line = time.perf_counter()
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            self.bar = _rich_bar(unit, transient)
            self.task = self.bar.add_task(description, total=total, completed=completed, status="")
            self.bar.start()

    def advance(self, n: int = 1, status: str | None = None) -> None:
        """Count ``n`` more items. ``status``: a short text (the latest loss, say) shown after
        the bar; without a terminal it is printed at once as ``description done/total  status``."""
        if status is not None:
            self.done += n
            if self.bar is not None:
                self.bar.update(self.task, advance=n, status=status)
            elif self.enabled:
                print(f"{self.description} {self.done}/{self.total}  {status}", file=sys.stderr, flush=True)
            return
        if not n:
            return
        self.done += n
        if self.bar is not None:
            self.bar.advance(self.task, n)
        elif self.enabled and self.plain_every is not None:
            now = time.perf_counter()
            if now - self.last_line >= self.plain_every:
                self.last_line = now
                rate = (self.done - self.start) / max(now - self.started, 1e-9)
                print(
                    f"{self.description}: {self.done}/{self.total} {self.unit} ({rate:.1f} {self.unit}/s)",
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> RateProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rich_bar(unit: str, transient: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.1f} {unit}/s" if speed else f"… {unit}/s", style="progress.data.speed")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=Console(stderr=True),
        transient=transient,
    )
