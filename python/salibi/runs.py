"""A pretraining run folder: where its checkpoints are and which one is newest.

::

    runs/NAME/run.json  metrics.jsonl  initial_weights.json  checkpoints/step_0000200/  checkpoints/last

``checkpoints/last`` is a text file naming the newest checkpoint folder (a symbolic link
made by hand is read too). Used by :func:`salibi.models.resolve_checkpoint` and the trainer.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

from salibi.errors import DataFormatError, MissingInputError
from salibi.fileio import write_atomic

__all__ = [
    "INITIAL_WEIGHTS_JSON",
    "METRICS_JSONL",
    "RUN_JSON",
    "checkpoint_candidates",
    "checkpoints_dir",
    "newest_complete",
    "newest_complete_warning",
    "read_last",
    "step_checkpoints",
    "step_name",
    "step_of",
    "write_last",
]

_STEP_DIR = re.compile(r"^step_(\d+)$")
#: The files of a run folder: its description (salibi.train.run_plan), its metrics (salibi.train.metrics)
#: and the digests of its initial weights (salibi.train.initial_weights).
RUN_JSON = "run.json"
METRICS_JSONL = "metrics.jsonl"
INITIAL_WEIGHTS_JSON = "initial_weights.json"


def step_name(step: int) -> str:
    """The folder name of the checkpoint after ``step`` optimizer steps (``step_0000200``)."""
    return f"step_{step:07d}"


def step_of(path: str | os.PathLike[str]) -> int | None:
    """The step a checkpoint folder name says, else None."""
    match = _STEP_DIR.match(Path(path).name)
    return int(match[1]) if match else None


def checkpoints_dir(run: str | os.PathLike[str]) -> Path:
    return Path(run) / "checkpoints"


def step_checkpoints(run: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``step_*`` checkpoint folder of the run, oldest first."""
    folder = checkpoints_dir(run)
    if not folder.is_dir():
        return []
    found = [(step_of(child), child) for child in folder.iterdir() if child.is_dir()]
    return sorted((step, child) for step, child in found if step is not None)


def read_last(folder: str | os.PathLike[str]) -> str | None:
    """The name ``folder/last`` points at (text file or symbolic link), else None."""
    last = Path(folder) / "last"
    if last.is_symlink():
        return os.readlink(last).strip() or None
    if last.is_file():
        return last.read_text(encoding="utf-8").strip() or None
    return None


def write_last(run: str | os.PathLike[str], name: str) -> None:
    """Point ``checkpoints/last`` at ``name`` (atomically; a link made by hand is replaced)."""
    last = checkpoints_dir(run) / "last"
    if last.is_symlink():
        last.unlink()
    write_atomic(last, name + "\n")


def checkpoint_candidates(folder: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint folders in ``folder`` (a ``checkpoints/`` folder), newest first: the highest
    step first; a folder ``last`` names under another name than ``step_*`` comes before all."""
    folder = Path(folder)
    candidates = sorted((d for d in folder.iterdir() if d.is_dir() and step_of(d) is not None),
                        key=lambda d: step_of(d) or 0, reverse=True)  # fmt: skip
    name = read_last(folder)
    named = folder / name if name else None
    if named is not None and named.is_dir() and all(named.resolve() != d.resolve() for d in candidates):
        candidates.insert(0, named)  # a custom name: trust the pointer
    return candidates


def newest_complete(folder: str | os.PathLike[str], check: Callable[[Path], object],
                    skipped: list[tuple[Path, Exception]] | None = None) -> Path | None:  # fmt: skip
    """The first of :func:`checkpoint_candidates` for which ``check(path)`` raises nothing; the
    ones that raised are appended to ``skipped`` with their error."""
    for candidate in checkpoint_candidates(folder):
        try:
            check(candidate)
        except Exception as err:
            if skipped is not None:
                skipped.append((candidate, err))
            continue
        return candidate
    return None


def newest_complete_warning(
    folder: str | os.PathLike[str], check: Callable[[Path], object]
) -> tuple[Path | None, list[Path]]:
    """:func:`newest_complete` for a user's command: each newer checkpoint that ``check`` finds
    incomplete or damaged (:class:`DataFormatError`, :class:`MissingInputError`) is skipped with
    a :class:`UserWarning` naming it, at the caller's caller; any other error is raised. Returns
    the checkpoint found (None when all are incomplete) and the ones skipped."""
    skipped: list[tuple[Path, Exception]] = []
    found = newest_complete(folder, check, skipped)
    for candidate, err in skipped:
        if not isinstance(err, (DataFormatError, MissingInputError)):
            raise err
        warnings.warn(f"skipping incomplete checkpoint {candidate}: {err}", UserWarning, stacklevel=3)
    return found, [candidate for candidate, _ in skipped]
