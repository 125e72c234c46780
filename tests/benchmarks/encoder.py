"""Encoder speed and memory: salibi's SDPA and flex attention against the authors' einsum attention.

    python tests/benchmarks/encoder.py [--repeats 3] [--batch 2] [--image 512] [--device auto]
                                       [--memory-tokens 1024,4096] [--skip-encoder] [--skip-memory]
                                       [--train-batch-tiny 16] [--train-batch-base 2] [--skip-train]

1. The ``base`` unimodal encoder (ViT-B widths: dim 768, depth 12, 12 heads, patch 16) on
   ``--image`` px chips (512 px: 1024 tokens), Scale-ALiBi bias, forward (inference mode) and
   forward + backward, against the same encoder -- same weights, same blocks -- whose attention
   is written the way the authors' code does it (CROMA-style): ``einsum`` scores, the bias
   materialised per batch element (``bias.repeat(B, 1, 1, 1)`` once per forward) and added in
   every layer, softmax, ``einsum`` with the values. Targets on CPU: inference >= 1.5x,
   forward + backward >= 1.8x. The same encoder with flex attention (the bias computed in the
   kernel; forward only on the CPU, where torch has no FlexAttention backward). All outputs
   are compared, so the speed-ups are for equal results.
2. Peak memory of one forward of that encoder at ``--memory-tokens`` (batch 1): einsum, SDPA
   and flex (CUDA: the allocator's peak; CPU: the resident high-water mark of a child process,
   see memory.py).
3. A full pretraining step (all three modalities, mask 0.5, forward + backward + AdamW) of
   ``tiny`` and ``base``: input patches per second, and achieved TFLOP/s (FLOPs counted once with
   torch's FlopCounterMode through SDPA's math path); with ``--peak-tflops`` (or a known GPU)
   also MFU.

Everything runs in this one process; ratios are what matters. On CUDA it uses bf16 autocast
(biases in bf16, as the model builds them) and synchronises around each timing.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import torch
from peak_memory import measure_in_child, peak_memory
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from salibi.models import blocks, build
from salibi.models.attention_bias import cache_clear
from salibi.models.blocks import Attention, Encoder

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, SXM


class EinsumAttention(nn.Module):
    """The authors' attention (after CROMA): einsum scores + a per-batch-element bias, softmax."""

    def __init__(self, fused: Attention) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = fused.heads, fused.qkv, fused.proj  # shared weights

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = torch.einsum("bhid,bhjd->bhij", q, k) * (d // self.heads) ** -0.5
        scores = scores + bias  # (B, H, N, N)
        out = torch.einsum("bhij,bhjd->bhid", scores.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class AuthorsEncoder(nn.Module):
    """The same encoder (same modules and weights) with einsum attention and a materialised bias."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.attentions = [EinsumAttention(block.attn) for block in encoder.blocks]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        bias = bias.repeat(x.shape[0], 1, 1, 1)  # materialised per batch element, as the authors do
        for block, attn in zip(self.encoder.blocks, self.attentions):
            x = x + attn(block.norm1(x), bias)
            x = x + block.mlp(block.norm2(x))
        return self.encoder.norm(x)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(repeats: int, *fns: Callable[[], object], device: torch.device) -> list[float]:
    """Best time of each function, run in turns (so a busy machine slows both alike)."""
    for fn in fns:
        fn()  # warm-up (kernels, caches, allocator)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            gc.collect()
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def encoder_comparison(args: argparse.Namespace, device: torch.device, autocast: bool) -> None:
    torch.manual_seed(0)
    model = build("base").to(device)
    c = model.config
    encoder = model.encoders["hires"]
    authors = AuthorsEncoder(encoder)
    n = (args.image // c.patch_size) ** 2
    images = torch.randn(args.batch, 3, args.image, args.image, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
    biases = {}
    with amp:
        for attention in ("sdpa", "flex"):
            model.attention = attention
            geometry = model.geometry({"hires": (args.image, args.image)}, {"hires": 1.0})
            biases[attention] = geometry.full_bias("hires", "hires", c.heads)  # sdpa: (1, H, N, N), cached
    print(
        f"base encoder: dim {c.dim}, depth {c.depth}, {c.heads} heads, {n} tokens, batch {args.batch}, "
        f"{'bf16 autocast' if autocast else 'float32'} on {device}"
    )

    def ours(attention: str) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with amp:
                return encoder(model.patch_tokens(images, "hires"), biases[attention])

        return run

    def theirs() -> torch.Tensor:
        with amp:
            return authors(model.patch_tokens(images, "hires"), biases["sdpa"])

    with torch.inference_mode():
        expected = theirs().float()
        errors = {a: (ours(a)().float() - expected).abs().max().item() for a in ("sdpa", "flex")}
        del expected
        t_sdpa, t_flex, t_theirs = best_of(args.repeats, ours("sdpa"), ours("flex"), theirs, device=device)
    print(
        f"  inference        sdpa {t_sdpa * 1e3:9.1f} ms   flex {t_flex * 1e3:9.1f} ms   authors {t_theirs * 1e3:9.1f} ms"
        f"   authors/sdpa {t_theirs / t_sdpa:5.2f}x (target >= 1.5x)   authors/flex {t_theirs / t_flex:5.2f}x"
        f"   max |diff| sdpa {errors['sdpa']:.1e} flex {errors['flex']:.1e}"
    )

    def train(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            model.zero_grad(set_to_none=True)
            fn().float().square().mean().backward()

        return step

    def free_attention() -> torch.Tensor:
        """The same step with attention that costs nothing (it returns v): what the blocks shared
        with the authors' encoder (linear layers, norms, MLP) cost alone."""
        real, blocks._attend = blocks._attend, lambda q, k, v, bias: v * 1.0
        try:
            return ours("sdpa")()
        finally:
            blocks._attend = real

    trained = ["sdpa", "flex"] if device.type == "cuda" else ["sdpa"]  # no FlexAttention backward on the CPU
    *t_ours, t_free, t_theirs = best_of(
        args.repeats, *(train(ours(a)) for a in trained), train(free_attention), train(theirs), device=device
    )
    print(
        "  forward+backward "
        + "".join(f"{a} {t * 1e3:9.1f} ms   " for a, t in zip(trained, t_ours))
        + f"authors {t_theirs * 1e3:9.1f} ms   "
        + "   ".join(f"authors/{a} {t_theirs / t:5.2f}x" for a, t in zip(trained, t_ours))
        + " (target >= 1.8x)"
    )
    print(
        f"  bound            attention free {t_free * 1e3:9.1f} ms   authors/(attention free) {t_theirs / t_free:5.2f}x: "
        f"no attention can do better; attention alone sdpa {(t_ours[0] - t_free) * 1e3:.0f} ms, authors "
        f"{(t_theirs - t_free) * 1e3:.0f} ms ({(t_theirs - t_free) / max(t_ours[0] - t_free, 1e-9):.2f}x)"
    )
    if device.type == "cuda":
        peaks = {a: peak_memory(train(ours(a)), device) for a in trained}
        peaks["authors"] = peak_memory(train(theirs), device)
        print("  peak memory      " + "   ".join(f"{a} {m / 2**20:9.0f} MiB" for a, m in peaks.items()))
    del model, encoder, authors


def encoder_memory(tokens: list[int], device: torch.device, autocast: bool) -> None:
    """Peak memory of one forward of the base encoder (batch 1, unmasked) per attention: the
    authors' einsum with the bias materialised per batch element, SDPA with the cached bias,
    flex with none. Each forward builds its bias from an empty device cache, as a first call does."""
    torch.manual_seed(0)
    model = build("base").to(device)
    encoder, c = model.encoders["hires"], model.config
    authors = AuthorsEncoder(encoder)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
    print("base encoder forward, batch 1: peak memory above what is held before the call")
    for n in tokens:
        side = round(n**0.5) * c.patch_size
        images = torch.randn(1, 3, side, side, device=device)
        peaks = {}
        for name in ("authors", "sdpa", "flex"):
            model.attention = "sdpa" if name == "authors" else name

            def forward(name: str = name) -> None:
                with amp, torch.no_grad():
                    geometry = model.geometry({"hires": (side, side)}, {"hires": 1.0})
                    assert geometry is not None
                    bias = geometry.full_bias("hires", "hires", c.heads)
                    x = model.patch_tokens(images, "hires")
                    if name == "authors":
                        assert isinstance(bias, torch.Tensor)
                        authors(x, bias)
                    else:
                        encoder(x, bias)

            forward()  # compile (flex), allocator warm-up
            cache_clear()
            peaks[name] = peak_memory(forward, device)
            cache_clear()
        print(
            f"  {(side // c.patch_size) ** 2:6d} tokens: "
            + "   ".join(f"{a} {m / 2**20:8.0f} MiB" for a, m in peaks.items())
            + f"   sdpa/flex {peaks['sdpa'] / max(peaks['flex'], 2**20):6.1f}x"
        )
    del model, encoder, authors


def training_step(
    size: str, batch: int, chips: dict, args: argparse.Namespace, device: torch.device, autocast: bool
) -> None:
    torch.manual_seed(0)
    model = build(size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    data = {
        m: torch.randn(batch, {"sar": 2, "lores": 3, "hires": 3}[m], s, s, device=device) for m, (s, _) in chips.items()
    }
    data["gsd"] = {m: g for m, (_, g) in chips.items()}
    p = model.config.patch_size
    patches = batch * sum((s // p) ** 2 for s, _ in chips.values())
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            out = model(data, mask_ratio=0.5)
        out["loss"].backward()
        optimizer.step()

    model.attention = "sdpa"  # FLOPs counted on SDPA's math path; the same for flex
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        with amp:
            out = model(data, mask_ratio=0.5)
        out["loss"].backward()
    flops = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    model.attention = args.attention
    (seconds,) = best_of(args.repeats, step, device=device)
    tflops = flops / seconds / 1e12
    line = (
        f"  train step {size:5s} batch {batch:3d} {model.attention_backend()}: {seconds * 1e3:9.1f} ms, {patches / seconds:10.0f} input patches/s "
        f"({batch / seconds:7.1f} samples/s), {flops / 1e12:7.3f} TFLOP/step, {tflops:7.2f} TFLOP/s"
    )
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    if peak:
        line += f", MFU {100 * tflops / peak:5.1f}% of {peak:g}"
    print(line)
    del model, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (best is kept)")
    parser.add_argument("--batch", type=int, default=2, help="batch of the encoder comparison")
    parser.add_argument("--image", type=int, default=512, help="chip size in px for the encoder comparison")
    parser.add_argument("--train-batch-tiny", type=int, default=16)
    parser.add_argument("--train-batch-base", type=int, default=2)
    parser.add_argument(
        "--memory-tokens", default="1024,4096", help="comma-separated token counts of the memory comparison"
    )
    parser.add_argument("--skip-encoder", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)  # the CPU's child process
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--attention", default="auto", choices=["auto", "sdpa", "flex"], help="of the training steps")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-bf16", action="store_true", help="on CUDA: float32 instead of bf16 autocast")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOP/s for MFU")
    args = parser.parse_args()

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    autocast = device.type == "cuda" and not args.no_bf16
    if args.memory_only:
        args.skip_encoder = args.skip_train = True
    elif device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")

    if not args.skip_encoder:
        encoder_comparison(args, device, autocast)
    if not args.skip_memory:
        if device.type == "cpu" and not args.memory_only:
            measure_in_child(["--memory-only", "--device", "cpu", "--memory-tokens", args.memory_tokens])
        else:
            encoder_memory([int(t) for t in args.memory_tokens.split(",")], device, autocast)
    if not args.skip_train:
        print("full pretraining step (sar + lores + hires, mask 0.5, AdamW):")
        # tiny: a demo-sized 240 m footprint; base: 640 m, hires at 1.25 m (1024 patches of 16 px)
        training_step(
            "tiny",
            args.train_batch_tiny,
            {"sar": (24, 10.0), "lores": (24, 10.0), "hires": (96, 2.5)},
            args,
            device,
            autocast,
        )
        training_step(
            "base",
            args.train_batch_base,
            {"sar": (64, 10.0), "lores": (64, 10.0), "hires": (512, 1.25)},
            args,
            device,
            autocast,
        )


if __name__ == "__main__":
    main()
