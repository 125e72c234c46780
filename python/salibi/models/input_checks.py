"""The model's input checks: a batch's images and GSDs, each refused with an InputError that says
what is wrong and how to fix it (used by :class:`salibi.models.scale_alibi.ScaleAlibiModel`).

A GSD is a float, or a ``(B,)`` tensor or array (``default_collate`` of per-sample floats): equal
values become one float, unequal ones stay a float64 array of each sample's GSD (chips of their
own ground GSDs, e.g. web tiles at different latitudes).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from salibi.errors import InputError
from salibi.vocabulary import MODALITIES

__all__ = ["check_gsd", "check_images", "read_batch"]


def read_batch(
    model: Any, batch: Mapping[str, object]
) -> tuple[dict[str, torch.Tensor], dict[str, float | np.ndarray]]:
    """Validated images (canonical modality order) and per modality one GSD, or a (B,) array of
    each sample's when they differ."""
    if not isinstance(batch, Mapping):
        raise InputError(f"batch: expected a dict of modality -> images and 'gsd', got {type(batch).__name__}")
    present = [m for m in MODALITIES if m in batch]
    if len(present) < 2:
        raise InputError(
            f"batch has {', '.join(present) or 'no modality'}: pretraining needs at least two of "
            f"{', '.join(model.modalities)} (the model's modalities)"
        )
    gsd_in = batch.get("gsd")
    if not isinstance(gsd_in, Mapping):
        raise InputError("batch['gsd']: expected a dict of modality -> metres per pixel")
    images: dict[str, torch.Tensor] = {}
    for m in present:
        images[m] = check_images(
            model, batch[m], m, images[present[0]].shape[0] if images else None, where=f"batch[{m!r}]"
        )
    missing = [m for m in present if m not in gsd_in]
    if missing:
        raise InputError(f"batch['gsd'] has no entry for {', '.join(missing)}")
    size = images[present[0]].shape[0]
    return images, {m: check_gsd(gsd_in[m], m, size) for m in present}


def check_images(
    model: Any, images: object, modality: str, batch_size: int | None = None, where: str = "images"
) -> torch.Tensor:
    """``images`` checked against ``model``: a float (B, C, H, W) tensor of the modality's channels,
    whole patches, ``batch_size`` samples, on the model's device."""
    if modality not in model.modalities:
        raise InputError(
            f"{where}: this model was built without {modality!r} (modalities: {', '.join(model.modalities)}); "
            "drop it from the batch or build the model with it"
        )
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{where}: expected a float tensor (B, C, H, W) of normalised images, got {got}")
    b, c, h, w = images.shape
    p = model.config.patch_size
    if c != model.config.channels[modality]:
        raise InputError(
            f"{where}: {c} channels, but the model's {modality} encoder takes {model.config.channels[modality]}"
        )
    if h % p or w % p or h == 0 or w == 0:
        raise InputError(f"{where}: {h}x{w} px is not a multiple of the patch size {p}; pad or crop the images")
    if batch_size is not None and b != batch_size:
        raise InputError(f"{where}: batch size {b} differs from the other modalities' {batch_size}")
    if images.device != model.device:
        raise InputError(f"{where} is on {images.device} but the model on {model.device}; move it with .to()")
    return images


def check_gsd(value: object, modality: str, batch_size: int) -> float | np.ndarray:
    """One GSD from a float or a (B,) tensor or array of equal values (default_collate); a
    float64 (B,) array when the samples' GSDs differ."""
    where = f"gsd[{modality!r}]"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        flat = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value).reshape(-1)
        if flat.shape[0] == 0:
            raise InputError(f"{where}: empty")
        if flat.dtype.kind not in "iuf":
            raise InputError(f"{where}: expected numbers of metres per pixel, got {flat.dtype}")
        flat = flat.astype(np.float64)
        if not (np.isfinite(flat).all() and (flat > 0).all()):
            bad = flat[~(np.isfinite(flat) & (flat > 0))][0]
            raise InputError(f"{where} holds {bad!r}: every GSD must be a positive number of metres per pixel")
        if bool((flat == flat[0]).all()):
            value = float(flat[0])
        elif flat.shape[0] != batch_size:
            raise InputError(
                f"{where}: {flat.shape[0]} GSDs for a batch of {batch_size}; give one per sample or one for all"
            )
        else:
            return flat
    if not isinstance(value, numbers.Real) or not (math.isfinite(float(value)) and float(value) > 0):
        raise InputError(f"{where} = {value!r}: must be a positive number of metres per pixel")
    return float(value)
