"""Checkpoints: a folder with ``model.safetensors`` and ``config.json``; no pickle anywhere.

``config.json``::

    {"format": "salibi-checkpoint", "format_version": 1,
     "model": {size, dim, depth, heads, patch_size, variant, mask_ratio, ...},   # ModelConfig
     "modalities": {name: {"channels": int, "bands": [str] | null, "gsd": float | null,
                           "mean": [float] | null, "std": [float] | null}},
     "metadata": {...}}                                  # save_checkpoint's extra keywords

A run folder holds ``checkpoints/step_0000100/`` (7-digit step) and ``checkpoints/last`` (a
text file or a symlink naming the newest), as :mod:`salibi.runs` describes;
:func:`resolve_checkpoint` finds the newest complete one there. Folders are written whole or
not at all (:func:`salibi.fileio.staging_dir`).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from salibi import runs
from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.fileio import staging_dir
from salibi.models.config import ModelConfig
from salibi.models.scale_alibi import ScaleAlibiModel
from salibi.vocabulary import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def _unwrap(model: torch.nn.Module) -> ScaleAlibiModel:
    """The model inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while not isinstance(model, ScaleAlibiModel):
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            raise InputError(
                f"save_checkpoint: {type(model).__name__} is not a salibi model (build it with salibi.models.build)"
            )
    return model


def _modality_entries(model: ScaleAlibiModel, which: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-modality values of ``which`` (bands, gsd, mean, std): given ones over the model's own."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InputError(f"{which}: expected a dict of modality -> value, got {type(given).__name__}")
    stray = sorted(set(given) - set(model.modalities))
    if stray:
        raise InputError(
            f"{which} given for {', '.join(stray)}, which the model does not have "
            f"(modalities: {', '.join(model.modalities)})"
        )
    out: dict[str, Any] = {}
    for m in model.modalities:
        value = given.get(m, model.modality_info[m].get(which))
        channels = model.config.channels[m]
        if value is None:
            out[m] = None
        elif which == "gsd":
            gsd = float(value)
            if not (gsd > 0 and math.isfinite(gsd)):
                raise InputError(f"gsd[{m!r}] = {value}: must be a positive number of metres per pixel")
            out[m] = gsd
        else:
            try:
                values = value.tolist() if hasattr(value, "tolist") else list(value)
                items = [str(v) for v in values] if which == "bands" else [float(v) for v in values]
            except (TypeError, ValueError):
                raise InputError(f"{which}[{m!r}] = {value!r}: expected one value per channel") from None
            if len(items) != channels:
                raise InputError(
                    f"{which}[{m!r}] has {len(items)} values, but the {m} encoder takes {channels} channels"
                )
            out[m] = items
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def save_checkpoint(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    bands: Mapping[str, Sequence[str]] | None = None,
    gsd: Mapping[str, float] | None = None,
    mean: Mapping[str, Sequence[float]] | None = None,
    std: Mapping[str, Sequence[float]] | None = None,
    **metadata: Any,
) -> Path:
    """Write ``model`` to the checkpoint folder ``path`` (replacing one that is there).

    ``bands``, ``gsd``, ``mean``, ``std``: per-modality dicts of the training set's band names,
    metres per pixel and normalisation statistics (default: what the model carries from the
    checkpoint it was loaded from). ``metadata``: anything JSON-serialisable (step, data files,
    ...). The folder is written under a temporary name, flushed to disk and renamed when
    complete. DDP and ``torch.compile`` wrappers are unwrapped.
    """
    model = _unwrap(model)
    modalities, text = _describe(model, bands, gsd, mean, std, metadata)
    path = Path(path)
    with staging_dir(path) as staging:
        _write_files(model, staging, text)
    model.modality_info = modalities
    return path


def write_checkpoint(
    model: torch.nn.Module,
    folder: Path,
    bands: Mapping[str, Sequence[str]] | None = None,
    gsd: Mapping[str, float] | None = None,
    mean: Mapping[str, Sequence[float]] | None = None,
    std: Mapping[str, Sequence[float]] | None = None,
    **metadata: Any,
) -> None:
    """The files of :func:`save_checkpoint`, written into the existing folder ``folder`` by a
    caller that makes that folder appear whole itself (the trainer's checkpoint folders)."""
    model = _unwrap(model)
    modalities, text = _describe(model, bands, gsd, mean, std, metadata)
    _write_files(model, folder, text)
    model.modality_info = modalities


def _describe(
    model: ScaleAlibiModel,
    bands: Mapping[str, Sequence[str]] | None,
    gsd: Mapping[str, float] | None,
    mean: Mapping[str, Sequence[float]] | None,
    std: Mapping[str, Sequence[float]] | None,
    metadata: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], str]:
    """The checkpoint's per-modality entries and the text of its ``config.json``; InputError
    before anything is written when a value cannot be stored."""
    entries = {
        which: _modality_entries(model, which, given)
        for which, given in (("bands", bands), ("gsd", gsd), ("mean", mean), ("std", std))
    }
    modalities = {
        m: {"channels": model.config.channels[m], **{which: entries[which][m] for which in entries}}
        for m in model.modalities
    }
    model_fields = {k: v for k, v in model.config.to_dict().items() if k not in ("modalities", "channels")}
    document = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model": model_fields,
        "modalities": modalities,
        "metadata": metadata,
    }
    try:
        text = json.dumps(document, indent=2, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"save_checkpoint metadata: {err}; pass plain numbers, strings, lists and dicts") from None
    return {m: dict(v) for m, v in modalities.items()}, text


def _write_files(model: ScaleAlibiModel, folder: Path, config_text: str) -> None:
    from safetensors.torch import save_file

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": CHECKPOINT_FORMAT})
    (folder / CONFIG).write_text(config_text + "\n", encoding="utf-8")


# -- reading --------------------------------------------------------------------------------------


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file():
        raise MissingInputError(
            f"{path}: missing; a checkpoint folder holds {CONFIG} and {WEIGHTS} (written by save_checkpoint)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(
            f"{path}: not valid JSON ({err}); the file is damaged or truncated: use another checkpoint or save it again"
        ) from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise DataFormatError(f'{path}: not a salibi checkpoint config (its "format" should be {CHECKPOINT_FORMAT!r})')
    version = document.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: checkpoint format version {version!r}; this salibi reads version {CHECKPOINT_FORMAT_VERSION} "
            "(a newer salibi wrote it? upgrade salibi)"
        )
    for key in ("model", "modalities"):
        if not isinstance(document.get(key), dict):
            raise DataFormatError(f"{path}: no {key!r} object; the file is damaged: use another checkpoint")
    return document


def _check_weights(folder: Path) -> None:
    """Raise unless ``model.safetensors`` has a valid header and the size that header implies."""
    check_safetensors(folder / WEIGHTS)


def check_safetensors(path: Path) -> None:
    """Raise unless the safetensors file ``path`` is complete: a valid header and exactly the
    size that header implies. Reads the header only, so it is cheap for large files."""
    if not path.is_file():
        raise MissingInputError(f"{path}: missing; the checkpoint is incomplete: use another one or save it again")
    size = path.stat().st_size
    damaged = f"{path}: damaged or truncated safetensors file"
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DataFormatError(f"{damaged} ({size} bytes); use another checkpoint or save it again")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise DataFormatError(f"{damaged} (header of {length} bytes in a {size}-byte file); use another checkpoint")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DataFormatError(f"{damaged} (unreadable header); use another checkpoint or save it again") from None
    if not isinstance(header, dict):
        raise DataFormatError(f"{damaged} (header is not a JSON object); use another checkpoint")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise DataFormatError(f"{damaged} (malformed tensor entries); use another checkpoint") from None
    if 8 + length + end != size:
        raise DataFormatError(
            f"{damaged}: {size} bytes, but its header describes {8 + length + end}; use another checkpoint"
        )


def check_checkpoint(folder: Path) -> None:
    """Raise unless ``folder`` is a complete checkpoint (config and weights), without loading it."""
    _read_config(folder)
    _check_weights(folder)


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint folder ``path`` names: itself when it holds ``config.json``; for a run folder
    (``runs/NAME``) or its ``checkpoints/`` folder, the newest complete checkpoint there.

    "Newest" is the highest ``step_XXXXXXX`` (the folder ``checkpoints/last`` names counts too,
    whatever its name); a newer checkpoint that is incomplete or damaged is skipped with a
    :class:`UserWarning` naming it.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: no such checkpoint or run folder")
    if not path.is_dir():
        raise InputError(f"{path}: a checkpoint is a folder (with {CONFIG} and {WEIGHTS}), or give a run folder")
    if (path / CONFIG).exists():
        return path
    folder = runs.checkpoints_dir(path) if runs.checkpoints_dir(path).is_dir() else path
    if not runs.checkpoint_candidates(folder):
        raise MissingInputError(
            f"{path}: no checkpoint here (expected {CONFIG} and {WEIGHTS}, or checkpoints/step_XXXXXXX/ folders); "
            "pass a checkpoint folder or the --out folder of a pretraining run"
        )
    found, skipped = runs.newest_complete_warning(folder, check_checkpoint)
    if found is None:
        raise MissingInputError(
            f"{path}: no complete checkpoint (incomplete: {', '.join(c.name for c in skipped)}); "
            "train further or pass another checkpoint"
        )
    return found


def _stored_ref_length(model: dict[str, Any], modalities: dict[str, Any]) -> Any:
    """The checkpoint's reference length. Checkpoints written before every model had one store
    null: their training calls used one patch of the coarsest GSD, which the per-modality GSDs
    give back (unknown GSDs: None, the default of :class:`ModelConfig`)."""
    stored = model.get("ref_length")
    if stored is not None:
        return stored
    gsds = [entry.get("gsd") if isinstance(entry, dict) else None for entry in modalities.values()]
    known = [float(g) for g in gsds if isinstance(g, (int, float)) and g > 0]
    patch = model.get("patch_size")
    if isinstance(patch, int) and known and len(known) == len(gsds):
        return float(patch * max(known))
    return None


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", attention: str = "auto"
) -> ScaleAlibiModel:
    """The model saved in ``path`` (checkpoint or run folder, see :func:`resolve_checkpoint`),
    on ``map_location``, in eval mode, with ``modality_info``, ``checkpoint_metadata`` and
    ``checkpoint_path`` set; ``attention``: its attention backend (``auto``, ``sdpa``, ``flex``;
    see :func:`salibi.models.build`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = resolve_checkpoint(path)
    document = _read_config(folder)
    config_path = folder / CONFIG
    modalities = document["modalities"]
    try:
        config = ModelConfig.from_dict(
            {
                **document["model"],
                "ref_length": _stored_ref_length(document["model"], modalities),
                "modalities": tuple(modalities),
                "channels": {m: entry["channels"] for m, entry in modalities.items()},
            }
        )
    except (InputError, TypeError, KeyError) as err:
        raise DataFormatError(f"{config_path}: invalid model description ({err}); use another checkpoint") from None
    _check_weights(folder)
    weights = folder / WEIGHTS
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise DataFormatError(f"{weights}: cannot be read ({err}); use another checkpoint or save it again") from None

    model = ScaleAlibiModel(config, attention=attention)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:400]
        raise DataFormatError(
            f"{weights} does not match the model {config_path} describes ({detail}); "
            "the two files belong to different models: use another checkpoint"
        ) from None
    model.to(map_location)
    model.modality_info = {
        m: {k: modalities[m].get(k) for k in ("channels", "bands", "gsd", "mean", "std")} for m in config.modalities
    }
    model.checkpoint_metadata = dict(document.get("metadata") or {})
    model.checkpoint_path = folder
    return model.eval()
