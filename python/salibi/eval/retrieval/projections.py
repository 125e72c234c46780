"""The shared-space features of every chip of aligned sets, per modality.

- The chips: :class:`salibi.data.AlignedDataset` over the sets (one split, or every chip),
  normalised with each file's own training-split statistics as pretraining normalises them, each
  chip at its own GSD (format 2 may store one per chip; the model takes a ``(B,)`` GSD tensor).
- The modalities: those every set and the checkpoint share, in fusion order; at least two.
- The bands: each set's bands of a modality matched to the checkpoint's by identity, as
  ``salibi embed`` matches an aligned set's (:func:`salibi.embed.inputs.routing.route_named`: ``B4`` =
  ``B04``), and put in the checkpoint's order; a missing band is refused.
- The features: per modality, the chip's encoder tokens pooled (:meth:`~salibi.models.ScaleAlibiModel.pool`)
  and projected into the shared contrastive space (:meth:`~salibi.models.ScaleAlibiModel.project`),
  ``batch_size`` chips of one file per forward pass on the model's device (a GPU when there is
  one), float32, without autocast (a bf16 projection would tie chips that float32 tells apart).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import InputError

__all__ = ["RetrievalChips", "contrastive_features", "open_chips"]


@dataclass
class RetrievalChips:
    """The chips of one retrieval evaluation: ``dataset`` (an AlignedDataset of the split),
    ``modalities`` queried, per file and modality the set's channel feeding each encoder band
    (0-based), and the band assumptions made (unnamed bands taken in order)."""

    dataset: Any
    modalities: tuple[str, ...]
    channels: list[dict[str, list[int]]]
    assumptions: list[str]

    def __len__(self) -> int:
        return len(self.dataset)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def open_chips(paths: Sequence[str | os.PathLike[str]], split: str | None, model: Any) -> RetrievalChips:
    """The chips of ``paths`` in ``split`` (None: all) that ``model`` can be queried on:
    :class:`InputError` naming the file and the fix when they share fewer than two modalities,
    lack a band of the checkpoint's, or hold no chip of the split."""
    from salibi.data import AlignedDataset, open_aligned
    from salibi.embed.embed_job import checkpoint_specs
    from salibi.embed.inputs.routing import BandRefusal, route_named
    from salibi.vocabulary import MODALITIES

    files = [Path(p) for p in paths]
    if not files:
        raise InputError("give at least one aligned set (salibi align -o SET.h5)")
    specs = checkpoint_specs(model)
    bands: list[dict[str, list[str]]] = []
    for path in files:
        with open_aligned(path) as f:
            bands.append({m: [_text(b) for b in f[m].attrs["bands"]] for m in MODALITIES if m in f})
    in_every = [m for m in MODALITIES if all(m in found for found in bands)]
    shared = tuple(m for m in in_every if m in model.modalities)
    if len(shared) < 2:
        where = files[0] if len(files) == 1 else ", ".join(str(p) for p in files)
        raise InputError(
            f"{where}: retrieval needs two modalities that the set ({', '.join(in_every) or 'none in every file'}) "
            f"and the checkpoint ({', '.join(model.modalities)}) share; align the set with two of the "
            "checkpoint's modalities"
        )
    channels: list[dict[str, list[int]]] = []
    assumptions: list[str] = []
    for path, found in zip(files, bands):
        routes = {}
        for m in shared:
            try:
                route = route_named(found[m], m, specs[m], False, f"{path} /{m}")
            except BandRefusal as err:  # its first clause says why; the rest is advice for salibi embed
                reason = str(err).split(";")[0]
                raise InputError(
                    f"{reason}; align the set with the checkpoint's {m} bands, named (salibi align --band-names)"
                ) from None
            if route.assumption and route.assumption not in assumptions:
                assumptions.append(route.assumption)
            routes[m] = [i - 1 for i in route.indexes]
        channels.append(routes)
    dataset = AlignedDataset(files, split=split, modalities=shared, normalize=True)
    if len(dataset) < 2:
        which = "chips" if split is None else f"{split} chips"
        where = files[0] if len(files) == 1 else f"{len(files)} sets"
        raise InputError(
            f"{where}: {len(dataset)} {which}; retrieval needs at least 2 to choose among (align with "
            "--val-fraction for validation chips, or give --split train or --split all)"
        )
    return RetrievalChips(dataset, shared, channels, assumptions)


def contrastive_features(model: Any, chips: RetrievalChips, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Modality -> (N, P) float32: every chip's projection into the shared space, in dataset order,
    computed on ``model``'s device (put it there first)."""
    import torch

    device = model.device
    out = {m: np.zeros((len(chips), model.config.proj_dim), np.float32) for m in chips.modalities}
    model.eval()
    for k, indices in enumerate(chips.dataset.file_indices()):
        for start in range(indices.start, indices.stop, batch_size):
            rows = range(start, min(start + batch_size, indices.stop))
            samples = [chips.dataset[i] for i in rows]
            for m in chips.modalities:
                order = chips.channels[k][m]
                images = torch.stack([s[m][order] for s in samples]).to(device)
                gsd = torch.tensor([s["gsd"][m] for s in samples], dtype=torch.float64)
                with torch.inference_mode():
                    projected = model.project(model.pool(model.encode(images, m, gsd)), m)
                out[m][rows.start : rows.stop] = projected.cpu().numpy()
    return out
