"""The flex attention backend on the CPU: the bias it would compute equals SDPA's mask, the
model's flex path gives SDPA's outputs in every variant and attention kind, its compiled CPU
distance kernel equals SDPA at token counts off the block size, and it stores no ``(N, N)`` bias (memory
measured at 4,096 tokens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from salibi.bias import PatchGrid
from salibi.errors import InputError
from salibi.models import build
from salibi.models.attention_bias import TokenGeometry, cache_clear, cache_info
from salibi.models.flex import NO_BIAS, FlexBias, resolve_attention

from .conftest import SMALL, SMALL_GSD, centres, make_batch, numpy_bias, slopes


def flex_bias_as_table(bias: FlexBias) -> np.ndarray:
    """(B, H, nq, nk) = slopes_h * ||c_q - c_k||: what the score_mod adds, computed in numpy."""
    assert bias.query_x is not None and bias.query_y is not None and bias.slopes is not None
    assert bias.key_x is not None and bias.key_y is not None
    query = np.stack([bias.query_x.numpy(), bias.query_y.numpy()], axis=-1).astype(np.float64)  # (B, nq, 2)
    key = np.stack([bias.key_x.numpy(), bias.key_y.numpy()], axis=-1).astype(np.float64)
    distance = np.sqrt(((query[:, :, None, :] - key[:, None, :, :]) ** 2).sum(-1))  # (B, nq, nk)
    return bias.slopes.numpy()[None, :, None, None] * distance[:, None]


def test_auto_is_flex_on_cuda_and_sdpa_elsewhere():
    assert resolve_attention("auto", torch.device("cuda")) == "flex"
    assert resolve_attention("auto", torch.device("cpu")) == "sdpa"
    assert resolve_attention("flex", torch.device("cpu")) == "flex"
    assert resolve_attention("sdpa", torch.device("cuda")) == "sdpa"
    with pytest.raises(InputError, match="attention 'triton': must be one of auto, sdpa, flex"):
        build("tiny", attention="triton")


def test_flex_coordinates_give_the_sdpa_bias_for_kept_and_all_tokens():
    """Masked self, cross between modalities and the decoder's full table, 12 heads."""
    grids = {"lores": PatchGrid(3, 4, 8, 10.0), "hires": PatchGrid(6, 8, 8, 5.0)}
    args = (grids, 80.0, torch.device("cpu"), torch.float32)
    sdpa, flex = TokenGeometry(*args, backend="sdpa"), TokenGeometry(*args, backend="flex")
    generator = torch.Generator().manual_seed(0)
    keep_lores = torch.rand(2, 12, generator=generator).argsort(dim=1)[:, :5].sort(dim=1).values
    keep_hires = torch.rand(2, 48, generator=generator).argsort(dim=1)[:, :20].sort(dim=1).values
    lores, hires = sdpa.ids("lores", keep_lores), sdpa.ids("hires", keep_hires)
    joint = torch.cat([lores, hires], dim=1)
    for query, key in [(lores, lores), (lores, hires), (hires, joint)]:
        expected = sdpa.bias(query, key, 12)
        computed = flex.bias(query, key, 12)
        assert isinstance(expected, torch.Tensor) and isinstance(computed, FlexBias)
        np.testing.assert_allclose(flex_bias_as_table(computed), expected.numpy(), rtol=1e-5, atol=1e-5)
    full = flex.full_bias(["lores", "hires"], ["lores", "hires"], 16)
    assert isinstance(full, FlexBias) and full.query_x is not None and full.query_x.shape == (1, 60)
    every = np.concatenate([centres(3, 4, 8, 10.0), centres(6, 8, 8, 5.0)])
    np.testing.assert_allclose(flex_bias_as_table(full)[0], numpy_bias(every, every, 16, 80.0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full.slopes, -slopes(16), rtol=1e-6)  # type: ignore[arg-type]


def test_flex_model_hands_layers_coordinates_and_caches_no_table():
    torch.manual_seed(0)
    model = build("tiny", attention="flex")
    seen: list = []
    for layer in (model.encoders["hires"].blocks[0].attn, model.decoder_blocks[0].attn):
        layer.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    model.fusion_high.a_layers[0].cross_attn.register_forward_pre_hook(lambda _m, args: seen.append(args[2]))
    cache_clear()
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr("salibi.models.blocks.flex_attend", lambda q, k, v, bias: torch.zeros_like(q))
        model(make_batch(batch=2))
    assert len(seen) == 3 and all(isinstance(b, FlexBias) and b.slopes is not None for b in seen)
    # the cache holds the token coordinates and slopes: a few kilobytes, no (N, N) table
    assert 0 < cache_info()["bytes"] < 8 * 2**10

    model = build("tiny", variant="none", attention="flex")
    assert model.unbiased() is NO_BIAS
    assert build("tiny", variant="none", attention="sdpa").unbiased() is None


def test_flex_refuses_to_train_on_the_cpu_with_a_clear_error():
    model = build("tiny", attention="flex")
    with pytest.raises(InputError, match="cannot train on the CPU .* use attention='sdpa' or 'auto'"):
        model(make_batch(batch=2))


def outputs_of_every_attention_kind(model: torch.nn.Module, variant: str) -> dict[str, torch.Tensor]:
    """Masked self-attention (unimodal encoders), cross-attention (fusion), the decoder (all
    tokens), unmasked self (encode) and cross (encode_joint) outputs, without gradients."""
    batch = make_batch(batch=2, sizes=SMALL, gsd=SMALL_GSD)
    generator = torch.Generator().manual_seed(1)
    noise = {m: torch.rand(2, (h // 8) * (w // 8), generator=generator) for m, (h, w) in SMALL.items()}
    out: dict[str, torch.Tensor] = {}
    hooks = [
        model.encoders[m].register_forward_hook(lambda _m, _a, y, m=m: out.setdefault(f"self {m}", y)) for m in SMALL
    ]
    hooks.append(model.fusion_norm.register_forward_hook(lambda _m, _a, y: out.setdefault(f"cross {len(out)}", y)))
    hooks.append(model.decoder_norm.register_forward_hook(lambda _m, _a, y: out.setdefault("decoder", y)))
    with torch.no_grad():
        out["loss"] = model(batch, noise=noise)["loss"]
        for hook in hooks:
            hook.remove()
        out["encode"] = model.encode(batch["hires"], "hires", SMALL_GSD["hires"])
        if variant in ("scale-alibi", "none"):  # (the others add no new kind of call)
            joint = model.encode_joint({m: batch[m] for m in SMALL}, SMALL_GSD)
            out.update({f"joint {m}": x for m, x in joint.items()})
    return out


@pytest.mark.parametrize("variant", ["scale-alibi", "alibi", "sincos", "none"])
def test_flex_forward_equals_sdpa(variant, monkeypatch):
    """Every variant's flex path through the model (block masks, coordinates, the score_mod) against
    SDPA, run by torch's reference FlexAttention; the compiled kernels: the next test on the CPU,
    tests/models/test_flex_cuda.py (forward and backward) on a GPU."""
    from salibi.models import flex

    monkeypatch.setattr(flex, "_compiled", lambda fn: fn)
    torch.manual_seed(0)
    model = build("tiny", variant=variant, attention="sdpa")
    expected = outputs_of_every_attention_kind(model, variant)
    model.attention = "flex"
    computed = outputs_of_every_attention_kind(model, variant)
    assert sorted(computed) == sorted(expected) and "decoder" in computed and "cross 4" in computed
    for name in expected:
        torch.testing.assert_close(computed[name], expected[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.slow  # inductor compiles the kernel for the CPU: 10-25 s on 2 cores the first time
def test_compiled_cpu_kernel_equals_sdpa_off_the_block_size():
    """The compiled distance kernel a CPU run with attention='flex' uses, at token counts that are
    not a multiple of 16 (8 queries over 24 keys: where torch's CPU kernel gave NaN until
    flex_attend padded them): SDPA's outputs with the bias table computed in numpy. (The kernel
    without a bias: compiled on a GPU by test_flex_cuda.py, its logic here by the test above.)"""
    import torch.nn.functional as F

    from salibi.models.flex import flex_attend

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 2, 8, 16), torch.randn(2, 2, 24, 16), torch.randn(2, 2, 24, 16)
    x, y = torch.rand(2, 32) * 4, torch.rand(2, 32) * 4
    bias = FlexBias(
        query_x=x[:, :8], query_y=y[:, :8], key_x=x[:, 8:], key_y=y[:, 8:], slopes=-torch.tensor([0.5, 0.125])
    )
    table = torch.from_numpy(flex_bias_as_table(bias)).float()
    with torch.no_grad():
        computed = flex_attend(q, k, v, bias)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=table)
    assert torch.isfinite(computed).all()
    torch.testing.assert_close(computed, expected, rtol=1e-5, atol=1e-5)


_MEMORY_CHILD = """
import json, re, sys
from pathlib import Path
import torch
from salibi.models import build
from salibi.models.attention_bias import cache_clear

def resident(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text())[1]) * 1024

torch.set_num_threads(1)
torch.manual_seed(0)
model = build("tiny")
images = torch.randn(1, 3, 512, 512)  # 64 x 64 patches of 8 px
peaks = {}
for attention in ("flex", "sdpa"):
    model.attention = attention
    with torch.no_grad():
        model.encode(images, "hires", 1.0)  # compile, allocate the layers' buffers once
        cache_clear()
        Path("/proc/self/clear_refs").write_text("5")  # restart the resident high-water mark
        before = resident("VmRSS")
        model.encode(images, "hires", 1.0)
        peaks[attention] = resident("VmHWM") - before
print(json.dumps(peaks))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures memory through Linux /proc")
def test_flex_forward_at_4096_tokens_needs_a_fraction_of_sdpa_memory():
    """The unimodal encoder on 64 x 64 patches, one forward each: the resident high-water mark
    of a fresh process whose malloc unmaps every freed block of 64 KiB or more (so neither call
    hides in memory the other freed). SDPA's (1, H, N, N) bias and its table are 320 MB."""
    child = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD],
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
        capture_output=True,
        text=True,
        check=True,
    )
    peaks = json.loads(child.stdout.strip().splitlines()[-1])
    assert peaks["sdpa"] > 4 * 4096 * 4096 * 4  # at least the bias of 4 heads
    assert peaks["flex"] < peaks["sdpa"] / 20, peaks
