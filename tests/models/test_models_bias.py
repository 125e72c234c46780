"""The attention biases the model really uses, captured from its layers, against independent
computations: softmax of the bias with zeroed q/k, masked sub-tables, the numpy ground formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salibi.bias import PatchGrid, scale_alibi_bias
from salibi.models import build
from salibi.models.attention_bias import TokenGeometry, cache_info

from .conftest import SIZES, centres, make_batch, numpy_bias


def capture(module: torch.nn.Module, position: int) -> list:
    """Record argument ``position`` (the bias) of every call to ``module``."""
    seen: list = []
    module.register_forward_pre_hook(lambda _mod, args: seen.append(args[position]))
    return seen


def kept(noise: torch.Tensor, ratio: float = 0.5) -> np.ndarray:
    """The indices the model keeps for this noise: the lowest ones, sorted (independent re-statement)."""
    n = noise.shape[1]
    k = max(1, int(n * (1 - ratio)))
    return np.sort(np.argsort(noise.numpy(), axis=1, kind="stable")[:, :k], axis=1)


def test_zeroed_qk_attention_weights_equal_softmax_of_bias(tiny):
    """With q = k = 0 the attention weights are softmax(bias): read them out with one-hot values."""
    attn = tiny.encoders["hires"].blocks[0].attn
    biases = capture(attn, 1)
    images = torch.randn(1, 3, 64, 64)  # 8 x 8 patches of 8 px
    tiny.encode(images, modality="hires", gsd=10.0)
    bias = biases[0]
    heads, dim = tiny.config.heads, tiny.config.dim
    head_dim, n = dim // heads, 64
    assert bias.shape == (1, heads, n, n)

    with torch.no_grad():
        attn.qkv.weight[: 2 * dim] = 0  # q and k
        attn.qkv.bias.zero_()
        attn.qkv.weight[2 * dim :] = torch.eye(dim)  # v = x
        attn.proj.weight.copy_(torch.eye(dim))
        attn.proj.bias.zero_()
        # sample b, channel (h, c) is one-hot on token b*head_dim + c: output reads column of A_h
        x = torch.zeros(n // head_dim, n, dim)
        for b in range(n // head_dim):
            for c in range(head_dim):
                x[b, b * head_dim + c, c::head_dim] = 1.0
        out = attn(x, bias)  # (n/head_dim, n, dim)
    weights = torch.zeros(heads, n, n)
    for b in range(n // head_dim):
        for h in range(heads):
            weights[h, :, b * head_dim : (b + 1) * head_dim] = out[b, :, h * head_dim : (h + 1) * head_dim]

    grid = centres(8, 8, 8, 10.0)
    assert tiny.config.ref_length == 8 * 10.0  # the model's one L: a patch at 10 m by default
    expected = torch.from_numpy(numpy_bias(grid, grid, heads, ref_length=8 * 10.0)).float().softmax(dim=-1)
    torch.testing.assert_close(weights, expected, rtol=1e-4, atol=1e-6)
    # and far from uniform where the slope is steepest: the bias matters
    assert (expected[0].max(dim=-1).values > 2.0 / n).all()


def test_masked_self_bias_is_the_block_of_the_full_table(tiny):
    """Unimodal self-attention in pretraining: per sample, the full table at the kept indices."""
    biases = capture(tiny.encoders["hires"].blocks[0].attn, 1)
    later = capture(tiny.encoders["hires"].blocks[1].attn, 1)
    batch = make_batch(batch=3)
    noise = {m: torch.rand(3, (SIZES[m][0] // 8) * (SIZES[m][1] // 8)) for m in ("sar", "lores", "hires")}
    tiny(batch, noise=noise)
    bias = biases[0]
    assert later[0] is bias  # built once, shared by every layer

    full = scale_alibi_bias(PatchGrid(12, 12, 8, 2.5), PatchGrid(12, 12, 8, 2.5), 4, ref_length=8 * 10.0)
    keep = kept(noise["hires"])
    assert bias.shape == (3, 4, keep.shape[1], keep.shape[1])
    for b in range(3):
        expected = full[:, keep[b]][:, :, keep[b]]
        np.testing.assert_array_equal(bias[b].numpy(), expected)


@pytest.mark.parametrize("variant", ["scale-alibi", "alibi"])
def test_cross_attention_bias_matches_ground_formula(variant):
    """Joint (SAR + low-res) tokens attending to high-res tokens: true centres, one L per call."""
    torch.manual_seed(0)
    model = build("tiny", variant=variant)
    stage = model.fusion_high
    joint_to_hires = capture(stage.a_layers[0].cross_attn, 2)
    hires_to_joint = capture(stage.b_layers[0].cross_attn, 2)
    sar_to_lores = capture(model.fusion_low.a_layers[0].cross_attn, 2)
    sizes = {"sar": (24, 16), "lores": (24, 16), "hires": (48, 32)}  # 240 m x 160 m; hires at 5 m
    gsd = {"sar": 10.0, "lores": 10.0, "hires": 5.0}
    batch = make_batch(batch=2, sizes=sizes, gsd=gsd)
    noise = {m: torch.rand(2, (sizes[m][0] // 8) * (sizes[m][1] // 8)) for m in sizes}
    model(batch, noise=noise)

    if variant == "scale-alibi":
        ref = 8 * 10.0  # the coarsest patch footprint of the call
        pos = {m: centres(sizes[m][0] // 8, sizes[m][1] // 8, 8, gsd[m]) for m in sizes}
    else:  # each chip's own patch grid, GSD ignored: patch units, the grids centred on one another
        ref = 1.0
        grids = {m: (sizes[m][0] // 8, sizes[m][1] // 8) for m in sizes}
        pos = {m: centres(rows, cols, 1, 1.0) - np.array([cols / 2, -rows / 2]) for m, (rows, cols) in grids.items()}
    keep = {m: kept(noise[m]) for m in sizes}
    for b in range(2):
        joint = np.concatenate([pos["sar"][keep["sar"][b]], pos["lores"][keep["lores"][b]]])
        hires = pos["hires"][keep["hires"][b]]
        np.testing.assert_allclose(joint_to_hires[0][b].numpy(), numpy_bias(joint, hires, 4, ref), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hires_to_joint[0][b].numpy(), numpy_bias(hires, joint, 4, ref), rtol=1e-5, atol=1e-6)
        sar, lores = pos["sar"][keep["sar"][b]], pos["lores"][keep["lores"][b]]
        np.testing.assert_allclose(sar_to_lores[0][b].numpy(), numpy_bias(sar, lores, 4, ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["sincos", "none"])
def test_no_bias_in_sincos_and_none_variants(variant):
    torch.manual_seed(0)
    model = build("tiny", variant=variant)
    self_biases = capture(model.encoders["sar"].blocks[0].attn, 1)
    cross_biases = capture(model.fusion_low.a_layers[0].cross_attn, 2)
    decoder_biases = capture(model.decoder_blocks[0].attn, 1)
    model(make_batch(batch=2))
    assert self_biases == [None] and cross_biases == [None] and decoder_biases == [None]


def test_bias_in_query_dtype_under_bf16_autocast(tiny):
    biases = capture(tiny.encoders["lores"].blocks[0].attn, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(make_batch(batch=2))
    assert biases[0].dtype == torch.bfloat16
    assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
    out["loss"].backward()
    assert tiny.logit_scale.grad is not None


def test_device_tables_are_cached_per_geometry(tiny):
    images = torch.randn(2, 3, 40, 56)
    tiny.encode(images, modality="hires", gsd=0.7)
    before = cache_info()
    tiny.encode(images, modality="hires", gsd=0.7)
    after = cache_info()
    assert after["misses"] == before["misses"] and after["hits"] > before["hits"]
    tiny.encode(images, modality="hires", gsd=0.9)  # a new geometry: built once more
    assert cache_info()["misses"] > after["misses"]


def test_geometry_bias_broadcasts_for_unmasked_ids():
    grids = {"lores": PatchGrid(3, 4, 8, 10.0), "hires": PatchGrid(6, 8, 8, 5.0)}
    geometry = TokenGeometry(grids, 80.0, torch.device("cpu"), torch.float32)
    q, k = geometry.ids("lores"), geometry.ids("hires")
    bias = geometry.bias(q, k, 12)  # 12 heads: the non-power-of-two slope rule
    assert bias.shape == (1, 12, 12, 48)
    expected = numpy_bias(centres(3, 4, 8, 10.0), centres(6, 8, 8, 5.0), 12, 80.0)
    np.testing.assert_allclose(bias[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(geometry.full_bias("lores", "hires", 12), bias)


def test_biases_cached_under_inference_mode_serve_training_later(tiny):
    images = torch.randn(2, 3, 24, 40)
    with torch.inference_mode():
        expected = tiny.encode(images, modality="hires", gsd=3.0)
    tokens = tiny.encode(images, modality="hires", gsd=3.0)  # same geometry: cached bias, with autograd
    tokens.square().mean().backward()
    torch.testing.assert_close(tokens.detach(), expected)
