"""Aligned sets of version 2 whose chips are encoded web tiles, written by hand (independent of
the importer): decoding, normalisation, per-chip GSD, the test split, and damaged offsets refused."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from salibi.data import AlignedDataset, open_aligned
from salibi.data.web_tiles import ChipLayout, decode_chip
from salibi.errors import DataFormatError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "align"))
from pmtiles_archives import small_tiles


@pytest.fixture(scope="module")
def tiles(shared) -> dict[str, list[bytes]]:
    """sar and lores tiles of two chips (real Sen1Floods11 pixels); the second lores one has its
    top 40 rows invalid (alpha 0)."""
    found = {m: list(small_tiles(shared("data"), m).values()) for m in ("sar", "lores")}
    rgba = np.array(Image.open(io.BytesIO(found["lores"][1])))
    rgba[:40, :, 3] = 0
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    found["lores"][1] = buffer.getvalue()
    return found


def write_set(path: Path, tiles: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """Two chips of one sar and one lores tile each, split train and test."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format="salibi-aligned", format_version=2, crs="EPSG:3857", tile_size_m=1222.99)
        f["bounds"] = np.array([[0, 0, 1, 1], [1, 0, 2, 1]], np.float64)
        f["split"] = np.array([0, 2], np.uint8)
        for m, channels in (("sar", (1, 2)), ("lores", (0, 1, 2))):
            group = f.create_group(m)
            group["tile_bytes"] = np.frombuffer(b"".join(tiles[m]), np.uint8)
            lengths = np.array([[len(t)] for t in tiles[m]], np.uint64)
            group["tile_offsets"] = np.array([[0], [lengths[0, 0]]], np.uint64)
            group["tile_lengths"] = lengths.astype(np.uint32)
            group["chip_gsd"] = np.array([3.76, 3.70])
            group["mean"] = np.full(len(channels), 100, np.float32)
            group["std"] = np.full(len(channels), 50, np.float32)
            layout = ChipLayout(256, 1, channels, "repaired" if m == "sar" else "none")
            group.attrs.update(storage="encoded-tiles", gsd=3.73, bands=["b"] * len(channels), **layout.attrs())
    return tiles


@pytest.fixture
def encoded(tmp_path, tiles):
    path = tmp_path / "tiles.h5"
    return path, write_set(path, tiles)


def test_chips_are_decoded_normalised_and_carry_their_gsd(encoded):
    path, tiles = encoded
    ds = AlignedDataset(path)
    raw = AlignedDataset(path, normalize=False)
    assert len(ds) == 2 and ds.modality_info["lores"]["channels"] == 3
    rgba = np.asarray(Image.open(io.BytesIO(tiles["lores"][1])))
    valid = rgba[..., 3] > 0
    assert not valid.all(), "the chip should have invalid pixels to check"
    np.testing.assert_array_equal(raw[1]["lores"].numpy()[:, valid], rgba[valid][:, :3].T.astype(np.float32))
    assert (raw[1]["lores"].numpy()[:, ~valid] == 100).all()  # invalid: the band mean
    expected = (rgba[..., :3].astype(np.float32) - 100) / 50
    np.testing.assert_allclose(np.moveaxis(ds[1]["lores"].numpy(), 0, -1)[valid], expected[valid], rtol=1e-6)
    assert (ds[1]["lores"].numpy()[:, ~valid] == 0).all()
    assert ds[0]["gsd"] == {"sar": 3.76, "lores": 3.76} and ds[1]["gsd"]["sar"] == 3.70
    test = AlignedDataset(path, split="test")
    assert len(test) == 1 and test[0]["index"] == 1
    sar = np.asarray(Image.open(io.BytesIO(tiles["sar"][0])))
    wrapped = (sar[..., 1:3] == 0) & (sar[..., 3:] > 0)
    assert wrapped.any()
    assert (np.moveaxis(raw[0]["sar"].numpy(), 0, -1)[wrapped] == 255).all()  # the released overflow, repaired


def test_decode_chip_stitches_children_in_reading_order(tiles):
    two = tiles["lores"]
    four = [two[0], two[1], two[1], two[0]]
    bands, valid, _ = decode_chip(four, ChipLayout(256, 2, (0, 1, 2)), "chip")
    first, second = (np.moveaxis(np.asarray(Image.open(io.BytesIO(t)))[..., :3], -1, 0) for t in two)
    np.testing.assert_array_equal(bands[:, :256, :256], first)
    np.testing.assert_array_equal(bands[:, :256, 256:], second)
    np.testing.assert_array_equal(bands[:, 256:, :256], second)
    np.testing.assert_array_equal(bands[:, 256:, 256:], first)
    assert valid[:40, 256:].sum() == 0 and valid[256:296, :256].sum() == 0 and valid[:256, :256].all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f["lores/tile_offsets"].__setitem__((1, 0), 10**9), r"chip 1: its tiles lie outside tile_bytes"),
        (lambda f: f["lores/tile_lengths"].__setitem__((0, 0), 5 * 2**20), r"chip 0: its tiles lie outside"),
        (lambda f: f["lores"].attrs.__setitem__("tiles_per_side", 3), r"impossible tile layout"),
        (lambda f: f["lores/chip_gsd"].__setitem__(0, -1.0), r"chip_gsd holds a GSD that is not a positive number"),
    ],
)
def test_damaged_sets_are_refused_with_the_file_named(encoded, change, message):
    path, _ = encoded
    with h5py.File(path, "r+") as f:
        change(f)
    with pytest.raises(DataFormatError, match=message):
        ds = AlignedDataset(path)
        for i in range(len(ds)):
            ds[i]
    with pytest.raises(DataFormatError, match="tiles.h5"):
        with open_aligned(path):
            AlignedDataset(path)[0]
            AlignedDataset(path)[1]
