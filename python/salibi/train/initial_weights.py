"""A run's initial weights, recorded so that runs meant to start alike can be shown to.

``salibi pretrain`` writes ``RUN/initial_weights.json`` when it starts a run afresh (not when it
resumes): one SHA-256 digest per parameter of the freshly built model, before any step::

    {"format": "salibi-initial-weights", "format_version": 1, "seed": 0, "variant": "alibi",
     "parameters": {"encoders.sar.patch_embed.weight": {"shape": [64, 2, 8, 8], "dtype": "float32",
                                                         "sha256": "..."}, ...}}

The digest covers the parameter's shape, dtype and bytes (little-endian, on the CPU), so two runs
whose digests agree started from bit-identical weights. ``salibi ablate`` compares the records of
its variants (:func:`compare_initial_weights`): they must differ in the position information only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salibi.errors import DataFormatError, MissingInputError
from salibi.fileio import write_atomic
from salibi.runs import INITIAL_WEIGHTS_JSON
from salibi.vocabulary import INITIAL_WEIGHTS_FORMAT, INITIAL_WEIGHTS_FORMAT_VERSION

if TYPE_CHECKING:
    from salibi.train.config import PretrainConfig

__all__ = [
    "INITIAL_WEIGHTS_FORMAT",
    "compare_initial_weights",
    "initial_model",
    "parameter_digests",
    "read_initial_weights",
    "record_initial_weights",
]


def initial_model(
    config: PretrainConfig, modalities: Sequence[str], channels: Mapping[str, int], coarsest_gsd: float
) -> Any:
    """The model a run of ``config`` starts from, on the CPU: seeded with ``config.seed``, built for
    the training data's ``modalities`` and ``channels``, with one reference length (a patch of the
    data's ``coarsest_gsd``). ``salibi pretrain`` builds its model with this function, and
    ``salibi ablate`` to check its variants before training."""
    import torch

    from salibi.models import ModelConfig, build

    torch.manual_seed(config.seed)
    return build(
        config.model,
        variant=config.variant,
        modalities=tuple(modalities),
        channels=dict(channels),
        mask_ratio=config.mask_ratio,
        ref_length=ModelConfig.for_size(config.model).patch_size * coarsest_gsd,
        attention=config.attention,
    )


def parameter_digests(model: Any) -> dict[str, dict[str, Any]]:
    """name -> ``{"shape", "dtype", "sha256"}`` of every parameter of ``model`` (a torch module)."""
    digests = {}
    for name, parameter in model.named_parameters():
        array = parameter.detach().to("cpu").contiguous().numpy()
        if array.dtype.byteorder == ">":
            array = array.byteswap().view(array.dtype.newbyteorder("<"))
        digest = hashlib.sha256(f"{list(array.shape)}|{array.dtype.str}|".encode())
        digest.update(array.tobytes())
        digests[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": digest.hexdigest()}
    return digests


def record_initial_weights(run: str | os.PathLike[str], model: Any, seed: int, variant: str) -> Path:
    """Write ``run/initial_weights.json`` for the freshly built ``model``; its path."""
    document = {
        "format": INITIAL_WEIGHTS_FORMAT,
        "format_version": INITIAL_WEIGHTS_FORMAT_VERSION,
        "seed": int(seed),
        "variant": variant,
        "parameters": parameter_digests(model),
    }
    return write_atomic(Path(run) / INITIAL_WEIGHTS_JSON, json.dumps(document, indent=1) + "\n")


def read_initial_weights(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The record of ``run`` (a run folder); MissingInputError when the run has none."""
    path = Path(run) / INITIAL_WEIGHTS_JSON
    if not path.is_file():
        raise MissingInputError(
            f"{path} does not exist: the run was started by a salibi without initial-weight records; "
            "start it again in a new folder to compare its initial weights"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: unreadable ({err}); start the run again in a new folder") from None
    if document.get("format") != INITIAL_WEIGHTS_FORMAT or not isinstance(document.get("parameters"), dict):
        raise DataFormatError(f"{path}: not a {INITIAL_WEIGHTS_FORMAT} record; start the run again in a new folder")
    return dict(document)


def compare_initial_weights(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Compare the parameter digests of several records (label -> record or digests).

    Returns ``{"shared": [names every record has], "equal": [shared names with one digest],
    "different": [shared names whose digests differ], "unshared": {label: [names only some
    records have]}}``. Runs that start alike have ``different == []``.
    """
    digests = {label: dict(r.get("parameters", r)) for label, r in records.items()}
    if not digests:
        return {"shared": [], "equal": [], "different": [], "unshared": {}}
    names = [set(d) for d in digests.values()]
    shared = sorted(set.intersection(*names))
    different = [n for n in shared if len({d[n]["sha256"] for d in digests.values()}) > 1]  # covers the shape
    unshared = {label: sorted(set(d) - set(shared)) for label, d in digests.items() if set(d) - set(shared)}
    return {
        "shared": shared,
        "equal": [n for n in shared if n not in different],
        "different": different,
        "unshared": unshared,
    }
