"""Pretraining-step throughput on synthetic data: samples/s, tokens/s, peak memory, MFU.

    python tests/benchmarks/gpu_train_step.py [--model base] [--batch 32] [--steps 50] [--device auto]
                                              [--attention auto|sdpa|flex]

One step = forward (mask 0.5, all three modalities) + backward + AdamW, in bf16 autocast on CUDA.
Synthetic chips of one 1280 m footprint: SAR 2x128x128 and low-res optical 4x128x128 at 10 m,
high-res optical 3x512x512 at 2.5 m -> 64 + 64 + 1024 = 1152 patches of 16 px per sample.
FLOPs are counted once with torch's FlopCounterMode, on SDPA's path (flex does the same
arithmetic); MFU uses the dense bf16 peak of the GPU. ``--attention`` chooses the backend of the
timed steps (auto: flex on CUDA). Runs on CPU too (use --model tiny --batch 4 --steps 3
--attention sdpa to check the script; torch has no FlexAttention backward on the CPU).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from salibi.models import build
from salibi.vocabulary import ATTENTION_BACKENDS, SIZES

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def synthetic_batch(batch: int, patch: int, device: torch.device) -> dict:
    # Sizes in pixels follow the patch size so every model size sees the same ground footprint.
    coarse, fine = 8 * patch, 32 * patch
    return {
        "sar": torch.randn(batch, 2, coarse, coarse, device=device),
        "lores": torch.randn(batch, 4, coarse, coarse, device=device),
        "hires": torch.randn(batch, 3, fine, fine, device=device),
        "gsd": {"sar": 10.0 * 16 / patch, "lores": 10.0 * 16 / patch, "hires": 2.5 * 16 / patch},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base", choices=SIZES)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--attention", default="auto", choices=ATTENTION_BACKENDS)
    args = parser.parse_args()
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build(args.model, channels={"lores": 4}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    batch = synthetic_batch(args.batch, model.config.patch_size, device)
    tokens = sum((batch[m].shape[-1] // model.config.patch_size) ** 2 for m in ("sar", "lores", "hires"))

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(batch)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(out["loss"].detach())

    model.attention = "sdpa"
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    model.attention = args.attention
    compile_start = time.perf_counter()
    for _ in range(args.warmup):  # (flex: compiles each shape family here)
        step()
    if cuda:
        torch.cuda.synchronize()
    warmup_seconds = time.perf_counter() - compile_start
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps

    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    achieved = flops / seconds / 1e12
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    print(
        f"{args.model} on {name}, attention {model.attention_backend()}: batch {args.batch}, {tokens} patches per "
        f"sample, {args.steps} steps, loss {loss:.4f} ({args.warmup} warm-up steps {warmup_seconds:.1f} s)"
    )
    print(
        f"  {seconds * 1e3:.1f} ms/step   {args.batch / seconds:.1f} samples/s   "
        f"{args.batch * tokens / seconds:,.0f} tokens/s"
    )
    print(
        f"  {flops / 1e12:.2f} TFLOP per step   {achieved:.1f} TFLOP/s achieved"
        + (f"   MFU {achieved / peak:.1%} of {peak:.0f} TFLOP/s bf16" if peak else "")
    )
    if cuda:
        print(f"  peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
