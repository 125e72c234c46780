"""The Scale-ALiBi model (DESIGN.md "Model"): build, train, save, load.

::

    from salibi.models import build, save_checkpoint, load_checkpoint, resolve_checkpoint
    model = build("tiny", variant="scale-alibi", modalities=("sar", "lores", "hires"),
                  channels={"lores": 13})             # defaults: sar 2, lores 3, hires 3
    model.config          # ModelConfig: size, dim, depth, heads, patch_size, variant, modalities,
                          # channels, mask_ratio, ...; to_dict() / ModelConfig.from_dict()
    model.modalities      # ("sar", "lores", "hires"): canonical (fusion) order
    model.modality_info   # {modality: {"channels", "bands", "gsd", "mean", "std"}}: the training
                          # set's facts saved with a checkpoint (None where unknown)

    tokens = model.encode(images, modality="hires", gsd=1.0)   # (B, N, D), N = (H/p)*(W/p), row-major
    pooled = model.embed(images, modality="lores", gsd=10.0)   # (B, D): mean of those tokens
    joint = model.encode_joint({"sar": s1, "lores": s2}, {"sar": 10.0, "lores": 10.0})  # modality ->
                          # (B, N_m, D) tokens of the cross-modal encoder, unmasked (inference)
    fused = model.embed_joint({"sar": s1, "lores": s2}, {"sar": 10.0, "lores": 10.0})   # (B, D)
    out = model(batch)    # batch = {"sar": (B,2,h,w), "lores": ..., "hires": ..., "gsd": {"sar": 10.0, ...}}
    out["loss"], out["contrastive"], out["reconstruction"]     # scalar tensors (+ per-modality
                          # "reconstruction_<m>", "temperature")
    save_checkpoint(model, "ckpt/", bands=..., gsd=..., mean=..., std=..., step=100)
    model = load_checkpoint("ckpt/")        # or a run folder: its newest complete checkpoint
    model = build("base", attention="flex")   # attention backend: "auto" (flex on CUDA, sdpa
                          # elsewhere), "sdpa" (materialised biases) or "flex" (bias in the kernel);
                          # load_checkpoint(..., attention=...) likewise

Inputs: float tensors already normalised; H and W multiples of ``config.patch_size`` (they may
differ); all chips of one sample cover the same ground footprint. ``batch["gsd"][m]`` is a float
or a ``(B,)`` tensor (torch's ``default_collate``) of each chip's own GSD, equal or not (web tiles
at different latitudes: each sample gets the biases it would get alone; ``encode``'s ``gsd`` too). A batch needs at least two of
the model's modalities (the pairs present are contrasted and fused); a modality the model was
not built with is an :class:`~salibi.errors.InputError`.

Reference length ``L``: one per model, ``config.ref_length`` (metres), so the GSD passed to
``encode``/``embed`` always changes the bias: ``build`` defaults it to ``patch_size * 10`` (one
patch at Sentinel-2's 10 m), ``salibi pretrain`` sets one patch footprint of its data's coarsest
GSD, and a checkpoint stores it. ``encode(..., ref_length=...)`` overrides it for one call.

Masking draws from torch's global CPU generator whatever the device (restore
``torch.get_rng_state()`` to resume exactly); ``model(batch, mask_ratio=0.75)`` overrides the
ratio, ``model(batch, noise={m: (B, N_m) tensor})`` the draw.
Under ``torch.distributed`` (world size > 1) contrastive features are gathered over ranks, and
``out`` values are global-batch means on every rank whose gradients, averaged by DDP, equal the
single-process gradient over the global batch (ranks need equal local batch sizes, and every
rank must call ``forward`` with the same modalities).

Loaded models also carry ``checkpoint_metadata`` (the extra keywords given to
``save_checkpoint``) and ``checkpoint_path``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from salibi.models.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from salibi.models.config import DEFAULT_CHANNELS, MODALITIES, SIZES, VARIANTS, ModelConfig
from salibi.models.scale_alibi import ScaleAlibiModel

__all__ = [
    "DEFAULT_CHANNELS",
    "MODALITIES",
    "SIZES",
    "VARIANTS",
    "ModelConfig",
    "ScaleAlibiModel",
    "build",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]


def build(
    size: str = "tiny",
    variant: str = "scale-alibi",
    modalities: Iterable[str] = MODALITIES,
    channels: Mapping[str, int] | None = None,
    attention: str = "auto",
    **overrides: Any,
) -> ScaleAlibiModel:
    """A freshly initialised model of the named size (``tiny``, ``small``, ``base``, ``large``).

    ``channels``: input channels per modality (missing ones: sar 2, lores 3, hires 3).
    ``attention``: the attention backend -- ``flex`` (the bias computed inside a FlexAttention
    kernel, no bias tensors), ``sdpa`` (materialised biases), ``auto`` (``flex`` on CUDA,
    ``sdpa`` elsewhere); the same numbers either way (:mod:`salibi.models.flex`).
    ``overrides``: any other :class:`ModelConfig` field (``mask_ratio``, ``ref_length``, ...).
    """
    config = ModelConfig.for_size(
        size, variant=variant, modalities=tuple(modalities), channels=dict(channels or {}), **overrides
    )
    return ScaleAlibiModel(config, attention=attention)
