"""The attention backends, and FlexAttention with the Scale-ALiBi bias computed inside the kernel.

A model runs its attention through one of two backends (``build(..., attention=...)``):

- ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention` with the bias materialised
  as an additive ``attn_mask`` ``(B|1, H, nq, nk)`` (:mod:`salibi.models.attention_bias`);
- ``flex``: :func:`torch.nn.attention.flex_attention.flex_attention` with a ``score_mod`` that
  computes the bias from two tokens' coordinates and the head, so no bias tensor exists at all::

      score_mod(score, b, h, i, j) = score - m_h * ||c_q[b, i] - c_k[b, j]||,   c = centre / L

  The layers receive a :class:`FlexBias` (the coordinates ``c`` of the query and key tokens,
  ``(B|1, n, 2)`` as two ``(B|1, n)`` tensors, and ``-m_h``), a few kilobytes where SDPA's mask
  is ``B * H * nq * nk`` numbers. :data:`NO_BIAS` runs flex without a ``score_mod`` (the
  ``sincos`` and ``none`` variants).
- ``auto``: ``flex`` on CUDA, ``sdpa`` elsewhere (torch has no FlexAttention backward on the
  CPU, and its compiled CPU kernel is slower than SDPA's there).

Both give the same numbers (the flex kernel adds the bias in float32 also under bf16 autocast,
where SDPA adds it in bf16). FlexAttention runs compiled (``torch.compile(..., dynamic=False)``):
each shape family -- batch, heads, token counts, head width, dtype -- compiles once, on first
use, and later calls reuse it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from salibi.errors import InputError
from salibi.vocabulary import ATTENTION_BACKENDS

__all__ = ["ATTENTION_BACKENDS", "NO_BIAS", "FlexBias", "flex_attend", "resolve_attention"]

#: Compiled shape families kept per function before torch falls back to running uncompiled
#: (torch's default is 8; a pretraining step alone uses about a dozen: encoders, fusion, decoder,
#: with and without gradients).
_SHAPE_FAMILIES = 64
#: Tokens per side of the blocks the CPU kernel works in (see :func:`_cpu_block_mask`).
_CPU_BLOCK = 128
#: Token counts the CPU kernel is given are whole multiples of this (see :func:`flex_attend`).
_CPU_PAD = 16


def resolve_attention(requested: str, device: torch.device) -> str:
    """The backend a model whose ``attention`` is ``requested`` uses on ``device``: ``sdpa`` or ``flex``."""
    if requested not in ATTENTION_BACKENDS:
        raise InputError(f"attention {requested!r}: must be one of {', '.join(ATTENTION_BACKENDS)}")
    if requested == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return requested


@dataclass(frozen=True, eq=False)
class FlexBias:
    """What the flex kernel needs to compute ``-m_h * ||c_q - c_k||``: coordinates (centre / L)
    of the query and key tokens, ``(B|1, nq)`` and ``(B|1, nk)`` per axis in float32, and
    ``-m_h`` ``(H,)``. All None: no bias (:data:`NO_BIAS`)."""

    query_x: torch.Tensor | None = None
    query_y: torch.Tensor | None = None
    key_x: torch.Tensor | None = None
    key_y: torch.Tensor | None = None
    slopes: torch.Tensor | None = None


#: Flex attention without a bias (the ``sincos`` and ``none`` variants).
NO_BIAS = FlexBias()


def flex_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: FlexBias) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with FlexAttention: q ``(B, H, nq, E)``, k and v
    ``(B, H, nk, E)`` -> ``(B, H, nq, E)``; the bias computed in the kernel from ``bias``."""
    if q.device.type == "cpu" and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        raise InputError(
            "attention='flex' cannot train on the CPU (torch has no FlexAttention backward there); "
            "use attention='sdpa' or 'auto' on the CPU, or run under torch.no_grad()"
        )
    batch, queries, keys = q.shape[0], q.shape[-2], k.shape[-2]
    coordinates = None
    if bias.slopes is not None:
        assert bias.query_x is not None and bias.query_y is not None
        assert bias.key_x is not None and bias.key_y is not None
        # Coordinates of unmasked calls have batch 1: made (B, n) like the masked ones (a few
        # kilobytes), so both share one compiled kernel per shape.
        coordinates = [c.expand(batch, -1).contiguous() for c in (bias.query_x, bias.query_y, bias.key_x, bias.key_y)]
    block_mask = None
    if q.device.type == "cpu":
        # torch's compiled CPU kernel gives wrong numbers, or NaN, for key counts that are not a
        # multiple of 16 (e.g. 2 queries over 8 keys, 8 over 24): tokens are padded to whole
        # multiples of 16, the padded keys masked out and the padded queries dropped.
        padded_q, padded_k = _whole(queries, _CPU_PAD), _whole(keys, _CPU_PAD)
        q = _pad_tokens(q, padded_q)
        k, v = _pad_tokens(k, padded_k), _pad_tokens(v, padded_k)
        if coordinates is not None:
            coordinates = [_pad_tokens(c, n) for c, n in zip(coordinates, (padded_q, padded_q, padded_k, padded_k))]
        block_mask = _cpu_block_mask(padded_q, keys, padded_k, str(q.device))
    with _room_for_shape_families():
        if coordinates is None:
            out = _compiled(_plain_attention)(q, k, v, block_mask)
        else:
            out = _compiled(_distance_attention)(q, k, v, *coordinates, bias.slopes, block_mask)
    return out[..., :queries, :]


def _whole(tokens: int, multiple: int) -> int:
    return -(-tokens // multiple) * multiple


def _pad_tokens(x: torch.Tensor, tokens: int) -> torch.Tensor:
    """``x`` (``(..., n, E)``, or coordinates ``(B, n)``) with zeros up to ``tokens`` along the token axis."""
    axis = -2 if x.dim() == 4 else -1
    missing = tokens - x.shape[axis]
    if missing == 0:
        return x
    pad = (0, 0, 0, missing) if axis == -2 else (0, missing)
    return torch.nn.functional.pad(x, pad)


def _distance_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    key_x: torch.Tensor,
    key_y: torch.Tensor,
    slopes: torch.Tensor,
    block_mask: Any,
) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    def scale_alibi(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor
    ) -> torch.Tensor:
        dx = query_x[b, i] - key_x[b, j]
        dy = query_y[b, i] - key_y[b, j]
        return score + slopes[h] * torch.sqrt(dx * dx + dy * dy)

    return flex_attention(q, k, v, score_mod=scale_alibi, block_mask=block_mask)


def _plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: Any) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    return flex_attention(q, k, v, block_mask=block_mask)


@functools.lru_cache(maxsize=64)
def _cpu_block_mask(query_tokens: int, key_tokens: int, padded_keys: int, device: str) -> Any:
    """Every query attends to each of the ``key_tokens`` real keys (not the padding up to
    ``padded_keys``), in blocks of 128 x 128 tokens.

    Without a block mask FlexAttention treats the whole table as one block, and its CPU kernel
    then keeps a ``(nq, nk)`` score buffer per thread -- as large as the bias it replaces. On
    CUDA the kernel tiles by itself, and no block mask is passed there.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    def real_key(b: torch.Tensor, h: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return j < key_tokens

    return create_block_mask(real_key, None, None, query_tokens, padded_keys, device=device, BLOCK_SIZE=_CPU_BLOCK)


@functools.cache
def _compiled(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``fn`` compiled once (lazily: importing salibi stays free of torch.compile)."""
    return torch.compile(fn, dynamic=False)


@contextlib.contextmanager
def _room_for_shape_families() -> Iterator[None]:
    """Let torch keep a compiled kernel per shape family of the model, not only its default 8."""
    import torch._dynamo.config as dynamo_config

    patch: dict[str, Any] = {}
    for name in ("recompile_limit", "cache_size_limit"):  # the latter: older torch
        if isinstance(getattr(dynamo_config, name, None), int):
            patch[name] = max(getattr(dynamo_config, name), _SHAPE_FAMILIES)
            break
    with dynamo_config.patch(patch):
        yield
