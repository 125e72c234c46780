"""Shared helpers for the model tests: small co-located batches and an independent bias formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salibi.models import build

# sar and lores at 10 m, hires at 2.5 m: all 240 m x 240 m with the tiny model's 8 px patches.
SIZES = {"sar": (24, 24), "lores": (24, 24), "hires": (96, 96)}
GSD = {"sar": 10.0, "lores": 10.0, "hires": 2.5}
CHANNELS = {"sar": 2, "lores": 3, "hires": 3}
# Small chips of one 160 m footprint (sar and lores 2 x 2 patches at 10 m, hires 4 x 4 at 5 m):
# few shapes for the flex backend to compile.
SMALL = {"sar": (16, 16), "lores": (16, 16), "hires": (32, 32)}
SMALL_GSD = {"sar": 10.0, "lores": 10.0, "hires": 5.0}


def make_batch(batch=4, modalities=("sar", "lores", "hires"), sizes=SIZES, gsd=GSD, channels=CHANNELS, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {m: torch.randn(batch, channels[m], *sizes[m], generator=g) for m in modalities}
    out["gsd"] = {m: gsd[m] for m in modalities}
    return out


def slopes(heads: int) -> np.ndarray:
    """Press et al.'s ALiBi slopes, written out independently of the core."""

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    if math.log2(heads).is_integer():
        return np.array(power_of_two(heads))
    closest = 2 ** math.floor(math.log2(heads))
    return np.array(power_of_two(closest) + power_of_two(2 * closest)[0::2][: heads - closest])


def centres(rows: int, cols: int, patch: int, gsd: float) -> np.ndarray:
    """(rows*cols, 2) ground centres, row-major, top-left corner at the origin (DESIGN.md)."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([(c.ravel() + 0.5) * patch * gsd, -(r.ravel() + 0.5) * patch * gsd], axis=1)


def numpy_bias(query: np.ndarray, key: np.ndarray, heads: int, ref_length: float) -> np.ndarray:
    """(H, Nq, Nk) = -m_h * ||query_i - key_j|| / L for centre arrays (Nq, 2), (Nk, 2)."""
    distance = np.sqrt(((query[:, None, :] - key[None, :, :]) ** 2).sum(-1)) / ref_length
    return -slopes(heads)[:, None, None] * distance[None]


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny models gain nothing from a second thread, and lose a lot when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build("tiny")
