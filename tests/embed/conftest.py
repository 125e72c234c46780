"""Fixtures of the embed tests: real tiles cut into tmp dirs (make_tiles.py) from data/samples and,
read in place, ../shared/data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from salibi.embed import embed, embed_folder, read_embeddings

from .make_tiles import MEAN, STD, make_checkpoint, make_mixed, make_resume_set

PATCH = 8  # the tiny model's patch size


@pytest.fixture(autouse=True)
def _shared_rasters(shared):
    # make_tiles.py cuts Sen1Floods11 and NAIP tiles from ../shared/data (fail under CI, else skip).
    shared("data", "sen1floods11")
    shared("data", "naip_5m")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="session")
def mixed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("mixed") / "tiles"
    return folder, make_mixed(folder)


@pytest.fixture(scope="session")
def mixed_run(mixed, checkpoint, tmp_path_factory):
    """(summary, Embeddings) of one run over the mixed folder."""
    output = tmp_path_factory.mktemp("mixed_out") / "mixed.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its unnamed bands' assumptions (tested elsewhere)
        summary = embed_folder(mixed[0], checkpoint, output, batch_size=4, progress=False)
    return summary, read_embeddings(output)


@pytest.fixture(scope="session")
def resume_tiles(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("resume") / "tiles"
    return folder, make_resume_set(folder)


@pytest.fixture(scope="session")
def resume_reference(resume_tiles, checkpoint, tmp_path_factory):
    """Embeddings of an uninterrupted run over the resume folder (batch size 2, as the killed run)."""
    output = tmp_path_factory.mktemp("reference") / "reference.h5"
    embed_folder(resume_tiles[0], checkpoint, output, batch_size=2, progress=False)
    return read_embeddings(output)


def expected_embedding(
    model, path: Path, bands: list[int], modality: str, gsd: float, mean=None, std=None
) -> np.ndarray:
    """Written independently of salibi.embed: read, |z|^2 for complex, normalise (checkpoint
    statistics, or per tile), invalid -> 0, zero-pad to the patch, mean of the tokens of the
    patches that hold tile pixels. For tiles of at most 32 x 32 patches (one window)."""
    with rasterio.open(path) as ds:
        x = ds.read(bands, masked=True)
    invalid = np.ma.getmaskarray(x)
    x = np.ma.getdata(x)
    x = (np.abs(x) ** 2).astype(np.float32) if np.iscomplexobj(x) else x.astype(np.float32)
    invalid |= ~np.isfinite(x)
    if mean is None:
        mean = np.array(MEAN[modality], np.float32)
        std = np.array(STD[modality], np.float32)
    x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    x[invalid] = 0
    c, h, w = x.shape
    rows, cols = -(-h // PATCH), -(-w // PATCH)
    padded = np.zeros((c, rows * PATCH, cols * PATCH), np.float32)
    padded[:, :h, :w] = x
    with torch.no_grad():
        tokens = model.encode(torch.from_numpy(padded)[None], modality=modality, gsd=gsd)[0]
    return tokens.reshape(rows, cols, -1).mean(dim=(0, 1)).numpy()


@pytest.fixture(scope="session")
def naip_outputs(checkpoint, tmp_path_factory):
    """The NAIP 5 m quarter-quad as a scene of 320 m chips (11 x 14), embedded once into ``naip.h5``
    and once into ``naip.parquet``: ``(folder, summary of the .h5 run, warnings said by it)``."""
    from .make_tiles import NAIP

    folder = tmp_path_factory.mktemp("naip")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        summary = embed(NAIP, checkpoint, folder / "naip.h5", chip_size_m=320, batch_size=32, progress=False)
        embed(NAIP, checkpoint, folder / "naip.parquet", chip_size_m=320, batch_size=32, progress=False)
    return folder, summary, [str(w.message) for w in said]
