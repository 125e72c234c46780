"""Will one training step fit? An estimate made before any rank starts.

A masked Scale-ALiBi step holds, per sample, one ``(heads, k, k)`` bias for each unimodal
encoder (``k`` kept tokens) and one over the joint tokens of each fusion stage, and once per
micro-batch the decoder's ``(decoder_heads, N, N)`` bias over every token; all grow with the
*square* of the tokens per chip. The default alignment (960 m chips at NAIP's 0.6 m: 10,000
high-res tokens) makes the masked bias alone ~0.6 GB per sample for ``base`` in bf16 -- a
failure that would otherwise surface inside a rank, minutes in. :func:`estimate_step_memory`
adds up those biases (none with ``--attention flex``, which computes them inside its kernel),
the activations kept for the backward pass and the weights, gradients and AdamW state;
:func:`check_step_memory` refuses a run whose estimate exceeds the memory of one rank's device,
with the numbers and what to change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from salibi.errors import InputError
from salibi.models.config import ModelConfig

GIB = 2**30
#: Bytes per parameter: fp32 weights and gradients, AdamW's two moments, DDP's gradient bucket.
_BYTES_PER_PARAMETER = 4 + 4 + 8 + 4
#: Activations kept for the backward pass, in elements per token and layer per unit of width
#: (attention input, q/k/v, output, two norms, the MLP's hidden layer and its GELU).
_ACTIVATIONS_PER_WIDTH = 8 + 2 * 4


@dataclass(frozen=True)
class StepMemory:
    """An estimate of one rank's peak memory for one micro-batch, in bytes, and what drives it."""

    micro_batch: int
    #: the attention biases of the micro-batch (encoders and fusion per sample; decoder once)
    biases: int
    #: activations kept for the backward pass
    activations: int
    #: weights, gradients and optimizer state
    parameters: int
    #: per modality: (tokens per chip, tokens kept)
    tokens: dict[str, tuple[int, int]]
    #: bytes per element of the biases and activations (2 under bf16 autocast, else 4)
    element_bytes: int

    @property
    def total(self) -> int:
        return self.biases + self.activations + self.parameters


def count_parameters(config: ModelConfig) -> int:
    """The model's parameter count, built on the ``meta`` device (no memory, no initialisation cost)."""
    import torch

    from salibi.models.scale_alibi import ScaleAlibiModel

    with torch.device("meta"):
        model = ScaleAlibiModel(config)
    return sum(p.numel() for p in model.parameters())


def estimate_step_memory(
    config: ModelConfig,
    chips: dict[str, tuple[int, int]],
    mask_ratio: float,
    micro_batch: int,
    element_bytes: int,
    parameters: int | None = None,
    materialised_biases: bool = True,
    gsd_per_chip: bool = False,
) -> StepMemory:
    """One micro-batch of ``micro_batch`` samples whose ``chips`` are (H, W) px per modality;
    ``materialised_biases=False``: the flex backend, which holds no bias tensor; ``gsd_per_chip``:
    chips of their own GSDs (web tiles), whose decoder biases differ per sample (one each, not one)."""
    from salibi.models.scale_alibi import fusion_stages, kept_patches

    p = config.patch_size
    tokens = {}
    for m, (h, w) in chips.items():
        n = (h // p) * (w // p)
        tokens[m] = (n, kept_patches(n, mask_ratio))
    kept = {m: k for m, (_, k) in tokens.items()}
    # per sample: each encoder's self-bias, each fusion stage's biases over its joint tokens
    per_sample = sum(config.heads * k * k for k in kept.values())
    for a, b in fusion_stages(kept).values():
        per_sample += config.heads * sum(kept[m] for m in (*a, *b)) ** 2
    every = sum(n for n, _ in tokens.values())
    decoder_biases = micro_batch if gsd_per_chip else 1
    biases = (per_sample * micro_batch + config.decoder_heads * every * every * decoder_biases) * element_bytes
    if not materialised_biases:
        biases = 0
    width = _ACTIVATIONS_PER_WIDTH
    encoder = sum(k * config.depth * config.dim for k in kept.values())
    fusion = 2 * config.fusion_depth * sum(kept.values()) * config.dim * 2  # self + cross layers
    decoder = config.decoder_depth * every * config.decoder_dim
    activations = (encoder + fusion + decoder) * width * element_bytes * micro_batch
    count = count_parameters(config) if parameters is None else parameters
    return StepMemory(micro_batch, biases, activations, count * _BYTES_PER_PARAMETER, tokens, element_bytes)


def device_memory(use_cuda: bool, local_ranks: int) -> tuple[int, str]:
    """The bytes one rank may use and where: the smallest local GPU's memory with CUDA, else the
    machine's available memory shared by its ``local_ranks`` ranks."""
    if use_cuda:
        import torch

        sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]
        return min(sizes), "each GPU"
    available = _available_memory()
    share = available // max(1, local_ranks)
    return share, ("this machine" if local_ranks == 1 else f"each of {local_ranks} CPU ranks on this machine")


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_step_memory(
    estimate: StepMemory, available: int, where: str, model: str, flex_possible: bool = False
) -> None:
    """InputError naming the numbers and the fix when ``estimate`` does not fit in ``available``;
    ``flex_possible``: suggest ``--attention flex`` too (on CUDA, with materialised biases)."""
    if estimate.total <= available:
        return
    largest = max(estimate.tokens, key=lambda m: estimate.tokens[m][0])
    n, k = estimate.tokens[largest]
    side = int(n**0.5)
    raise InputError(
        f"one training step needs an estimated {estimate.total / GIB:.1f} GiB per rank, more than the "
        f"{available / GIB:.1f} GiB of {where}: {estimate.biases / GIB:.1f} GiB of attention biases "
        f"({estimate.micro_batch} chips per rank and micro-batch; {largest} has {n} tokens per chip (~{side}x{side}), "
        f"{k} kept; the biases grow with their square), {estimate.activations / GIB:.1f} GiB of activations, "
        f"{estimate.parameters / GIB:.1f} GiB for the {model} model's weights and optimizer. "
        + (
            "Use --attention flex (no bias tensors), lower --batch-size"
            if flex_possible and estimate.biases
            else "Lower --batch-size"
        )
        + " (or raise --accumulate), or re-align with fewer tokens per chip: a coarser "
        f"`salibi align --gsd {largest}=...` or a smaller --tile-size-m (half the side, 1/16 of the biases)"
    )
