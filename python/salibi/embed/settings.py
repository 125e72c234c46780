"""The settings of one ``salibi embed`` run (:class:`EmbedJob`) and their defaults -- the
command's option defaults (one owner). Standard library only, so ``salibi --help`` stays instant."""

from __future__ import annotations

from dataclasses import dataclass

from salibi.vocabulary import EMBEDDING_SPACES

#: Largest window side, in patches (32 x 32 patches = 1024 tokens: 256 px for tiny, 512 px for base).
DEFAULT_WINDOW_PATCHES = 32

#: ``fill_missing`` values: ``none`` refuses a raster lacking a band of its encoder; ``mean`` fills it.
FILL_CHOICES = ("none", "mean")


@dataclass(frozen=True)
class EmbedJob:
    """Everything a run (and each of its ranks) needs; see :func:`embed` for the meaning."""

    source: str
    checkpoint: str
    output: str
    chip_size_m: float | None = None
    stride_m: float | None = None
    max_nodata: float = 0.5
    modality: str = "auto"
    gsd: float | None = None
    band_names: tuple[str, ...] | None = None
    fill_missing: str = "none"
    per_modality: bool = False
    space: str = EMBEDDING_SPACES[0]  # encoder (each encoder's own) or shared (the contrastive projections)
    crs: str | None = None
    batch_size: int = 32
    device: str = "auto"
    attention: str = "auto"  # the model's attention backend (salibi.vocabulary.ATTENTION_BACKENDS)
    num_workers: int = 0
    gpus: int = 0
    cpu_procs: int = 0
    progress: bool = True
    window_patches: int = DEFAULT_WINDOW_PATCHES
    launched: bool = False  # a rank that embed() started itself: its parent says the band assumptions


#: The defaults of every setting but the paths (what ``salibi embed`` shows).
DEFAULTS = EmbedJob(source="", checkpoint="", output="")
