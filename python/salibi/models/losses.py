"""The contrastive loss and the collectives that make a DDP step equal one process's step.

Under ``torch.distributed`` (world size > 1) each rank holds a slice of the global batch. Two
things make its losses and gradients those of one process over the whole batch:

- :func:`info_nce` contrasts the local features against the features of *all* ranks, gathered
  with :class:`GatherWithGrad` (an ``all_gather`` whose backward sends each rank its part of the
  summed gradient);
- :func:`global_means` replaces each loss value by its mean over ranks (one ``all_reduce``)
  while keeping the local gradient, which DDP's gradient averaging then turns into the
  global-batch gradient.

Both are no-ops in a single process. Shapes: ``B`` local batch, ``P`` projection width.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["CONTRASTIVE_PAIRS", "GatherWithGrad", "global_means", "info_nce", "world"]

#: The modality pairs contrasted (all three; the pairs present in a batch are used).
CONTRASTIVE_PAIRS: tuple[tuple[str, str], ...] = (("sar", "lores"), ("lores", "hires"), ("sar", "hires"))


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums the gradient over ranks and returns the local
    shard's part (works with gloo and NCCL alike)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.world = dist.get_rank(), dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(ctx.world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)  # (world*B, ...)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(ctx.world)[ctx.rank]


def info_nce(z: dict[str, torch.Tensor], logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE, averaged over the modality pairs present, against the features of
    all ranks.

    z: modality -> (B, P) L2-normalised float projections; logit_scale: the learned log of the
    inverse temperature (clamped to a scale of at most 100, as CLIP).
    """
    rank, size = world()
    everyone = {m: GatherWithGrad.apply(zm) if size > 1 else zm for m, zm in z.items()}  # (world*B, P)
    scale = logit_scale.float().exp().clamp(max=100.0)
    some = next(iter(z.values()))
    labels = torch.arange(some.shape[0], device=some.device) + rank * some.shape[0]  # (B,) rows of everyone
    losses = []
    for a, b in CONTRASTIVE_PAIRS:
        if a in z and b in z:
            a_to_b = F.cross_entropy(scale * z[a] @ everyone[b].T, labels)  # rows: local a; columns: all b
            b_to_a = F.cross_entropy(scale * z[b] @ everyone[a].T, labels)
            losses.append((a_to_b + b_to_a) / 2)
    return torch.stack(losses).mean()


def global_means(local: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scalars whose values are the means of ``local``'s over ranks (one all_reduce) and whose
    gradients are ``local``'s: with DDP's gradient averaging, both equal one process over the
    global batch (per-sample means over equal local batches)."""
    _, size = world()
    if size == 1:
        return local
    values = torch.stack([v.detach() for v in local.values()])
    dist.all_reduce(values)
    return {k: v + (total / size - v.detach()) for (k, v), total in zip(local.items(), values)}
