"""A pretraining run on disk, and the training state that makes ``--resume`` exact.

::

    runs/NAME/
      run.json                     the run's settings (model, data, batch, schedule, seed)
      metrics.jsonl                one JSON object per logged step (rank 0 only)
      checkpoints/step_0000100/    model.safetensors + config.json (a salibi checkpoint)
                                   + trainer.safetensors + trainer.json (optimizer, RNG, data position)
      checkpoints/last             text file naming the newest complete checkpoint folder
      tensorboard/                 with --log tensorboard

Nothing here is pickled: tensors go to safetensors, everything else to JSON. Checkpoint
folders are written under a temporary name, flushed to disk and renamed when complete
(:func:`salibi.fileio.staging_dir`), so a crash leaves at most an ignored ``.step_*.tmp``
folder; a damaged newest checkpoint is skipped on resume. Folder names and ``last`` are
:mod:`salibi.runs`'s.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from salibi.errors import DataFormatError, MissingInputError, OutputExistsError
from salibi.fileio import file_digest, staging_dir
from salibi.runs import (
    checkpoints_dir,
    newest_complete,
    newest_complete_warning,
    read_last,
    step_checkpoints,
    step_name,
    write_last,
)
from salibi.vocabulary import TRAINER_FORMAT, TRAINER_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from salibi.distributed.ranks import Rank

__all__ = [
    "RunLock",
    "check_trainer_state",
    "checkpoints_dir",
    "describe_newest",
    "flatten_optimizer",
    "gather_rng_states",
    "load_trainer_state",
    "newest_resumable",
    "prune",
    "restore_rng_state",
    "save_training_checkpoint",
    "step_checkpoints",
    "step_name",
    "unflatten_optimizer",
    "verify_saved",
    "write_last",
]

TRAINER_TENSORS = "trainer.safetensors"
TRAINER_JSON = "trainer.json"
LOCK = ".lock"


class RunLock:
    """The one process that writes a run folder (rank 0) holds ``run/.lock`` (``flock``) while it
    lives, so a second ``salibi pretrain --out`` the same folder -- or the same command run again
    while the ranks of a killed launcher still finish their checkpoint -- is refused, not
    interleaved. The kernel releases the lock when the process dies, however it dies."""

    def __init__(self, run: Path) -> None:
        self.path = Path(run) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock; OutputExistsError naming the process that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputExistsError(
                f"{self.path.parent}: another salibi pretrain (process {holder}) is training in this run folder; "
                "wait for it to save and exit (or stop it), then run the same command again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check_free(self) -> None:
        """Raise as :meth:`acquire` would, without keeping, creating or writing the lock: the
        launcher, before the ranks start."""
        import fcntl

        if not self.path.is_file():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise OutputExistsError(
                f"{self.path.parent}: another salibi pretrain (process {holder}) is training in this run folder; "
                "wait for it to save and exit (or stop it), then run the same command again"
            ) from None
        finally:
            os.close(fd)


def describe_newest(run: Path) -> str:
    """ "the newest complete checkpoint is runs/X/checkpoints/step_0000200" (or that there is none)."""
    from salibi.models.checkpoint import check_checkpoint

    if not step_checkpoints(run):
        return f"{run} has no checkpoint yet"
    found = newest_complete(checkpoints_dir(run), check_checkpoint)
    return f"the newest complete checkpoint is {found}" if found else f"{run} has no complete checkpoint"


def remove_staging_leftovers(run: Path) -> None:
    """Delete the half-written ``.step_*.tmp`` folders of a killed save (only the lock holder may)."""
    folder = checkpoints_dir(run)
    if folder.is_dir():
        for leftover in folder.glob(".step_*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)


# -- optimizer state without pickle ---------------------------------------------------------------


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        plain[str(param_id)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[str(param_id)][key] = value
    return tensors, {"state": plain, "param_groups": state["param_groups"]}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in meta["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = tensor
    return {"state": state, "param_groups": meta["param_groups"]}


# -- writing --------------------------------------------------------------------------------------


def save_training_checkpoint(
    run: Path,
    step: int,
    write_model: Callable[[Path], object],
    trainer_tensors: dict[str, torch.Tensor],
    trainer_meta: dict[str, Any],
) -> Path:
    """Write ``checkpoints/step_XXXXXXX`` completely under a temporary name, flush and rename it
    (replacing a folder of the same step, e.g. a stop right after a periodic save), then point
    ``checkpoints/last`` at it. ``write_model(folder)`` writes the model checkpoint's files."""
    from safetensors.torch import save_file

    final = checkpoints_dir(run) / step_name(step)
    with staging_dir(final) as staging:
        write_model(staging)
        save_file(trainer_tensors, str(staging / TRAINER_TENSORS), metadata={"format": TRAINER_FORMAT})
        # What was written, read back: size and digest of every file (trainer.json, written last, aside).
        files = {path.name: file_digest(path) for path in sorted(staging.iterdir()) if path.is_file()}
        document = {"format": TRAINER_FORMAT, "format_version": TRAINER_FORMAT_VERSION, **trainer_meta, "files": files}
        (staging / TRAINER_JSON).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    write_last(run, final.name)
    return final


def verify_saved(folder: Path) -> int:
    """Check that the checkpoint ``folder`` is on disk as its saver wrote it: its training state
    readable, and every file it lists present with the size and SHA-256 digest it was written
    with. Its step; DataFormatError or MissingInputError naming what differs."""
    meta = check_trainer_state(folder)
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        raise DataFormatError(f"{folder / TRAINER_JSON}: lists no files to check (written by an older salibi)")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise MissingInputError(f"{path}: missing from the checkpoint its saver wrote")
        found = file_digest(path)
        if found != expected:
            raise DataFormatError(
                f"{path}: {found['bytes']} bytes, sha256 {found['sha256'][:12]}..., but the saver wrote "
                f"{expected.get('bytes')} bytes, sha256 {str(expected.get('sha256'))[:12]}..."
            )
    return int(meta["step"])


def prune(run: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (never the one ``last`` names)."""
    protected = read_last(checkpoints_dir(run))
    checkpoints = step_checkpoints(run)
    for _, folder in checkpoints[: max(0, len(checkpoints) - keep)]:
        if folder.name != protected:
            shutil.rmtree(folder, ignore_errors=True)


# -- reading --------------------------------------------------------------------------------------


def check_trainer_state(folder: Path) -> dict[str, Any]:
    """The trainer JSON of one checkpoint, after checking that its tensor file is complete
    (header only); DataFormatError or MissingInputError when damaged."""
    from salibi.models.checkpoint import check_safetensors

    meta_path, tensor_path = folder / TRAINER_JSON, folder / TRAINER_TENSORS
    if not meta_path.is_file() or not tensor_path.is_file():
        raise MissingInputError(
            f"{folder}: no training state ({TRAINER_JSON}, {TRAINER_TENSORS}); "
            "it is a model-only checkpoint and cannot be resumed"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{meta_path}: damaged ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != TRAINER_FORMAT:
        raise DataFormatError(f"{meta_path}: not a salibi trainer state")
    if meta.get("format_version") != TRAINER_FORMAT_VERSION:
        raise DataFormatError(
            f"{meta_path}: trainer state version {meta.get('format_version')!r}; "
            f"this salibi resumes version {TRAINER_FORMAT_VERSION}"
        )
    check_safetensors(tensor_path)
    return meta


def load_trainer_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The trainer tensors and JSON of one checkpoint; DataFormatError when damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = check_trainer_state(folder)
    tensor_path = folder / TRAINER_TENSORS
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise DataFormatError(f"{tensor_path}: damaged or truncated ({err})") from None
    return tensors, meta


def newest_resumable(run: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint whose model and training state are complete: ``(folder,
    trainer_meta)``; damaged newer ones are skipped with a warning naming them. Only headers
    are read: the ranks load the tensors. None when the run has no checkpoint at all."""
    from salibi.models.checkpoint import check_checkpoint

    if not step_checkpoints(run):
        return None

    metas: dict[Path, dict[str, Any]] = {}

    def check(folder: Path) -> None:
        check_checkpoint(folder)
        metas[folder] = check_trainer_state(folder)

    found, skipped = newest_complete_warning(checkpoints_dir(run), check)
    if found is None:
        raise DataFormatError(
            f"{run}: every checkpoint is damaged ({', '.join(f.name for f in skipped)}); "
            "start a new run with another --out"
        )
    return found, metas[found]


# -- every rank's generators ----------------------------------------------------------------------


def gather_rng_states(rank: Rank) -> dict[str, torch.Tensor]:
    """Every rank's torch (and CUDA) generator state, gathered on all ranks."""
    import torch.distributed as dist

    states = {"cpu": torch.get_rng_state()}
    if rank.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(rank.device)
    if not rank.distributed:
        return {f"rng.{kind}.rank0": state for kind, state in states.items()}
    gathered: dict[str, torch.Tensor] = {}
    for kind, state in states.items():
        local = state.to(rank.device)
        parts = [torch.empty_like(local) for _ in range(rank.world_size)]
        dist.all_gather(parts, local)
        gathered.update({f"rng.{kind}.rank{r}": part.cpu() for r, part in enumerate(parts)})
    return gathered


def restore_rng_state(states: dict[str, torch.Tensor], rank: Rank) -> bool:
    """Restore this rank's generators; False when the checkpoint has none for this rank."""
    cpu = states.get(f"rng.cpu.rank{rank.rank}")
    if cpu is None:
        return False
    torch.set_rng_state(cpu)
    cuda = states.get(f"rng.cuda.rank{rank.rank}")
    if cuda is not None and rank.device.type == "cuda":
        torch.cuda.set_rng_state(cuda, rank.device)
    return True
