"""Bias-table build speed: the Rust core against numpy, the authors' approach and memory bandwidth.

    python tests/benchmarks/bias_tables.py [--repeats 5]

Geometry: 16 heads, 32x32 patches at 2 m (query) against 64x64 patches at 1 m (key), patch 16,
so a (16, 1024, 4096) float32 table of 256 MiB. Everything runs in this one process; the
ratios are what matters. Targets: core >= 15x the authors' approach, >= 2.5x numpy, within
1.5x of the bandwidth bound; cached repeat >= 100x a fresh build; masked sub-tables (batch 32,
keep 0.5) >= 10x repeat+gather.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from salibi import bias
from salibi.bias import PatchGrid

HEADS = 16
QUERY = PatchGrid(32, 32, 16, 2.0)
KEY = PatchGrid(64, 64, 16, 1.0)


def best_of(repeats, fn, setup=None):
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return min(times)


def numpy_build(query, key, heads):
    """A straightforward vectorised numpy build of the same table."""
    cq, ck = query.centres(), key.centres()
    length = max(query.footprint, key.footprint)
    dx = cq[:, 0, None] - ck[None, :, 0]
    dy = cq[:, 1, None] - ck[None, :, 1]
    distance = (np.sqrt(dx * dx + dy * dy) / length).astype(np.float32)
    slopes = bias.alibi_slopes(heads)
    return -slopes[:, None, None] * distance[None]


def authors_build(query, key, heads):
    """The authors' approach: torch meshgrid of patch coordinates and a norm over all pairs,
    scaled per GSD, generalised from one grid to two."""

    def coords(grid):
        rows, cols = torch.meshgrid(torch.arange(grid.rows), torch.arange(grid.cols), indexing="ij")
        points = torch.stack([cols.flatten(), rows.flatten()], dim=-1).float() + 0.5
        return points * grid.footprint

    pq, pk = coords(query), coords(key)
    distance = torch.norm(pq[:, None, :] - pk[None, :, :], dim=-1) / max(query.footprint, key.footprint)
    slopes = torch.from_numpy(bias.alibi_slopes(heads))
    return (-slopes[:, None, None] * distance[None]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    out_bytes = HEADS * QUERY.num_patches * KEY.num_patches * 4
    print(
        f"table: {HEADS} heads x {QUERY.num_patches} x {KEY.num_patches} float32 = {out_bytes / 2**20:.0f} MiB, "
        f"{torch.get_num_threads()} threads"
    )

    # Correctness first: the three builders agree.
    bias.cache_clear()
    core = bias.scale_alibi_bias(QUERY, KEY, HEADS)
    np.testing.assert_allclose(core, numpy_build(QUERY, KEY, HEADS), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(core, authors_build(QUERY, KEY, HEADS), rtol=1e-4, atol=1e-5)
    del core

    t_core = best_of(args.repeats, lambda: bias.scale_alibi_bias(QUERY, KEY, HEADS), setup=bias.cache_clear)
    t_numpy = best_of(max(2, args.repeats // 2), lambda: numpy_build(QUERY, KEY, HEADS))
    t_authors = best_of(max(2, args.repeats // 2), lambda: authors_build(QUERY, KEY, HEADS))

    source = np.ones(out_bytes // 4, dtype=np.float32)
    t_copy_fresh = best_of(args.repeats, lambda: source.copy())  # fresh output pages, like any new table
    mapped = np.empty_like(source)
    mapped.fill(0)
    t_copy_mapped = best_of(args.repeats, lambda: np.copyto(mapped, source))
    del source, mapped

    bias.cache_clear()
    bias.scale_alibi_bias(QUERY, KEY, HEADS)
    t_cached = best_of(50, lambda: bias.scale_alibi_bias(QUERY, KEY, HEADS))

    print(f"core (fresh build)        {t_core * 1e3:9.2f} ms   {out_bytes / t_core / 1e9:5.1f} GB/s")
    print(
        f"numpy vectorised          {t_numpy * 1e3:9.2f} ms   core is {t_numpy / t_core:5.1f}x faster (target >= 2.5x)"
    )
    print(
        f"authors' torch approach   {t_authors * 1e3:9.2f} ms   core is {t_authors / t_core:5.1f}x faster (target >= 15x)"
    )
    print(
        f"bound: copy, fresh output {t_copy_fresh * 1e3:9.2f} ms   core is {t_core / t_copy_fresh:5.2f}x the bound "
        f"(target <= 1.5x)"
    )
    print(f"      copy, mapped output {t_copy_mapped * 1e3:9.2f} ms   core is {t_core / t_copy_mapped:5.2f}x")
    print(
        f"cached repeat             {t_cached * 1e6:9.2f} us   {t_core / t_cached:8.0f}x faster than fresh "
        f"(target >= 100x)"
    )

    # Masked pre-training: batch 32, keep half the tokens of each grid, distances only
    # (slopes are applied on the device).
    batch, rng = 32, np.random.default_rng(0)
    keep_q, keep_k = QUERY.num_patches // 2, KEY.num_patches // 2
    query_idx = np.stack([np.sort(rng.permutation(QUERY.num_patches)[:keep_q]) for _ in range(batch)])
    key_idx = np.stack([np.sort(rng.permutation(KEY.num_patches)[:keep_k]) for _ in range(batch)])

    def repeat_and_gather():
        full = torch.from_numpy(np.array(bias.ground_distance_table(QUERY, KEY)))
        repeated = full.unsqueeze(0).repeat(batch, 1, 1)  # (B, Nq, Nk): a full table per element
        qi, ki = torch.from_numpy(query_idx), torch.from_numpy(key_idx)
        rows = torch.gather(repeated, 1, qi[:, :, None].expand(-1, -1, KEY.num_patches))
        return torch.gather(rows, 2, ki[:, None, :].expand(-1, keep_q, -1))

    cached = torch.from_numpy(np.array(bias.ground_distance_table(QUERY, KEY)))
    qi_t, ki_t = torch.from_numpy(query_idx), torch.from_numpy(key_idx)

    def gather_cached():  # what the model does off the CPU: index one cached table
        return cached[qi_t[:, :, None], ki_t[:, None, :]]

    masked = bias.masked_distance_table(QUERY, KEY, query_idx, key_idx)
    np.testing.assert_array_equal(masked, repeat_and_gather().numpy())
    np.testing.assert_array_equal(masked, gather_cached().numpy())
    del masked
    t_masked = best_of(args.repeats, lambda: bias.masked_distance_table(QUERY, KEY, query_idx, key_idx))
    t_gather = best_of(max(2, args.repeats // 2), repeat_and_gather)
    t_cached_gather = best_of(args.repeats, gather_cached)
    masked_bytes = batch * keep_q * keep_k * 4
    repeated_bytes = batch * QUERY.num_patches * KEY.num_patches * 4
    print(f"masked sub-tables (B={batch}, keep 0.5)  {t_masked * 1e3:8.2f} ms, {masked_bytes / 2**20:.0f} MiB out")
    print(
        f"repeat + gather                       {t_gather * 1e3:8.2f} ms, {repeated_bytes / 2**20:.0f} MiB repeated; "
        f"core is {t_gather / t_masked:5.1f}x faster (target >= 10x)"
    )
    print(
        f"gather from the cached table          {t_cached_gather * 1e3:8.2f} ms; "
        f"core is {t_cached_gather / t_masked:5.1f}x faster"
    )


if __name__ == "__main__":
    main()
