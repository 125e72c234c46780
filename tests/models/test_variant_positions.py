"""The GSD-blind control: ``alibi`` places each chip's grid in its own patch units, the grids
centred on one another, and ``sincos`` embeds the same coordinates; one function
(``patch_unit_grid``) feeds the bias table, the core's masked biases and the flex coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salibi.models import build
from salibi.models.attention_bias import patch_unit_grid
from salibi.models.blocks import sincos_embedding

P = 8
# One footprint: hires 3 x 3 patches (24 px at 2.5 m ... any GSD), lores 1 x 1 patch (8 px).
SIZES = {"lores": (P, P), "hires": (3 * P, 3 * P)}
GSD = {"lores": 10.0, "hires": 10.0 / 3}
CENTRE = 4  # the hires grid's centre patch (row-major 3 x 3)


@pytest.mark.parametrize("attention", ["sdpa", "flex"])
def test_alibi_puts_colocated_centre_patches_at_distance_zero(attention):
    model = build("tiny", variant="alibi", modalities=("lores", "hires"), attention=attention)
    geometry = model.geometry(SIZES, GSD)
    assert geometry is not None
    lores, hires = geometry.ids("lores"), geometry.ids("hires")  # (1, 1), (1, 9)
    if attention == "flex":
        positions = geometry.positions()  # (2, N_total): the kernel's coordinates
        distance = (positions[:, lores[0]] - positions[:, hires[0]]).norm(dim=0)
    else:
        distance = geometry.table()[lores[0]][:, hires[0]][0]
    assert distance[CENTRE].item() == 0.0
    # The other hires patches are one patch (edges) or sqrt(2) patches (corners) away.
    expected = np.array([2**0.5, 1, 2**0.5, 1, 0, 1, 2**0.5, 1, 2**0.5])
    np.testing.assert_allclose(distance.numpy(), expected, rtol=1e-6)


def test_the_masked_cpu_path_and_the_table_agree():
    model = build("tiny", variant="alibi", modalities=("lores", "hires"), attention="sdpa")
    geometry = model.geometry(SIZES, GSD)
    assert geometry is not None
    keep = torch.tensor([[CENTRE, 0]])
    query, key = geometry.ids("lores"), geometry.ids("hires", keep)  # (1, 1), (1, 2)
    masked = geometry.bias(query, key, heads=4)  # batches agree: the core builds it from the kept tokens
    gathered = geometry.bias(query, key.expand(2, -1), heads=4)  # batches differ: gathered from the table
    torch.testing.assert_close(masked[0], gathered[1])
    assert masked[0, :, 0, 0].abs().max().item() == 0.0 and (masked[0, :, 0, 1] < 0).all()


def test_scale_alibi_keeps_the_ground():
    """The same chips under scale-alibi: the lores patch centre lies on the hires centre patch's."""
    model = build("tiny", variant="scale-alibi", modalities=("lores", "hires"), attention="sdpa")
    geometry = model.geometry(SIZES, GSD)
    assert geometry is not None
    assert geometry.table()[geometry.ids("lores")[0]][:, geometry.ids("hires")[0]][0, CENTRE].item() == 0.0


def test_grids_are_centred_on_the_origin_in_patch_units():
    for rows, cols in ((1, 1), (3, 3), (2, 4), (5, 2)):
        centres = patch_unit_grid(rows, cols, P).centres() / P
        np.testing.assert_allclose(centres.mean(axis=0), 0.0, atol=1e-12)
        assert centres[:, 0].max() - centres[:, 0].min() == cols - 1


def test_sincos_embeds_colocated_centre_patches_alike():
    small = sincos_embedding(1, 1, 64, torch.device("cpu"), torch.float32)[0]  # (1, 64)
    large = sincos_embedding(3, 3, 64, torch.device("cpu"), torch.float32)[0]  # (9, 64)
    assert torch.equal(small[0], large[CENTRE])
    four, two = (sincos_embedding(n, n, 64, torch.device("cpu"), torch.float32)[0] for n in (4, 2))
    inner = [5, 6, 9, 10]  # the 2 x 2 centre block of a 4 x 4 grid, row-major
    torch.testing.assert_close(four[inner], two)
    assert not torch.equal(large[0], large[CENTRE])
