"""Inputs built from samples, and streamed, shape-batched feature extraction."""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from salibi.eval.band_matching import BandMatch, ModalityInput, map_task_bands
from salibi.eval.evaluate import checkpoint_bands
from salibi.eval.features import extract_features
from salibi.eval.geobench.tasks import BandInfo, Task, open_task
from salibi.eval.model_inputs import band_normalisation, prepare_sample
from salibi.models import load_checkpoint


def _sample(bands: dict[str, np.ndarray], gsd: dict[str, float]) -> dict:
    return {
        "name": "s",
        "bands": bands,
        "band_info": {k: BandInfo(k) for k in bands},
        "gsd": gsd,
        "dates": {k: None for k in bands},
    }


def _modality(*names):
    return ModalityInput("lores", [BandMatch(f"c{i}", n, 0 if n else None) for i, n in enumerate(names)])


def test_normalised_with_task_statistics_and_missing_bands_are_zero():
    rng = np.random.default_rng(0)
    sample = _sample({"a": rng.normal(100, 5, (16, 16)), "b": rng.normal(-3, 2, (16, 16))}, {"a": 10, "b": 10})
    x, gsd, size = prepare_sample(sample, _modality("a", None, "b"), {"a": (100, 5), "b": (-3, 2)}, 8, False)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32 and gsd == 10 and size == (16, 16)
    assert abs(x[0].mean()) < 0.2 and abs(x[0].std() - 1) < 0.2
    assert not x[1].any()
    assert abs(x[2].mean()) < 0.3


def test_non_finite_values_become_the_mean():
    data = np.full((8, 8), 7.0)
    data[0, 0], data[1, 1] = np.nan, np.inf
    x, _, _ = prepare_sample(_sample({"a": data}, {"a": 10}), _modality("a"), {"a": (7.0, 1.0)}, 8, False)
    assert np.isfinite(x).all() and not x.any()


def test_classification_crops_small_excess_and_pads_large():
    sample = _sample({"a": np.arange(33 * 33, dtype=float).reshape(33, 33)}, {"a": 15})
    x, _, size = prepare_sample(sample, _modality("a"), {"a": (0.0, 1.0)}, 8, False)
    assert x.shape == (1, 32, 32) and size == (33, 33) and x[0, 0, 0] == 0  # crop offset (33-32)//2 = 0
    sample = _sample({"a": np.arange(20 * 20, dtype=float).reshape(20, 20)}, {"a": 10})
    x, _, _ = prepare_sample(sample, _modality("a"), {"a": (0.0, 1.0)}, 8, False)
    assert x.shape == (1, 16, 16) and x[0, 0, 0] == 2 * 20 + 2  # centre crop
    sample = _sample({"a": np.ones((12, 12))}, {"a": 10})  # cropping to 8 would keep 2/3: pad to 16
    x, _, _ = prepare_sample(sample, _modality("a"), {"a": (0.0, 1.0)}, 8, False)
    assert x.shape == (1, 16, 16) and x[0, :12, :12].all() and not x[0, 12:].any()


def test_segmentation_always_pads():
    sample = _sample({"a": np.ones((33, 33))}, {"a": 1})
    x, _, size = prepare_sample(sample, _modality("a"), {"a": (0.0, 1.0)}, 8, True)
    assert x.shape == (1, 40, 40) and x[0, :33, :33].all() and not x[0, 33:].any() and size == (33, 33)


def test_bands_of_different_shapes_are_resampled_to_the_largest():
    sample = _sample({"fine": np.ones((16, 16)), "coarse": np.full((8, 8), 3.0)}, {"fine": 10, "coarse": 20})
    x, gsd, _ = prepare_sample(sample, _modality("coarse", "fine"), {}, 8, False)
    assert x.shape == (2, 16, 16) and gsd == 10
    np.testing.assert_allclose(x[0], 3.0, rtol=1e-6)


def test_dated_keys_pick_the_earliest_date():
    sample = _sample(
        {"a_2020-02-01": np.ones((8, 8)), "a_2020-01-01": np.zeros((8, 8))}, {"a_2020-02-01": 10, "a_2020-01-01": 10}
    )
    sample["band_info"] = {k: BandInfo("a") for k in sample["bands"]}
    sample["dates"] = {"a_2020-02-01": datetime.date(2020, 2, 1), "a_2020-01-01": datetime.date(2020, 1, 1)}
    x, _, _ = prepare_sample(sample, _modality("a"), {}, 8, False)
    assert not x.any()


@pytest.fixture(scope="module")
def model(random_checkpoint):
    return load_checkpoint(random_checkpoint)


def test_batch_size_does_not_change_features(model, synthetic_root):
    task = open_task(synthetic_root, "m-tiny-so2sat")
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["train"]
    stats = band_normalisation(task, inputs, names)
    one = extract_features(model, task, inputs, names, stats, batch_size=1)
    four = extract_features(model, task, inputs, names, stats, batch_size=4)
    assert one.pooled.shape == (len(names), 2 * model.config.dim)  # lores and sar concatenated
    np.testing.assert_allclose(one.pooled, four.pooled, atol=1e-4)
    assert one.labels.tolist() == [task.read_sample(n)["label"] for n in names]


def test_samples_of_two_sizes_are_batched_by_shape(model, synthetic_root, copy_task):
    task = Task(copy_task(synthetic_root / "classification_v1.0" / "m-tiny-s2"))
    names = task.partition()["train"]
    for name in names[::3]:  # every third sample at 24x24 instead of 32x32
        with h5py.File(task.sample_path(name), "a") as f:
            for key in list(f):
                data = f[key][:24, :24]
                del f[key]
                f[key] = data
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    stats = band_normalisation(task, inputs, names)
    batched = extract_features(model, task, inputs, names, stats, batch_size=3)
    with torch.inference_mode():
        for i, name in enumerate(names):
            x, g, _ = prepare_sample(task.read_sample(name), inputs.modalities[0], stats, 8, False)
            alone = model.embed(torch.from_numpy(x)[None], modality="lores", gsd=g)[0].numpy()
            np.testing.assert_allclose(batched.pooled[i], alone, atol=1e-4)


def test_segmentation_tokens_and_labels(model, synthetic_root):
    task = open_task(synthetic_root, "m-tiny-neontree")  # RGB 40x40 at 0.1 m
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["test"]
    features = extract_features(model, task, inputs, names, band_normalisation(task, inputs, names), keep_tokens=True)
    assert features.grid == (5, 5) and features.tokens.shape == (len(names), 25, model.config.dim)
    assert features.tokens.dtype == np.float16 and features.label_px_per_token == 8.0
    assert features.labels.shape == (len(names), 40, 40)
    np.testing.assert_array_equal(features.labels[0], task.read_sample(names[0])["label"])
    features.close()


def test_reader_processes_give_the_same_features_in_order(model, synthetic_root):
    task = open_task(synthetic_root, "m-tiny-forestnet")
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["train"]
    stats = band_normalisation(task, inputs, names)
    here = extract_features(model, task, inputs, names, stats, batch_size=4)
    workers = extract_features(model, task, inputs, names, stats, batch_size=4, num_workers=2)
    np.testing.assert_allclose(here.pooled, workers.pooled, atol=1e-5)
    np.testing.assert_array_equal(here.labels, workers.labels)


def test_large_token_sets_go_to_a_removed_memory_map(model, synthetic_root):
    task = open_task(synthetic_root, "m-tiny-seg")
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["train"]
    stats = band_normalisation(task, inputs, names)
    in_memory = extract_features(model, task, inputs, names, stats, keep_tokens=True)
    on_disk = extract_features(model, task, inputs, names, stats, keep_tokens=True, tokens_in_memory_bytes=0)
    assert isinstance(on_disk.tokens, np.memmap) and not isinstance(in_memory.tokens, np.memmap)
    np.testing.assert_array_equal(in_memory.tokens, on_disk.tokens)
    folder = Path(on_disk.tokens.filename).parent
    on_disk.close()
    assert not folder.exists()


@pytest.mark.cuda
def test_cuda_features_match_cpu(random_checkpoint, synthetic_root):
    task = open_task(synthetic_root, "m-tiny-s2")
    cpu_model = load_checkpoint(random_checkpoint)
    gpu_model = load_checkpoint(random_checkpoint, map_location="cuda")
    bands, gsd = checkpoint_bands(cpu_model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["train"]
    stats = band_normalisation(task, inputs, names)
    cpu = extract_features(cpu_model, task, inputs, names, stats)
    gpu = extract_features(gpu_model, task, inputs, names, stats, device="cuda")  # bfloat16 autocast
    cosine = (cpu.pooled * gpu.pooled).sum(1) / np.linalg.norm(cpu.pooled, axis=1) / np.linalg.norm(gpu.pooled, axis=1)
    assert cosine.min() > 0.99


def test_block_tokens_are_the_encoder_blocks_outputs(model, synthetic_root):
    """Hooks capture block outputs in the same pass: the last block's, normalised, is the encoder output."""
    task = open_task(synthetic_root, "m-tiny-seg")
    bands, gsd = checkpoint_bands(model)
    inputs = map_task_bands(task.specs, bands, gsd, task.name)
    names = task.partition()["test"]
    stats = band_normalisation(task, inputs, names)
    features = extract_features(model, task, inputs, names, stats, keep_tokens=True, token_blocks=[0, 1])
    assert features.blocks == (0, 1) and features.block_tokens.shape == (len(names), 2, 25, model.config.dim)
    norm = model.encoders["hires"].norm
    with torch.no_grad():
        normalised = norm(torch.from_numpy(features.block_tokens[:, 1].astype(np.float32))).numpy()
    np.testing.assert_allclose(normalised, features.tokens.astype(np.float32), atol=2e-2)
    assert not np.allclose(features.block_tokens[:, 0], features.block_tokens[:, 1], atol=1e-2)
    assert not model.encoders["hires"].blocks[0]._forward_hooks  # hooks removed afterwards
    features.close()
