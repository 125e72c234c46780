"""The ``--device auto|cpu|cuda`` choice, spelled one way for every command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from salibi.errors import DeviceError, InputError

if TYPE_CHECKING:
    import torch


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` (or ``cuda:N``) without a GPU is a
    :class:`DeviceError`."""
    import torch

    if requested not in ("auto", "cpu", "cuda") and not requested.startswith("cuda:"):
        raise InputError(f"--device {requested}: expected auto, cpu or cuda")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is visible here; use --device cpu or auto")
    return torch.device(requested)
