"""The words salibi's parts share, defined once (and importable without torch).

The command line, the models, align, data, embed and eval all import these; nothing else
spells them out.
"""

from __future__ import annotations

#: Modality names in the one order used everywhere: the order the model fuses them
#: (SAR with low-res optical first, then the result with high-res optical).
MODALITIES: tuple[str, ...] = ("sar", "lores", "hires")
#: What each modality is, for help texts.
MODALITY_HELP: dict[str, str] = {
    "sar": "SAR (e.g. Sentinel-1 VV/VH)",
    "lores": "low-resolution optical (e.g. Sentinel-2, Landsat; 5 m and coarser)",
    "hires": "high-resolution optical (e.g. NAIP, WorldView; finer than 5 m)",
}
#: Model sizes (their widths are in :mod:`salibi.models.config`).
SIZES: tuple[str, ...] = ("tiny", "small", "base", "large")
#: Position-information variants (DESIGN.md "Scale-ALiBi, exactly"); identical otherwise.
VARIANTS: tuple[str, ...] = ("scale-alibi", "alibi", "sincos", "none")
#: Frozen-encoder evaluation protocols of ``salibi eval geobench``.
PROTOCOLS: tuple[str, ...] = ("knn", "linear", "seg", "majority")

# File formats: the ``format`` / ``format_version`` every salibi file carries.
ALIGNED_FORMAT, ALIGNED_FORMAT_VERSION = "salibi-aligned", 1
EMBEDDINGS_FORMAT, EMBEDDINGS_FORMAT_VERSION = "salibi-embeddings", 1
CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION = "salibi-checkpoint", 1
TRAINER_FORMAT, TRAINER_FORMAT_VERSION = "salibi-trainer-state", 1
RUN_FORMAT, RUN_FORMAT_VERSION = "salibi-run", 1
