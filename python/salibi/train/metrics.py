"""What a run reports, on rank 0 only: ``metrics.jsonl``, TensorBoard, and the console.

Every ``log_every`` steps (and at the last step) one JSON object goes to ``metrics.jsonl``:
``step``, the losses, ``lr``, ``grad_norm``, ``epoch`` and ``samples_per_s`` (over the steps
since the previous record); with ``--log tensorboard`` the same scalars go to ``tensorboard/``.
The console shows :class:`salibi.progress.RateProgress`: a bar with the latest losses on a
terminal, else one line per record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from salibi.fileio import write_atomic
from salibi.progress import RateProgress
from salibi.runs import METRICS_JSONL

#: The scalars written to TensorBoard (as ``train/<name>``).
TENSORBOARD_SCALARS = ("loss", "contrastive", "reconstruction", "lr", "grad_norm", "samples_per_s")


class MetricsLog:
    """Rank 0's record of a run from ``start_step`` to ``total_steps``; does nothing where
    ``active`` is false (the other ranks). ``last``: the newest record."""

    def __init__(
        self,
        run: Path,
        total_steps: int,
        start_step: int,
        log_every: int,
        tensorboard: bool,
        progress: bool,
        active: bool,
    ) -> None:
        self.active, self.total_steps, self.log_every = active, total_steps, log_every
        self.last: dict[str, Any] = {}
        self.window_start, self.window_samples = time.perf_counter(), 0
        self.writer: Any = None
        self.progress: RateProgress | None = None
        if not active:
            return
        run.mkdir(parents=True, exist_ok=True)
        self.path = run / METRICS_JSONL
        truncate_metrics(self.path, start_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=start_step + 1)
        self.progress = RateProgress(
            "step", "steps", total_steps, enabled=progress, plain_every=None, completed=start_step
        )

    def step(self, step: int, values: dict[str, float], samples: int) -> None:
        """Count one optimizer step of ``samples`` samples; record ``values`` when it is due."""
        if not self.active:
            return
        self.window_samples += samples
        if step % self.log_every and step != self.total_steps:
            if self.progress is not None:
                self.progress.advance(1)
            return
        elapsed = time.perf_counter() - self.window_start
        record = {
            "step": step,
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()},
            "samples_per_s": round(self.window_samples / max(elapsed, 1e-9), 2),
        }
        self.window_start, self.window_samples = time.perf_counter(), 0
        self.last = record
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in TENSORBOARD_SCALARS:
                self.writer.add_scalar(f"train/{key}", record[key], step)
        if self.progress is not None:
            self.progress.advance(1, status=console_status(record))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.writer is not None:
            self.writer.close()


def console_status(record: dict[str, Any]) -> str:
    """The losses and throughput of one record, as the console shows them."""
    return (
        f"loss {record['loss']:.4f}  contrastive {record['contrastive']:.4f}  "
        f"reconstruction {record['reconstruction']:.4f}  {record['samples_per_s']:.1f} samples/s"
    )


def truncate_metrics(path: Path, start_step: int) -> None:
    """On resume, drop the records of steps after the checkpoint (the interrupted run logged
    them, the resumed run logs them again), and a last line a killed run left half-written."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # cut short by a kill or a full disk
        if isinstance(record, dict) and record.get("step", 0) <= start_step:
            kept.append(line)
    write_atomic(path, "".join(line + "\n" for line in kept))
