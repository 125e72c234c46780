"""On a CUDA GPU (skipped elsewhere; run by tests/benchmarks/gpu_check.sh): bf16 autocast
training with biases in the query dtype, encoding equal to the CPU's, loading onto the GPU."""

from __future__ import annotations

import pytest
import torch

from salibi.models import build, load_checkpoint, save_checkpoint

from .conftest import make_batch

pytestmark = pytest.mark.cuda


def test_bf16_autocast_training_step_on_cuda():
    torch.manual_seed(0)
    model = build("tiny", attention="sdpa").cuda()  # (flex's biases: tests/models/test_flex_cuda.py)
    biases = []
    model.fusion_high.a_layers[0].cross_attn.register_forward_pre_hook(lambda _m, args: biases.append(args[2]))
    batch = make_batch(batch=4)
    batch = {**{m: batch[m].cuda() for m in ("sar", "lores", "hires")}, "gsd": batch["gsd"]}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(batch)
    assert biases[0].dtype == torch.bfloat16 and biases[0].device.type == "cuda"
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_cuda_encoding_matches_cpu_and_checkpoints_load_onto_the_gpu(tmp_path):
    torch.manual_seed(0)
    model = build("tiny")
    images = torch.randn(2, 3, 40, 56)
    expected = model.encode(images, modality="hires", gsd=1.5)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "c"), map_location="cuda")
    assert loaded.device.type == "cuda"
    with torch.inference_mode():
        tokens = loaded.encode(images.cuda(), modality="hires", gsd=1.5)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = loaded.encode(images.cuda(), modality="hires", gsd=1.5)
    torch.testing.assert_close(tokens.cpu(), expected, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(low.float().cpu(), expected, rtol=0.1, atol=0.1)
