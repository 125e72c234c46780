"""A batch of chips of different GSDs (web tiles at different latitudes): every sample gets the
biases, tokens and predictions it gets when called alone, in the sdpa and flex paths, and the
tables stay cached per shape of geometry rather than per chip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salibi.bias import PatchGrid
from salibi.errors import InputError
from salibi.models.attention_bias import TokenGeometry, cache_info

from .conftest import SMALL, SMALL_GSD, make_batch
from .test_flex import flex_bias_as_table

# Ground GSD scales of four chips (cos of their latitudes): one shape of geometry, four GSDs.
SCALES = torch.tensor([0.83, 0.91, 0.77, 1.0], dtype=torch.float64)


def per_chip_gsd(scales: torch.Tensor = SCALES) -> dict[str, torch.Tensor]:
    return {m: g * scales for m, g in SMALL_GSD.items()}


def one(batch: dict, b: int) -> dict:
    return {
        **{m: x[b : b + 1] for m, x in batch.items() if m != "gsd"},
        "gsd": {m: float(g[b]) for m, g in batch["gsd"].items()},
    }


@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_per_sample_biases_equal_each_samples_own(backend):
    """Masked self, cross and full (decoder) biases; two groups of geometry shapes (the hires/lores
    ratio differs between samples 0-1 and 2-3)."""
    gsd = {"lores": np.array([10.0, 8.0, 10.0, 7.0]), "hires": np.array([2.5, 2.0, 5.0, 3.5])}
    shapes = {"lores": (2, 3), "hires": (4, 6)}
    geometry = TokenGeometry.per_sample(shapes, 8, gsd, 80.0, torch.device("cpu"), torch.float32, backend)
    assert len(geometry._groups) == 2
    generator = torch.Generator().manual_seed(0)
    keep_lores = torch.rand(4, 6, generator=generator).argsort(dim=1)[:, :3].sort(dim=1).values
    keep_hires = torch.rand(4, 24, generator=generator).argsort(dim=1)[:, :10].sort(dim=1).values
    lores, hires = geometry.ids("lores", keep_lores), geometry.ids("hires", keep_hires)
    joint = torch.cat([lores, hires], dim=1)
    computed = {
        "self": geometry.bias(hires, hires, 4),
        "cross": geometry.bias(lores, joint, 4),
        "full": geometry.full_bias(["lores", "hires"], "hires", 4),
    }
    for b in range(4):
        alone = TokenGeometry(
            {m: PatchGrid(*shapes[m], 8, float(gsd[m][b])) for m in shapes}, 80.0, torch.device("cpu"), torch.float32
        )
        expected = {
            "self": alone.bias(hires[b : b + 1], hires[b : b + 1], 4)[0],
            "cross": alone.bias(lores[b : b + 1], joint[b : b + 1], 4)[0],
            "full": alone.full_bias(["lores", "hires"], "hires", 4)[0],
        }
        for name, bias in computed.items():
            table = flex_bias_as_table(bias)[b] if backend == "flex" else bias[b].numpy()
            np.testing.assert_allclose(table, expected[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{name} {b}")


def test_forward_gives_each_chip_what_it_gets_alone(tiny):
    """Encoder tokens (masked biases) and decoder input (fusion and full biases) of every sample of
    a pretraining batch with (B,) GSDs equal those of the sample run alone with its float GSD."""
    batch = make_batch(batch=4, sizes=SMALL, gsd=SMALL_GSD)
    batch["gsd"] = per_chip_gsd()
    generator = torch.Generator().manual_seed(3)
    noise = {m: torch.rand(4, (h // 8) * (w // 8), generator=generator) for m, (h, w) in SMALL.items()}
    seen: dict[str, list[torch.Tensor]] = {}
    for m in SMALL:
        tiny.encoders[m].register_forward_hook(lambda _m, _a, y, m=m: seen.setdefault(m, []).append(y))
    tiny.decoder_norm.register_forward_hook(lambda _m, _a, y: seen.setdefault("decoder", []).append(y))
    with torch.no_grad():
        tiny(batch, noise=noise)
        for b in range(4):
            tiny(one(batch, b), noise={m: x[b : b + 1] for m, x in noise.items()})
    for name, outputs in seen.items():
        together, alone = outputs[0], torch.cat(outputs[1:])
        torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5, msg=name)


def test_unmasked_encoding_per_chip_and_the_cache_stays_per_shape(tiny):
    batch = make_batch(batch=4, sizes=SMALL, gsd=SMALL_GSD)
    gsd = per_chip_gsd()
    with torch.no_grad():
        tokens = tiny.encode(batch["hires"], "hires", gsd["hires"])
        joint = tiny.encode_joint({m: batch[m] for m in SMALL}, gsd)
        for b in range(4):
            alone = one({**batch, "gsd": gsd}, b)
            torch.testing.assert_close(tiny.encode(alone["hires"], "hires", alone["gsd"]["hires"]), tokens[b : b + 1])
            for m, x in tiny.encode_joint({m: alone[m] for m in SMALL}, alone["gsd"]).items():
                torch.testing.assert_close(x, joint[m][b : b + 1], rtol=1e-4, atol=1e-5)
        before = cache_info()
        tiny.encode_joint({m: batch[m] for m in SMALL}, per_chip_gsd(torch.tensor([0.5, 0.6, 0.7, 0.8])))
    after = cache_info()
    assert after["misses"] == before["misses"], "new GSDs of the same shape of geometry built new tables"
    assert after["hits"] > before["hits"]


def test_a_gsd_per_sample_must_be_one_per_sample_and_positive(tiny):
    batch = make_batch(batch=4)
    batch["gsd"]["hires"] = torch.tensor([2.5, 2.0, 3.0])
    with pytest.raises(InputError, match=r"gsd\['hires'\]: 3 GSDs for a batch of 4"):
        tiny(batch)
    batch["gsd"]["hires"] = torch.tensor([2.5, 2.0, 0.0, 2.5])
    with pytest.raises(InputError, match="every GSD must be a positive number"):
        tiny(batch)
