"""On a CUDA GPU (skipped elsewhere; run by tests/benchmarks/gpu_check.sh): the flex backend's
losses and gradients equal SDPA's in float32 and under bf16 autocast, ``auto`` picks flex, and
flex at 4,096 tokens needs a fraction of SDPA's memory."""

from __future__ import annotations

import pytest
import torch

from salibi.models import build
from salibi.models.attention_bias import cache_clear
from salibi.models.flex import FlexBias

from .conftest import SMALL, SMALL_GSD, make_batch

pytestmark = pytest.mark.cuda


def losses_and_gradients(model: torch.nn.Module, autocast: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One pretraining step's loss and every parameter's gradient, the masks fixed (small chips:
    few shapes to compile)."""
    batch = make_batch(batch=4, sizes=SMALL, gsd=SMALL_GSD)
    batch = {**{m: batch[m].cuda() for m in SMALL}, "gsd": batch["gsd"]}
    generator = torch.Generator().manual_seed(1)
    noise = {m: torch.rand(4, (h // 8) * (w // 8), generator=generator) for m, (h, w) in SMALL.items()}
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = model(batch, noise=noise)
    out["loss"].backward()
    grads = {name: p.grad.detach().float().clone() for name, p in model.named_parameters() if p.grad is not None}
    return out["loss"].detach().float(), grads


@pytest.mark.parametrize(
    "variant, autocast",
    [("scale-alibi", False), ("scale-alibi", True), ("none", True)],
    ids=["scale-alibi-float32", "scale-alibi-bf16", "none-bf16"],
)
def test_flex_forward_and_backward_equal_sdpa(variant, autocast):
    torch.manual_seed(0)
    model = build("tiny", variant=variant, attention="sdpa").cuda()
    loss_sdpa, grads_sdpa = losses_and_gradients(model, autocast)
    model.attention = "flex"
    loss_flex, grads_flex = losses_and_gradients(model, autocast)
    assert grads_flex.keys() == grads_sdpa.keys() and len(grads_sdpa) > 50
    # bf16: SDPA adds the bias rounded to bf16, flex in float32; both round q, k, v alike
    tolerance = 3e-2 if autocast else 1e-4
    torch.testing.assert_close(loss_flex, loss_sdpa, rtol=tolerance, atol=tolerance)
    for name, expected in grads_sdpa.items():
        error = (grads_flex[name] - expected).norm() / expected.norm().clamp(min=1e-12)
        assert error < (5e-2 if autocast else 1e-3), f"{name}: relative gradient difference {error:.2e}"


def test_auto_attention_is_flex_on_cuda():
    torch.manual_seed(0)
    model = build("tiny").cuda()
    seen: list = []
    model.decoder_blocks[0].attn.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    loss, _ = losses_and_gradients(model, autocast=True)
    assert model.attention_backend() == "flex" and isinstance(seen[0], FlexBias)
    assert torch.isfinite(loss)


def test_flex_forward_at_4096_tokens_needs_a_fraction_of_sdpa_memory():
    torch.manual_seed(0)
    model = build("tiny").cuda()
    images = torch.randn(2, 3, 512, 512, device="cuda")
    peaks = {}
    for attention in ("flex", "sdpa"):
        model.attention = attention
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model.encode(images, "hires", 1.0)  # compile
            cache_clear()
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            model.encode(images, "hires", 1.0)
            torch.cuda.synchronize()
            peaks[attention] = torch.cuda.max_memory_allocated() - before
    assert peaks["flex"] < peaks["sdpa"] / 10, peaks
