"""The model's building blocks: biased attention, transformer blocks, fusion stages, the encoder.

Every attention layer takes a ``bias`` (the Scale-ALiBi or ALiBi distance penalty from
:mod:`salibi.models.attention_bias`) whose type chooses the kernel: a tensor, an additive mask
for :func:`torch.nn.functional.scaled_dot_product_attention`; a
:class:`~salibi.models.flex.FlexBias`, token coordinates from which FlexAttention computes the
bias in the kernel; None, SDPA without a mask. Shapes: ``B`` batch, ``N``/``M`` query and key
tokens, ``D`` width, ``H`` heads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salibi.models.attention_bias import device_cached, patch_unit_grid
from salibi.models.flex import FlexBias, flex_attend

#: What an attention layer takes as its bias (see the module docstring).
AttentionBias = torch.Tensor | FlexBias | None

__all__ = [
    "Attention",
    "AttentionBias",
    "Block",
    "CrossAttention",
    "Encoder",
    "FusionBlock",
    "FusionStage",
    "Mlp",
    "sincos_embedding",
]


def _heads_first(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, D) -> (B, H, N, D/H), a view."""
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _split_heads(x: torch.Tensor, parts: int, heads: int) -> tuple[torch.Tensor, ...]:
    """(B, N, parts*D) -> ``parts`` views (B, H, N, D/H). Split along the last dimension, so the
    backward pass joins the gradients with one concatenation straight into (B, N, parts*D)
    (a stack over a leading dimension would need a second copy to get back to that layout)."""
    return tuple(_heads_first(part, heads) for part in x.chunk(parts, dim=-1))


class Attention(nn.Module):
    """Multi-head self-attention through SDPA, with an optional additive bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
        b, n, d = x.shape  # x: (B, N, D); bias: (B|1, H, N, N), FlexBias or None
        q, k, v = _split_heads(self.qkv(x), 3, self.heads)  # (B, H, N, D/H)
        return self.proj(_attend(q, k, v, bias).transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` (queries) over ``context`` (keys, values), with a bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
        b, n, d = x.shape  # x: (B, N, D); context: (B, M, D); bias: (B|1, H, N, M), FlexBias or None
        q = _heads_first(self.q(x), self.heads)  # (B, H, N, D/H)
        k, v = _split_heads(self.kv(context), 2, self.heads)  # (B, H, M, D/H)
        return self.proj(_attend(q, k, v, bias).transpose(1, 2).reshape(b, n, d))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v, fused: FlexAttention for a FlexBias, else SDPA (flash /
    memory-efficient kernels)."""
    if isinstance(bias, FlexBias):
        return flex_attend(q, k, v, bias)
    if bias is not None and bias.dtype != q.dtype:
        bias = bias.to(q.dtype)  # CUDA kernels need the mask in the query dtype
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int, out: int | None = None) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim))


class Block(nn.Module):
    """Pre-norm transformer block: biased self-attention, then MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class FusionBlock(nn.Module):
    """Biased self-attention, biased cross-attention to another modality's tokens, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_context = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = CrossAttention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, self_bias: AttentionBias, cross_bias: AttentionBias
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), self_bias)
        x = x + self.cross_attn(self.norm2(x), self.norm_context(context), cross_bias)
        return x + self.mlp(self.norm3(x))


class FusionStage(nn.Module):
    """Bidirectional fusion of two token streams ``a`` and ``b``: each layer updates both from
    the same inputs, each attending to itself and across to the other."""

    def __init__(self, dim: int, heads: int, depth: int, mlp_ratio: float) -> None:
        super().__init__()
        self.a_layers = nn.ModuleList(FusionBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.b_layers = nn.ModuleList(FusionBlock(dim, heads, mlp_ratio) for _ in range(depth))

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, biases: dict[str, AttentionBias]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # a: (B, k_a, D), b: (B, k_b, D); biases "aa", "ab", "bb", "ba": (B|1, H, k_q, k_k), FlexBias or None
        for a_layer, b_layer in zip(self.a_layers, self.b_layers):
            a, b = a_layer(a, b, biases["aa"], biases["ab"]), b_layer(b, a, biases["bb"], biases["ba"])
        return a, b


class Encoder(nn.Module):
    """A ViT without position embeddings: patch embedding, blocks, final norm."""

    def __init__(self, channels: int, dim: int, depth: int, heads: int, patch_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, D)

    def forward(self, x: torch.Tensor, bias: AttentionBias) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


def sincos_embedding(rows: int, cols: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(1, rows*cols, dim)`` fixed 2-D sin-cos position embedding on a patch grid (row-major):
    the first half of the channels encodes the row, the second half the column (as MAE), in
    patches from the grid's centre (:func:`~salibi.models.attention_bias.patch_unit_grid`, the
    ``alibi`` variant's convention): grids of one footprint are centred on one another."""

    def build() -> torch.Tensor:
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
        centres = patch_unit_grid(rows, cols, 1).centres()  # (rows*cols, 2): x east, y north, row-major
        c, r = centres[:, 0], -centres[:, 1]  # column and row offsets from the grid's centre, in patches
        parts = [f(coord.reshape(-1, 1) * omega) for coord in (r, c) for f in (np.sin, np.cos)]
        return torch.from_numpy(np.concatenate(parts, axis=1)).to(device=device, dtype=dtype).unsqueeze(0)

    return device_cached(("sincos", rows, cols, dim, str(device), dtype), build)
