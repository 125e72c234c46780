"""Pretraining on one GPU (run by tests/benchmarks/gpu_check.sh on a lent machine)."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.cuda


def test_bf16_step_on_cuda_matches_float32_on_cpu():
    from salibi.models import build

    torch.manual_seed(0)
    model = build("tiny")
    batch = {
        "sar": torch.randn(4, 2, 32, 32),
        "lores": torch.randn(4, 3, 32, 32),
        "hires": torch.randn(4, 3, 128, 128),
        "gsd": {"sar": 10.0, "lores": 10.0, "hires": 2.5},
    }
    noise = {m: torch.rand(4, (batch[m].shape[-1] // 8) ** 2) for m in ("sar", "lores", "hires")}
    cpu = model(batch, noise=noise)["loss"].item()
    gpu_model = model.to("cuda")
    gpu_batch = {**{m: batch[m].cuda() for m in noise}, "gsd": batch["gsd"]}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = gpu_model(gpu_batch, noise={m: n.cuda() for m, n in noise.items()})
    out["loss"].backward()
    assert abs(out["loss"].item() - cpu) < 0.05 * abs(cpu)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gpu_model.parameters())


def test_pretrain_on_one_gpu_resumes(tmp_path, aligned_set):
    from salibi.train import PretrainConfig, pretrain

    data = aligned_set
    run = tmp_path / "run"
    summary = pretrain(
        PretrainConfig(
            data=[str(data)], out=str(run), batch_size=8, max_steps=4, gpus=1, save_every=2, log_every=1, progress=False
        )
    )
    assert summary["step"] == 4
    again = pretrain(
        PretrainConfig(
            data=[str(data)],
            out=str(run),
            batch_size=8,
            max_steps=6,
            gpus=1,
            resume=True,
            save_every=2,
            log_every=1,
            progress=False,
        )
    )
    assert again["step"] == 6
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
