"""Training behaviour: gradients, determinism, the variants, missing modalities, and DDP over
two gloo ranks against one process with the global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from salibi.errors import InputError
from salibi.models import VARIANTS, build

from .conftest import GSD, SIZES, make_batch


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    torch.manual_seed(0)
    model = build("tiny", variant=variant)
    model(make_batch(batch=3))["loss"].backward()
    dead = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.any()
    ]
    assert dead == []
    assert model.logit_scale.grad is not None and model.logit_scale.grad != 0


def test_fixed_seed_gives_identical_loss():
    def run(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build("tiny")
        torch.manual_seed(seed)
        return model(make_batch(batch=4))

    first, again, other = run(1), run(1), run(2)
    for key in ("loss", "contrastive", "reconstruction"):
        assert torch.equal(first[key], again[key]), key
    assert not torch.equal(first["reconstruction"], other["reconstruction"])  # masks come from the RNG


def test_restoring_rng_state_repeats_the_masks(tiny):
    batch = make_batch(batch=4)
    state = torch.get_rng_state()
    first = tiny(batch)["loss"]
    torch.set_rng_state(state)
    assert torch.equal(tiny(batch)["loss"], first)


def _built(variant: str):
    torch.manual_seed(0)
    return build("tiny", variant=variant)


def test_variants_share_parameters_and_differ_only_in_positions():
    models = {v: _built(v) for v in VARIANTS}
    reference = models["scale-alibi"].state_dict()
    for variant, model in models.items():
        state = model.state_dict()
        assert list(state) == list(reference), variant
        assert all(torch.equal(state[k], reference[k]) for k in reference), variant

    images = torch.randn(2, 3, 48, 64)
    tokens = {v: m.encode(images, modality="hires", gsd=10.0) for v, m in models.items()}
    # a chip whose patch footprint is the model's L (8 px at 10 m): Scale-ALiBi is exactly 2-D ALiBi
    torch.testing.assert_close(tokens["scale-alibi"], tokens["alibi"], rtol=1e-5, atol=1e-5)
    for a, b in (("scale-alibi", "sincos"), ("scale-alibi", "none"), ("sincos", "none")):
        assert not torch.allclose(tokens[a], tokens[b], atol=1e-3), (a, b)

    # across GSDs Scale-ALiBi uses ground distances, ALiBi patch-grid distances
    batch = make_batch(batch=2)
    losses = {}
    for variant in ("scale-alibi", "alibi"):
        torch.manual_seed(5)
        losses[variant] = models[variant](batch)["loss"]
    assert not torch.allclose(losses["scale-alibi"], losses["alibi"])
    # ... which agree when every chip has the same grid and GSD
    same = make_batch(batch=2, modalities=("sar", "lores"))
    for variant in ("scale-alibi", "alibi"):
        torch.manual_seed(5)
        losses[variant] = models[variant](same)["loss"]
    torch.testing.assert_close(losses["scale-alibi"], losses["alibi"], rtol=1e-5, atol=1e-5)


def test_none_variant_has_no_positions_and_sincos_has():
    images = torch.randn(1, 3, 32, 32)
    perm = torch.randperm(16)
    # move whole 8 px patches: (1, 3, 4, 8, 4, 8) -> patch order perm
    patches = images.reshape(1, 3, 4, 8, 4, 8).permute(0, 2, 4, 1, 3, 5).reshape(1, 16, 3, 8, 8)
    shuffled = patches[:, perm].reshape(1, 4, 4, 3, 8, 8).permute(0, 3, 1, 4, 2, 5).reshape(1, 3, 32, 32)
    for variant, equivariant in (("none", True), ("sincos", False), ("scale-alibi", False)):
        model = _built(variant)
        plain = model.encode(images, modality="hires", gsd=1.0)
        moved = model.encode(shuffled, modality="hires", gsd=1.0)
        assert torch.allclose(moved, plain[:, perm], atol=1e-5) == equivariant, variant


def test_every_model_has_one_fixed_reference_length_so_gsd_changes_unimodal_encodings():
    """Defect 5: build() used L = the call's own patch footprint, so 0.5 m and 10 m chips gave
    the same encoding (7e-7 apart). Every model now has one L in metres."""
    images = torch.randn(1, 3, 32, 32)
    torch.manual_seed(0)
    default = build("tiny")
    assert default.config.ref_length == 8 * 10.0  # one patch at 10 m
    assert not torch.allclose(default.embed(images, "hires", 0.5), default.embed(images, "hires", 10.0), atol=1e-3)
    torch.manual_seed(0)
    fixed = build("tiny", ref_length=80.0)
    torch.testing.assert_close(default.encode(images, "hires", 2.0), fixed.encode(images, "hires", 2.0))
    torch.manual_seed(0)
    other = build("tiny", ref_length=20.0)
    assert other.config.ref_length == 20.0
    # the argument overrides the model's L for one call
    torch.testing.assert_close(
        default.encode(images, "hires", 2.0, ref_length=20.0), other.encode(images, "hires", 2.0)
    )
    with pytest.raises(InputError, match="ref_length"):
        build("tiny", ref_length=float("nan"))


def test_missing_modalities():
    torch.manual_seed(0)
    pair = build("tiny", modalities=("sar", "lores"))
    assert pair.fusion_high is None and "hires" not in pair.encoders
    assert torch.isfinite(pair(make_batch(batch=2, modalities=("sar", "lores")))["loss"])
    with pytest.raises(InputError, match="built without 'hires'"):
        pair(make_batch(batch=2))

    torch.manual_seed(0)
    full = build("tiny")
    for present in (("sar", "hires"), ("lores", "hires"), ("sar", "lores")):  # the pairs present
        out = full(make_batch(batch=2, modalities=present))
        assert torch.isfinite(out["loss"]) and set(present) == {k.split("_")[1] for k in out if "_" in k}
    with pytest.raises(InputError, match="at least two"):
        full(make_batch(batch=2, modalities=("hires",)))


# -- DDP: two gloo ranks == one process with the global batch -------------------------------------


def _global_batch():
    batch = make_batch(batch=4, seed=11)
    g = torch.Generator().manual_seed(12)
    noise = {m: torch.rand(4, (SIZES[m][0] // 8) * (SIZES[m][1] // 8), generator=g) for m in SIZES}
    return batch, noise


def _shard(batch, noise, rank: int, world: int):
    n = 4 // world
    part = {m: batch[m][rank * n : (rank + 1) * n] for m in SIZES}
    part["gsd"] = {m: torch.full((n,), GSD[m]) for m in SIZES}  # as default_collate makes it
    return part, {m: noise[m][rank * n : (rank + 1) * n] for m in SIZES}


def _ddp_worker(rank: int, world: int, init_file: str, result_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(build("tiny"))
        batch, noise = _shard(*_global_batch(), rank, world)
        out = model(batch, noise=noise)
        out["loss"].backward()
        if rank == 0:
            tensors = {f"grad.{n}": p.grad for n, p in model.module.named_parameters()}
            tensors.update({f"out.{k}": v.detach() for k, v in out.items()})
            save_file({k: v.contiguous() for k, v in tensors.items()}, result_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    torch.manual_seed(0)
    model = build("tiny")
    batch, noise = _global_batch()
    expected = model(batch, noise=noise)
    expected["loss"].backward()

    result = tmp_path / "rank0.safetensors"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(result)), nprocs=2, join=True)
    got = load_file(str(result))

    for key in ("loss", "contrastive", "reconstruction", "reconstruction_hires"):
        torch.testing.assert_close(got[f"out.{key}"], expected[key].detach(), rtol=1e-5, atol=1e-6, msg=key)
    for name, param in model.named_parameters():
        torch.testing.assert_close(got[f"grad.{name}"], param.grad, rtol=1e-4, atol=1e-6, msg=name)
