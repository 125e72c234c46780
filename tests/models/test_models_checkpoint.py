"""Checkpoints: round trip, run-folder resolution, and clear errors for damaged files (real
safetensors and JSON files throughout)."""

from __future__ import annotations

import json
import os
import warnings

import pytest
import torch
from safetensors.torch import save_file

from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.models import build, load_checkpoint, resolve_checkpoint, save_checkpoint

from .conftest import make_batch

STATS = dict(
    bands={"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02"], "hires": ["R", "G", "B"]},
    gsd={"sar": 10.0, "lores": 10.0, "hires": 2.5},
    mean={"sar": [-12.0, -19.0], "lores": [0.1, 0.1, 0.1], "hires": [100.0, 110.0, 90.0]},
    std={"sar": [5.0, 5.0], "lores": [0.05, 0.05, 0.05], "hires": [40.0, 40.0, 40.0]},
)


def test_round_trip_gives_identical_outputs(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "ckpt", **STATS, step=100, data=[tmp_path / "set.h5"])
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folder left behind

    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == tiny.config and loaded.modalities == tiny.modalities
    assert loaded.modality_info["lores"] == {"channels": 3, **{k: v["lores"] for k, v in STATS.items()}}
    assert loaded.checkpoint_metadata == {"step": 100, "data": [str(tmp_path / "set.h5")]}

    images = torch.randn(2, 3, 40, 24)
    assert torch.equal(loaded.encode(images, modality="hires", gsd=2.5), tiny.encode(images, modality="hires", gsd=2.5))
    batch = make_batch(batch=2)
    torch.manual_seed(4)
    expected = tiny(batch)["loss"]
    torch.manual_seed(4)
    assert torch.equal(loaded(batch)["loss"], expected)

    document = json.loads((path / "config.json").read_text())
    assert document["format"] == "salibi-checkpoint" and document["format_version"] == 1
    assert {"size", "dim", "depth", "heads", "patch_size", "variant", "mask_ratio"} <= set(document["model"])
    assert document["modalities"]["sar"] == {"channels": 2, **{k: v["sar"] for k, v in STATS.items()}}

    # re-saving a loaded model keeps its statistics; saving over a checkpoint replaces it
    save_checkpoint(loaded, path, step=200)
    again = load_checkpoint(path)
    assert again.modality_info == loaded.modality_info and again.checkpoint_metadata == {"step": 200}


def test_other_variant_and_channels_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build("tiny", variant="sincos", modalities=("lores", "hires"), channels={"lores": 13}, mask_ratio=0.75)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "c"))
    assert loaded.config.variant == "sincos" and loaded.config.mask_ratio == 0.75
    assert loaded.config.channels == {"lores": 13, "hires": 3}
    assert loaded.modality_info["lores"]["bands"] is None
    images = torch.randn(1, 13, 16, 16)
    assert torch.equal(loaded.embed(images, "lores", 10.0), model.embed(images, "lores", 10.0))


@pytest.mark.slow
def test_wrappers_are_unwrapped(tmp_path, tiny):
    for i, wrapped in enumerate((torch.nn.DataParallel(tiny), torch.compile(tiny))):
        path = save_checkpoint(wrapped, tmp_path / f"c{i}")
        assert set(load_checkpoint(path).state_dict()) == set(tiny.state_dict())


def test_bad_statistics_and_metadata_are_refused(tmp_path, tiny):
    with pytest.raises(InputError, match="2 values"):
        save_checkpoint(tiny, tmp_path / "c", mean={"hires": [0.0, 1.0]})
    with pytest.raises(InputError, match="optical"):
        save_checkpoint(tiny, tmp_path / "c", gsd={"optical": 1.0})
    with pytest.raises(InputError, match="metadata"):
        save_checkpoint(tiny, tmp_path / "c", optimizer=object())
    assert not (tmp_path / "c").exists()


def _run(tmp_path, tiny, steps=(100, 200, 300)):
    run = tmp_path / "runs" / "first"
    for step in steps:
        save_checkpoint(tiny, run / "checkpoints" / f"step_{step:07d}", step=step)
    (run / "checkpoints" / "last").write_text(f"step_{steps[-1]:07d}\n")
    return run


def test_resolve_picks_the_newest_checkpoint(tmp_path, tiny):
    run = _run(tmp_path, tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_checkpoint(run) == run / "checkpoints" / "step_0000300"
        assert resolve_checkpoint(run / "checkpoints") == run / "checkpoints" / "step_0000300"
    assert load_checkpoint(run).checkpoint_metadata["step"] == 300
    direct = run / "checkpoints" / "step_0000100"
    assert resolve_checkpoint(direct) == direct


def test_resolve_skips_a_truncated_newest_checkpoint_with_a_warning(tmp_path, tiny):
    run = _run(tmp_path, tiny)
    weights = run / "checkpoints" / "step_0000300" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.warns(UserWarning, match="step_0000300"):
        assert resolve_checkpoint(run) == run / "checkpoints" / "step_0000200"
    with pytest.warns(UserWarning, match="step_0000300"):
        assert load_checkpoint(run).checkpoint_metadata["step"] == 200


def test_resolve_follows_a_last_symlink_and_skips_a_broken_config(tmp_path, tiny):
    run = _run(tmp_path, tiny, steps=(100, 200))
    last = run / "checkpoints" / "last"
    last.unlink()
    os.symlink("step_0000200", last)
    (run / "checkpoints" / "step_0000200" / "config.json").write_text('{"format": "salibi-checkp')
    with pytest.warns(UserWarning, match="step_0000200"):
        assert resolve_checkpoint(run) == run / "checkpoints" / "step_0000100"


def test_resolve_without_complete_checkpoints(tmp_path, tiny):
    with pytest.raises(MissingInputError, match="no such"):
        resolve_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="no checkpoint here"):
        resolve_checkpoint(tmp_path / "empty")
    run = _run(tmp_path, tiny, steps=(100,))
    (run / "checkpoints" / "step_0000100" / "model.safetensors").unlink()
    with pytest.warns(UserWarning), pytest.raises(MissingInputError, match="no complete checkpoint"):
        resolve_checkpoint(run)


@pytest.mark.parametrize(
    "damage, error, names",
    [
        (lambda p: (p / "config.json").write_text("{not json"), DataFormatError, "config.json"),
        (lambda p: (p / "config.json").write_text('{"format": "something-else"}'), DataFormatError, "config.json"),
        (
            lambda p: (p / "config.json").write_text(
                (p / "config.json").read_text().replace('"format_version": 1', '"format_version": 2')
            ),
            DataFormatError,
            "version 2",
        ),
        (
            lambda p: (p / "config.json").write_text((p / "config.json").read_text().replace('"dim": 64', '"dim": 96')),
            DataFormatError,
            "does not match",
        ),
        (
            lambda p: (p / "config.json").write_text(
                (p / "config.json").read_text().replace('"variant": "scale-alibi"', '"variant": "rope"')
            ),
            DataFormatError,
            "config.json",
        ),
        (lambda p: (p / "config.json").unlink(), MissingInputError, "config.json"),
        (lambda p: (p / "model.safetensors").unlink(), MissingInputError, "model.safetensors"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x01\x02"), DataFormatError, "model.safetensors"),
        (
            lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
            DataFormatError,
            "model.safetensors",
        ),
        (lambda p: save_file({"x": torch.zeros(3)}, str(p / "model.safetensors")), DataFormatError, "does not match"),
    ],
)
def test_damaged_checkpoints_get_clear_errors(tmp_path, tiny, damage, error, names):
    path = save_checkpoint(tiny, tmp_path / "ckpt")
    damage(path)
    with pytest.raises(error, match=names):
        load_checkpoint(path)


def test_a_pickle_is_never_loaded(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "ckpt")
    torch.save(tiny.state_dict(), path / "model.safetensors")  # a pickle under the expected name
    with pytest.raises(DataFormatError, match="model.safetensors"):
        load_checkpoint(path)


def test_a_checkpoint_keeps_its_reference_length_and_older_ones_get_the_one_they_trained_with(tmp_path):
    torch.manual_seed(0)
    model = build("tiny", ref_length=120.0)
    path = save_checkpoint(model, tmp_path / "ckpt", **STATS)
    assert load_checkpoint(path).config.ref_length == 120.0
    # Written before every model had one L: null, and training used a patch of the coarsest GSD.
    document = json.loads((path / "config.json").read_text())
    document["model"]["ref_length"] = None
    (path / "config.json").write_text(json.dumps(document))
    assert load_checkpoint(path).config.ref_length == 8 * 10.0  # sar and lores at 10 m, hires at 2.5 m
    document["modalities"]["sar"]["gsd"] = None  # unknown: the default L
    (path / "config.json").write_text(json.dumps(document))
    assert load_checkpoint(path).config.ref_length == 8 * 10.0
    document["modalities"]["sar"]["gsd"] = 30.0
    (path / "config.json").write_text(json.dumps(document))
    assert load_checkpoint(path).config.ref_length == 8 * 30.0
