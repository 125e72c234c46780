"""Output shapes for several image sizes and GSDs; inputs the model refuses, and how."""

from __future__ import annotations

import pytest
import torch

from salibi.errors import InputError
from salibi.models import ModelConfig, build

from .conftest import make_batch


@pytest.mark.parametrize("height, width", [(8, 8), (64, 64), (32, 96), (72, 40)])
@pytest.mark.parametrize("gsd", [0.5, 10.0, 30.0])
def test_encode_and_embed_shapes(tiny, height, width, gsd):
    images = torch.randn(2, 3, height, width)
    tokens = tiny.encode(images, modality="hires", gsd=gsd)
    assert tokens.shape == (2, (height // 8) * (width // 8), tiny.config.dim)
    pooled = tiny.embed(images, modality="hires", gsd=torch.full((2,), gsd))  # collated GSD works too
    assert pooled.shape == (2, tiny.config.dim)
    torch.testing.assert_close(pooled, tokens.mean(dim=1))
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize(
    "sizes, gsd",
    [
        ({"sar": (24, 24), "lores": (24, 24), "hires": (96, 96)}, {"sar": 10.0, "lores": 10.0, "hires": 2.5}),
        ({"sar": (16, 32), "lores": (16, 32), "hires": (32, 64)}, {"sar": 10.0, "lores": 10.0, "hires": 5.0}),
        ({"sar": (8, 8), "lores": (16, 16), "hires": (80, 80)}, {"sar": 20.0, "lores": 10.0, "hires": 2.0}),
    ],
)
def test_forward_returns_scalar_losses(tiny, sizes, gsd):
    out = tiny(make_batch(batch=3, sizes=sizes, gsd=gsd))
    for key in ("loss", "contrastive", "reconstruction", "temperature"):
        assert out[key].shape == () and torch.isfinite(out[key]), key
    torch.testing.assert_close(out["loss"], out["contrastive"] + out["reconstruction"])
    # a SAR chip of one patch has nothing to mask: it is encoded and contrasted, not reconstructed
    assert ("reconstruction_sar" in out) == (sizes["sar"] != (8, 8))


def test_channels_and_per_modality_counts():
    torch.manual_seed(0)
    model = build("tiny", modalities=("hires", "lores"), channels={"lores": 13})
    assert model.modalities == ("lores", "hires")  # canonical order
    assert model.config.channels == {"lores": 13, "hires": 3}
    batch = make_batch(batch=2, modalities=("lores", "hires"), channels={"lores": 13, "hires": 3})
    assert torch.isfinite(model(batch)["loss"])
    assert model.decoder_pred["lores"].out_features == 8 * 8 * 13


def test_mask_ratio_override_and_zero(tiny):
    batch = make_batch(batch=2)
    out = tiny(batch, mask_ratio=0.0)
    assert float(out["reconstruction"]) == 0.0 and "reconstruction_hires" not in out
    assert torch.isfinite(tiny(batch, mask_ratio=0.75)["reconstruction"])
    with pytest.raises(InputError, match="mask_ratio"):
        tiny(batch, mask_ratio=1.0)


def test_config_round_trips_and_sizes():
    for size in ("tiny", "small", "base", "large"):
        config = ModelConfig.for_size(size)
        assert ModelConfig.from_dict(config.to_dict()) == config
    base = ModelConfig.for_size("base")
    assert (base.dim, base.depth, base.heads, base.patch_size) == (768, 12, 12, 16)
    with pytest.raises(InputError, match="huge"):
        ModelConfig.for_size("huge")
    with pytest.raises(InputError, match="variant"):
        build("tiny", variant="rope")
    with pytest.raises(InputError, match="optical"):
        build("tiny", modalities=("sar", "optical"))
    with pytest.raises(InputError, match="not built with"):
        build("tiny", modalities=("sar", "hires"), channels={"lores": 13})
    with pytest.raises(InputError, match="unknown field"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "colour": "red"})


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(hires=torch.randn(4, 3, 90, 96)), "multiple of the patch size"),
        (lambda b: b.update(hires=torch.randn(4, 4, 96, 96)), "4 channels"),
        (lambda b: b.update(hires=torch.randn(3, 3, 96, 96)), "batch size 3"),
        (lambda b: b.update(hires=torch.zeros(4, 3, 96, 96, dtype=torch.uint8)), "float tensor"),
        (lambda b: b["gsd"].update(hires=torch.tensor([2.5, 2.5, 5.0])), "3 GSDs for a batch of 4"),
        (lambda b: b["gsd"].update(hires=-1.0), "positive number"),
        (lambda b: b["gsd"].pop("sar"), "no entry for sar"),
        (lambda b: b.pop("gsd"), "gsd"),
    ],
)
def test_bad_batches_get_clear_errors(tiny, change, message):
    batch = make_batch(batch=4)
    change(batch)
    with pytest.raises(InputError, match=message):
        tiny(batch)


def test_collated_gsd_tensor_is_accepted(tiny):
    batch = make_batch(batch=4)
    torch.manual_seed(3)
    expected = tiny(batch)["loss"]
    batch["gsd"] = {m: torch.full((4,), g, dtype=torch.float64) for m, g in batch["gsd"].items()}
    torch.manual_seed(3)
    torch.testing.assert_close(tiny(batch)["loss"], expected, rtol=0, atol=0)


def test_encode_errors(tiny):
    with pytest.raises(InputError, match="built without"):
        build("tiny", modalities=("sar", "lores")).encode(torch.randn(1, 3, 16, 16), modality="hires", gsd=1.0)
    with pytest.raises(InputError, match="positive"):
        tiny.encode(torch.randn(1, 3, 16, 16), modality="hires", gsd=0.0)
