"""One biased attention layer, flex (the bias computed in the kernel) against SDPA (a materialised
bias), at pretraining's masked token counts: time, peak memory, and equal outputs and gradients.

    python tests/benchmarks/flex_vs_sdpa.py [--tokens 1024,4096,10000] [--batch 4] [--device auto]
                                            [--repeats 5] [--no-bf16]

Per size: ``base`` widths (12 heads of 64), a chip of ``2 * tokens`` patches at 1 m, of which each
of ``--batch`` samples keeps a different half -- the unimodal self-attention of a pretraining step.
Each call builds its bias as the model does (SDPA: the ``(B, H, k, k)`` gather from the device
table, which is cached here so that the table is built once; flex: the kept tokens' coordinates)
and runs the attention, forward and, on CUDA, forward + backward (torch has no FlexAttention
backward on the CPU). Peak memory is what one call adds above the memory held before it (CUDA:
the allocator's peak; CPU: a child process's resident high-water mark, see peak_memory.py). Both backends are compared
on the same inputs: the largest difference of the outputs and of the gradients of q, k, v.
Ratios are SDPA / flex in this one process.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from peak_memory import measure_in_child, peak_memory

from salibi.bias import PatchGrid
from salibi.models.attention_bias import TokenGeometry, set_cache_limit
from salibi.models.flex import flex_attend

HEADS, HEAD_DIM = 12, 64  # base


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(repeats: int, fn: Callable[[], object], device: torch.device) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def compare(tokens: int, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    rows = max(1, round(math.sqrt(2 * tokens)))
    cols = -(-2 * tokens // rows)
    grid = PatchGrid(rows, cols, 16, 1.0)
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(args.batch, grid.num_patches, generator=generator).argsort(dim=1)[:, :tokens]
    keep = keep.sort(dim=1).values.to(device)  # (B, k) kept patches of each sample
    geometries = {name: TokenGeometry({"hires": grid}, 16.0, device, dtype, backend=name) for name in ("sdpa", "flex")}
    ids = geometries["sdpa"].ids("hires", keep)
    q, k, v = (torch.randn(args.batch, HEADS, tokens, HEAD_DIM, device=device, dtype=dtype) for _ in range(3))
    train = device.type == "cuda"

    def attention(name: str) -> Callable[[], torch.Tensor]:
        geometry = geometries[name]

        def call() -> torch.Tensor:
            bias = geometry.bias(ids, ids, HEADS)
            if isinstance(bias, torch.Tensor):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            return flex_attend(q, k, v, bias)

        return call

    def step(name: str) -> Callable[[], object]:
        forward = attention(name)
        if not train:
            return lambda: torch.no_grad()(forward)()

        def forward_backward() -> None:
            for t in (q, k, v):
                t.grad = None
            forward().float().square().mean().backward()

        return forward_backward

    if args.memory_only:
        memory = {}
        for name in ("sdpa", "flex"):
            fn = step(name)
            fn()  # compile, fill the table cache
            memory[name] = peak_memory(fn, device)
        print(
            f"  {tokens:6d} tokens x batch {args.batch}, peak memory of one call: sdpa {memory['sdpa'] / 2**20:8.1f} MiB"
            f" | flex {memory['flex'] / 2**20:8.1f} MiB | sdpa/flex {memory['sdpa'] / max(memory['flex'], 2**16):7.1f}x"
            f" (+ sdpa's cached table {geometries['sdpa'].num_tokens ** 2 * torch.finfo(dtype).bits // 8 / 2**20:.0f} MiB)"
        )
        return

    # equal results: outputs, and gradients where there is a backward
    results = {}
    for name in ("sdpa", "flex"):
        for t in (q, k, v):
            t.requires_grad_(train)
            t.grad = None
        if train:
            out = attention(name)()
            out.float().square().mean().backward()
            results[name] = [out.detach().float(), *(t.grad.float() for t in (q, k, v))]  # type: ignore[union-attr]
        else:
            with torch.no_grad():
                results[name] = [attention(name)().float()]
    diffs = [(a - b).abs().max().item() for a, b in zip(results["sdpa"], results["flex"])]
    scale = [a.abs().max().item() for a in results["sdpa"]]
    del results

    times = {}
    memory = {}
    for name in ("sdpa", "flex"):
        fn = step(name)
        fn()  # compile, fill the table cache
        if device.type == "cuda":
            memory[name] = peak_memory(fn, device)
        times[name] = best_time(args.repeats, fn, device)
    what = "forward+backward" if train else "forward"
    line = (
        f"  {tokens:6d} tokens x batch {args.batch} ({rows}x{cols} patches, keep half), {what}: "
        f"sdpa {times['sdpa'] * 1e3:8.1f} ms | flex {times['flex'] * 1e3:8.1f} ms | sdpa/flex {times['sdpa'] / times['flex']:5.2f}x"
    )
    if memory:
        table = geometries["sdpa"].num_tokens ** 2 * torch.finfo(dtype).bits // 8
        line += (
            f"; peak memory sdpa {memory['sdpa'] / 2**20:8.1f} MiB | flex {memory['flex'] / 2**20:8.1f} MiB | "
            f"sdpa/flex {memory['sdpa'] / max(memory['flex'], 2**16):7.1f}x (+ sdpa's cached table {table / 2**20:.0f} MiB)"
        )
    print(line)
    names = ["out", "dq", "dk", "dv"][: len(diffs)]
    print(
        "         max |sdpa - flex|: " + ", ".join(f"{n} {d:.1e} (of {s:.1e})" for n, d, s in zip(names, diffs, scale))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tokens", default=None, help="comma-separated kept tokens [CUDA: 1024,4096,10000; CPU: 1024,4096]"
    )
    parser.add_argument("--batch", type=int, default=None, help="samples per call [CUDA: 4, CPU: 1]")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-bf16", action="store_true", help="on CUDA: float32 instead of bfloat16")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)  # the CPU's child process
    args = parser.parse_args()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    args.batch = args.batch or (4 if cuda else 1)
    tokens = [int(t) for t in (args.tokens or ("1024,4096,10000" if cuda else "1024,4096")).split(",")]
    dtype = torch.bfloat16 if cuda and not args.no_bf16 else torch.float32
    set_cache_limit(8 * 2**30)  # keep SDPA's (N, N) device table between calls: time the kernels
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    if not args.memory_only:
        print(f"flex vs sdpa, one self-attention layer of base ({HEADS} heads of {HEAD_DIM}), {dtype}, {where}")
    for n in tokens:
        compare(n, args, device, dtype)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if not cuda and not args.memory_only:
        measure_in_child(["--memory-only", "--device", "cpu", "--tokens", ",".join(map(str, tokens)),
                          "--batch", str(args.batch)])  # fmt: skip


if __name__ == "__main__":
    main()
