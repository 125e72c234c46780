"""Model configuration: the named sizes and everything ``build`` needs, as one dataclass.

A :class:`ModelConfig` round-trips through JSON (``to_dict`` / ``from_dict``), which is how a
checkpoint's ``config.json`` stores it. Sizes:

=======  ====  =====  =====  =====  ======  =======================  ===========================
size     dim   depth  heads  patch  fusion  decoder dim/depth/heads  meant for
=======  ====  =====  =====  =====  ======  =======================  ===========================
tiny       64      2      4      8       1  64 / 1 / 4               tests, CPU demo (seconds)
small     384     12      6     16       2  256 / 2 / 8              one workstation GPU
base      768     12     12     16       2  512 / 2 / 16             ViT-B/16 encoders
large    1024     24     16     16       4  512 / 4 / 16             ViT-L/16 encoders
=======  ====  =====  =====  =====  ======  =======================  ===========================

``depth`` is the depth of each unimodal encoder; ``fusion_depth`` the number of bidirectional
self + cross-attention layers of each fusion stage (SAR <-> low-res optical, then joint <->
high-res optical).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from salibi import vocabulary
from salibi.errors import InputError
from salibi.vocabulary import MODALITIES, VARIANTS

#: Input channels when ``build(channels=...)`` does not say otherwise: VV/VH, RGB, RGB.
DEFAULT_CHANNELS: dict[str, int] = {"sar": 2, "lores": 3, "hires": 3}
#: The coarse GSD (m/px) behind the default reference length ``patch_size * DEFAULT_COARSE_GSD``:
#: Sentinel-1 and Sentinel-2, the coarsest modalities of a typical training set.
DEFAULT_COARSE_GSD = 10.0

_WIDTH_FIELDS = (
    "dim",
    "depth",
    "heads",
    "patch_size",
    "fusion_depth",
    "decoder_dim",
    "decoder_depth",
    "decoder_heads",
    "proj_dim",
)
_WIDTHS = (  # one row per size of salibi.vocabulary.SIZES, in that order (the table above)
    # dim, depth, heads, patch, fusion, decoder dim, decoder depth, decoder heads, projection
    (64, 2, 4, 8, 1, 64, 1, 4, 64),  # tiny
    (384, 12, 6, 16, 2, 256, 2, 8, 256),  # small
    (768, 12, 12, 16, 2, 512, 2, 16, 512),  # base
    (1024, 24, 16, 16, 4, 512, 4, 16, 768),  # large
)
#: The widths of each named size (:data:`salibi.vocabulary.SIZES`): size -> ModelConfig fields.
SIZES: dict[str, dict[str, Any]] = {
    size: dict(zip(_WIDTH_FIELDS, row, strict=True)) for size, row in zip(vocabulary.SIZES, _WIDTHS, strict=True)
}


@dataclass
class ModelConfig:
    """Everything needed to build a model; stored in a checkpoint's ``config.json``."""

    size: str = "tiny"
    dim: int = 64
    depth: int = 2
    heads: int = 4
    patch_size: int = 8
    variant: str = "scale-alibi"
    modalities: tuple[str, ...] = MODALITIES
    channels: dict[str, int] = field(default_factory=dict)  # per modality; missing ones: DEFAULT_CHANNELS
    mlp_ratio: float = 4.0
    fusion_depth: int = 1
    decoder_dim: int = 64
    decoder_depth: int = 1
    decoder_heads: int = 4
    proj_dim: int = 64
    #: fraction of each modality's patches hidden from the encoders during pretraining
    mask_ratio: float = 0.5
    contrastive_weight: float = 1.0
    reconstruction_weight: float = 1.0
    #: initial InfoNCE temperature (learned, as CLIP's log logit scale)
    temperature: float = 0.07
    #: Scale-ALiBi reference length L in metres, one for every call of the model (so a GSD always
    #: changes the bias). None becomes ``patch_size * DEFAULT_COARSE_GSD`` on validation;
    #: ``salibi pretrain`` sets one patch footprint of the training data's coarsest GSD.
    ref_length: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Normalise the fields, or raise :class:`InputError` naming the first that cannot work."""
        if self.variant not in VARIANTS:
            raise InputError(f"variant {self.variant!r}: must be one of {', '.join(VARIANTS)}")
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise InputError(f"modalities {unknown}: unknown; choose from {', '.join(MODALITIES)}")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise InputError(f"modalities {list(self.modalities)}: give each of {', '.join(MODALITIES)} at most once")
        # Canonical order, the fusion order, whatever order the caller listed them in.
        self.modalities = tuple(m for m in MODALITIES if m in self.modalities)
        stray = sorted(set(self.channels) - set(self.modalities))
        if stray:
            raise InputError(
                f"channels given for {', '.join(stray)}, which the model is not built with "
                f"(modalities: {', '.join(self.modalities)})"
            )
        self.channels = {m: int(self.channels.get(m, DEFAULT_CHANNELS[m])) for m in self.modalities}
        for m, c in self.channels.items():
            if c < 1:
                raise InputError(f"channels[{m!r}] = {c}: must be at least 1")
        for name in _WIDTH_FIELDS:
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} = {getattr(self, name)}: must be at least 1")
        if self.dim % self.heads:
            raise InputError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.decoder_dim % self.decoder_heads:
            raise InputError(f"decoder_dim {self.decoder_dim} is not divisible by decoder_heads {self.decoder_heads}")
        if self.variant == "sincos" and (self.dim % 4 or self.decoder_dim % 4):
            raise InputError(
                f"variant sincos needs dim and decoder_dim divisible by 4 (got {self.dim}, {self.decoder_dim})"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise InputError(f"mask_ratio {self.mask_ratio}: must be in [0, 1)")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise InputError(f"temperature {self.temperature}: must be a positive number")
        if self.ref_length is None:
            self.ref_length = float(self.patch_size * DEFAULT_COARSE_GSD)
        if not (isinstance(self.ref_length, (int, float)) and self.ref_length > 0 and math.isfinite(self.ref_length)):
            raise InputError(f"ref_length {self.ref_length}: must be a positive number of metres, or None")
        self.ref_length = float(self.ref_length)
        if self.mlp_ratio <= 0:
            raise InputError(f"mlp_ratio {self.mlp_ratio}: must be positive")

    @classmethod
    def for_size(cls, size: str, **overrides: Any) -> ModelConfig:
        """The named size (``tiny``, ``small``, ``base``, ``large``) with ``overrides`` applied."""
        if size not in SIZES:
            raise InputError(f"model size {size!r}: must be one of {', '.join(SIZES)}")
        return cls.from_dict({**SIZES[size], "size": size, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, not tuples)."""
        out = dataclasses.asdict(self)
        out["modalities"] = list(self.modalities)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an :class:`InputError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"model config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)
