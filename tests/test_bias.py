"""salibi.bias against an independent numpy computation of the formula in DESIGN.md."""

from __future__ import annotations

import math

import numpy as np
import pytest

from salibi import bias
from salibi.bias import PatchGrid


def reference_centres(rows, cols, patch_px, gsd, origin):
    """Patch centres straight from the formula, float64, row-major."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    x = origin[0] + (c.ravel() + 0.5) * patch_px * gsd
    y = origin[1] - (r.ravel() + 0.5) * patch_px * gsd
    return np.stack([x, y], axis=1)


def reference_slopes(heads):
    """Press et al.'s published recipe, written independently of the core."""

    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + reference_slopes(2 * closest)[0::2][: heads - closest]


def reference_bias(q, k, heads, ref_length=None):
    cq = reference_centres(q.rows, q.cols, q.patch_px, q.gsd, q.origin)
    ck = reference_centres(k.rows, k.cols, k.patch_px, k.gsd, k.origin)
    length = ref_length or max(q.patch_px * q.gsd, k.patch_px * k.gsd)
    distance = np.linalg.norm(cq[:, None, :] - ck[None, :, :], axis=-1) / length
    slopes = np.asarray(reference_slopes(heads))
    return -slopes[:, None, None] * distance[None]


def random_grid(rng, patch_px=None, origin_scale=1e6):
    return PatchGrid(
        int(rng.integers(1, 9)),
        int(rng.integers(1, 9)),
        int(patch_px or rng.integers(1, 33)),
        float(rng.uniform(0.1, 60.0)),
        (float(rng.uniform(-origin_scale, origin_scale)), float(rng.uniform(-origin_scale, origin_scale))),
    )


@pytest.mark.parametrize("heads", [1, 2, 3, 5, 6, 8, 12, 16])
def test_slopes_match_press_et_al(heads):
    np.testing.assert_allclose(bias.alibi_slopes(heads), reference_slopes(heads), rtol=1e-6)


def test_power_of_two_slopes_are_the_design_formula():
    heads = 8
    expected = [2 ** (-8 * (h + 1) / heads) for h in range(heads)]
    np.testing.assert_allclose(bias.alibi_slopes(heads), expected, rtol=1e-7)


@pytest.mark.parametrize("seed", range(12))
def test_bias_matches_numpy_on_random_geometries(seed):
    rng = np.random.default_rng(seed)
    # Cross-scale pairs share a patch size, as chips of one model do; offsets are arbitrary.
    q = random_grid(rng, patch_px=16)
    k = PatchGrid(
        int(rng.integers(1, 17)),
        int(rng.integers(1, 17)),
        16,
        q.gsd / rng.choice([1, 2, 4, 8]),
        (q.origin[0] + rng.uniform(-500, 500), q.origin[1] + rng.uniform(-500, 500)),
    )
    heads = int(rng.integers(1, 17))
    got = bias.scale_alibi_bias(q, k, heads)
    expected = reference_bias(q, k, heads)
    assert got.shape == (heads, q.num_patches, k.num_patches)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-5)


def test_explicit_reference_length_and_distance_table():
    rng = np.random.default_rng(99)
    q, k = random_grid(rng), random_grid(rng)
    # Distances of chips ~1000 km apart relative to L=1e3 m stay accurate in float32.
    got = bias.ground_distance_table(q, k, ref_length=1000.0)
    expected = -reference_bias(q, k, 1, ref_length=1000.0)[0] / reference_slopes(1)[0]
    np.testing.assert_allclose(got, expected, rtol=2e-5)


def test_same_gsd_is_plain_2d_alibi_on_the_patch_grid():
    g = PatchGrid(6, 7, 16, 10.0, (431_000.0, 5_200_000.0))
    rows, cols = np.divmod(np.arange(42), 7)
    grid_distance = np.hypot(rows[:, None] - rows[None], cols[:, None] - cols[None])
    np.testing.assert_allclose(bias.ground_distance_table(g, g), grid_distance, atol=1e-5)
    slopes = bias.alibi_slopes(4)
    np.testing.assert_allclose(bias.scale_alibi_bias(g, g, 4), -slopes[:, None, None] * grid_distance, atol=1e-5)


def test_four_times_finer_chip_scales_distances_by_a_quarter():
    coarse = PatchGrid(4, 4, 16, 10.0)
    fine = PatchGrid(16, 16, 16, 2.5)
    fine_self = bias.ground_distance_table(fine, fine, ref_length=coarse.footprint)
    rows, cols = np.divmod(np.arange(256), 16)
    grid_distance = np.hypot(rows[:, None] - rows[None], cols[:, None] - cols[None])
    np.testing.assert_allclose(fine_self, grid_distance / 4, atol=1e-5)


def test_cross_scale_uses_true_centres():
    coarse = PatchGrid(4, 4, 16, 10.0)
    fine = PatchGrid(16, 16, 16, 2.5)
    cross = bias.ground_distance_table(coarse, fine)
    assert cross.shape == (16, 256)
    # Coarse patch 0 is centred at (80, -80) m and covers fine patches (0..3, 0..3), whose
    # centres are 20 m and 60 m off on each axis: four of them at hypot(20, 20).
    assert cross[0].min() == pytest.approx(math.hypot(20, 20) / 160, rel=1e-5)
    assert np.sum(np.isclose(cross[0], math.hypot(20, 20) / 160, rtol=1e-5)) == 4
    # A strided slice of the fine self-table (the authors' shortcut) would put coarse patch 0
    # on fine patch 0's centre, at distance 0 from it, which is not where it is.
    strided = bias.ground_distance_table(fine, fine, ref_length=160.0)[::4][:16]
    assert strided[0, 0] == 0.0 and cross[0, 0] > 0.1


def test_symmetry_swapping_query_and_key_transposes():
    rng = np.random.default_rng(5)
    for _ in range(5):
        q, k = random_grid(rng, patch_px=8), random_grid(rng, patch_px=8)
        np.testing.assert_allclose(bias.ground_distance_table(q, k), bias.ground_distance_table(k, q).T, rtol=1e-5)


def test_repeat_is_a_cache_hit_sharing_read_only_memory():
    bias.cache_clear()
    q, k = PatchGrid(5, 5, 16, 3.0), PatchGrid(10, 10, 16, 1.5)
    first = bias.scale_alibi_bias(q, k, 8)
    second = bias.scale_alibi_bias(q, k, 8)
    info = bias.cache_info()
    assert (info["hits"], info["misses"], info["entries"]) == (1, 1, 1)
    assert info["bytes"] == first.nbytes
    assert np.shares_memory(first, second)
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1.0
    # A different head count is a different table.
    bias.scale_alibi_bias(q, k, 4)
    assert bias.cache_info()["misses"] == 2


def test_cache_is_bounded():
    bias.cache_clear(max_bytes=50_000)
    try:
        for gsd in (1.0, 2.0, 3.0, 4.0):
            bias.ground_distance_table(PatchGrid(8, 8, 16, gsd), PatchGrid(8, 8, 16, gsd))  # 16 KiB each
        info = bias.cache_info()
        assert info["bytes"] <= 50_000
        assert info["entries"] == 3
    finally:
        bias.cache_clear(max_bytes=1 << 30)


def test_cached_array_outlives_cache_eviction():
    bias.cache_clear()
    table = bias.ground_distance_table(PatchGrid(3, 3, 16, 1.0), PatchGrid(3, 3, 16, 1.0))
    expected = table.copy()
    bias.cache_clear()
    np.testing.assert_array_equal(table, expected)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_masked_sub_table_is_the_matching_block_of_the_full_table(dtype):
    rng = np.random.default_rng(3)
    q, k = PatchGrid(8, 8, 16, 4.0), PatchGrid(16, 16, 16, 2.0, (10.0, -10.0))
    batch, keep_q, keep_k, heads = 4, 32, 128, 6
    qi = np.stack([rng.permutation(q.num_patches)[:keep_q] for _ in range(batch)]).astype(dtype)
    ki = np.stack([rng.permutation(k.num_patches)[:keep_k] for _ in range(batch)]).astype(dtype)
    full = bias.scale_alibi_bias(q, k, heads)
    sub = bias.masked_scale_alibi_bias(q, k, heads, qi, ki)
    assert sub.shape == (batch, heads, keep_q, keep_k)
    for b in range(batch):
        np.testing.assert_array_equal(sub[b], full[:, qi[b]][:, :, ki[b]])
    dist = bias.masked_distance_table(q, k, qi, ki)
    assert dist.shape == (batch, keep_q, keep_k)
    np.testing.assert_array_equal(dist[1], bias.ground_distance_table(q, k)[qi[1]][:, ki[1]])


def test_masked_table_accepts_non_contiguous_indices():
    q = PatchGrid(4, 8, 16, 1.0)
    idx = np.arange(32).reshape(2, 16)[:, ::2]
    assert not idx.flags.c_contiguous
    out = bias.masked_distance_table(q, q, idx, idx)
    np.testing.assert_array_equal(out[0], bias.ground_distance_table(q, q)[idx[0]][:, idx[0]])


@pytest.mark.parametrize(
    ("call", "exception", "argument"),
    [
        (lambda: PatchGrid(0, 4, 16, 1.0), ValueError, "rows"),
        (lambda: PatchGrid(4, -1, 16, 1.0), ValueError, "cols"),
        (lambda: PatchGrid(4, 4, 0, 1.0), ValueError, "patch_px"),
        (lambda: PatchGrid(4, 4, 16, 0.0), ValueError, "gsd"),
        (lambda: PatchGrid(4, 4, 16, -2.0), ValueError, "gsd"),
        (lambda: PatchGrid(4, 4, 16, float("nan")), ValueError, "gsd"),
        (lambda: PatchGrid(4, 4, 16, 1.0, (float("inf"), 0.0)), ValueError, "origin"),
        (lambda: bias.scale_alibi_bias(PatchGrid(2, 2, 16, 1.0), PatchGrid(2, 2, 16, 1.0), 0), ValueError, "heads"),
        (
            lambda: bias.ground_distance_table(PatchGrid(2, 2, 16, 1.0), PatchGrid(2, 2, 16, 1.0), -1.0),
            ValueError,
            "ref_length",
        ),
        (lambda: bias.alibi_slopes(-3), ValueError, "heads"),
    ],
)
def test_bad_geometry_raises_naming_the_argument(call, exception, argument):
    with pytest.raises(exception, match=rf"^{argument}"):
        call()


@pytest.mark.parametrize(
    ("query_idx", "key_idx", "exception", "argument"),
    [
        (np.array([[0, 16]]), np.array([[0]]), ValueError, "query_idx"),
        (np.array([[0]]), np.array([[-1]]), ValueError, "key_idx"),
        (np.array([[0.0]]), np.array([[0]]), TypeError, "query_idx"),
        (np.array([[0]], dtype=np.uint8), np.array([[0]]), TypeError, "query_idx"),
        ([[0]], np.array([[0]]), TypeError, "query_idx"),
        (np.array([0, 1]), np.array([[0]]), ValueError, "query_idx"),
        (np.array([[0]]), np.array([[0], [1]]), ValueError, "key_idx"),
    ],
)
def test_bad_indices_raise_naming_the_argument(query_idx, key_idx, exception, argument):
    g = PatchGrid(4, 4, 16, 1.0)
    with pytest.raises(exception, match=rf"^{argument}"):
        bias.masked_distance_table(g, g, query_idx, key_idx)


def test_patch_grid_value_semantics():
    g = PatchGrid(2, 3, 16, 2.5, (100.0, 200.0))
    assert g == PatchGrid(2, 3, 16, 2.5, (100.0, 200.0))
    assert g != PatchGrid(2, 3, 16, 2.5)
    assert len({g, PatchGrid(2, 3, 16, 2.5, (100.0, 200.0))}) == 1
    assert (g.num_patches, g.footprint) == (6, 40.0)
    np.testing.assert_array_equal(g.centres(), reference_centres(2, 3, 16, 2.5, (100.0, 200.0)))
    import pickle

    assert pickle.loads(pickle.dumps(g)) == g
    assert "rows=2" in repr(g)


def test_parse_grid_spec():
    g = bias.parse_grid("16x32@2.5", patch_px=8)
    assert (g.rows, g.cols, g.gsd, g.patch_px) == (16, 32, 2.5, 8)
    with pytest.raises(ValueError, match="ROWSxCOLS@GSD"):
        bias.parse_grid("16@2")
    with pytest.raises(ValueError, match="gsd"):
        bias.parse_grid("4x4@0")
