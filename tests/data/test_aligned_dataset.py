"""AlignedDataset / open_aligned over sets aligned from the real sample rasters."""

from __future__ import annotations

import pickle
import shutil
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from salibi.align import align
from salibi.data import AlignedDataset, open_aligned
from salibi.data.aligned import chip_times
from salibi.errors import DataFormatError, InputError, MissingInputError

SN6 = "spacenet6_rotterdam"


@pytest.fixture(scope="module")
def optical(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hires pan1 (1 band, 60 px) + lores ms1 (4 bands, 30 px): 81 chips of 30 m."""
    out = tmp_path_factory.mktemp("ds") / "optical.h5"
    align(
        hires=samples / SN6 / "pan1.tif",
        lores=samples / SN6 / "ms1.tif",
        output=out,
        tile_size_m=30,
        val_fraction=0.2,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def lores_sar(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another file with lores (same 4 bands, 60 m chips: another chip shape) and sar."""
    out = tmp_path_factory.mktemp("ds") / "lores_sar.h5"
    align(
        lores=samples / SN6 / "ms1.tif",
        sar=samples / SN6 / "pan1.tif",
        output=out,
        tile_size_m=60,
        gsd={"sar": 2},
        val_fraction=0,
        progress=False,
    )
    return out


def test_sample_layout(optical):
    ds = AlignedDataset(optical)
    assert ds.modalities == ("lores", "hires") and len(ds) > 0  # the shared order, salibi.vocabulary.MODALITIES
    sample = ds[0]
    assert set(sample) == {"hires", "lores", "gsd", "bounds", "index", "file"}
    assert sample["hires"].dtype == torch.float32 and sample["hires"].shape == (1, 60, 60)
    assert sample["lores"].shape == (4, 30, 30)
    assert sample["gsd"] == {"hires": 0.5, "lores": 1.0} and all(type(v) is float for v in sample["gsd"].values())
    assert sample["bounds"].dtype == torch.float64 and sample["bounds"].shape == (4,)
    assert sample["index"] == 0 and sample["file"] == 0
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_normalisation_uses_the_training_statistics(optical):
    train = AlignedDataset(optical, split="train")
    stacked = torch.stack([train[i]["lores"] for i in range(len(train))]).double()
    assert torch.allclose(stacked.mean(dim=(0, 2, 3)), torch.zeros(4, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(stacked.std(dim=(0, 2, 3)), torch.ones(4, dtype=torch.float64), atol=1e-2)
    raw = AlignedDataset(optical, split="train", normalize=False)
    with h5py.File(optical) as f:
        row = raw[3]["index"]
        np.testing.assert_array_equal(raw[3]["lores"].numpy(), f["lores/data"][row])
        mean, std = f["lores/mean"][:], f["lores/std"][:]
    expected = (raw[3]["lores"].numpy() - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(train[3]["lores"].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_splits_select_their_rows(optical):
    with h5py.File(optical) as f:
        split = f["split"][:]
    train, val = AlignedDataset(optical, split="train"), AlignedDataset(optical, split="val")
    assert len(train) == (split == 0).sum() and len(val) == (split == 1).sum() > 0
    assert all(split[val[i]["index"]] == 1 for i in range(len(val)))
    assert all(split[train[i]["index"]] == 0 for i in range(0, len(train), 7))
    assert len(AlignedDataset(optical, split="test")) == 0  # align's spatial split has no test chips
    assert len(AlignedDataset(optical, split="validation")) == len(val)
    with pytest.raises(InputError, match="split='holdout': use 'train', 'val', 'test' or None"):
        AlignedDataset(optical, split="holdout")


def test_invalid_pixels_become_the_band_mean(optical, tmp_path):
    holey = tmp_path / "holey.h5"
    shutil.copy(optical, holey)
    with h5py.File(holey, "r+") as f:
        chip = f["lores/data"][0]
        chip[:, :5, :5] = np.nan
        f["lores/data"][0] = chip
        mean = f["lores/mean"][:]
    normalised = AlignedDataset(holey)[0]["lores"]
    assert torch.isfinite(normalised).all() and (normalised[:, :5, :5] == 0).all()
    raw = AlignedDataset(holey, normalize=False)[0]["lores"]
    np.testing.assert_allclose(raw[:, 0, 0].numpy(), mean)


def test_several_files_concatenate(optical, lores_sar):
    ds = AlignedDataset([optical, lores_sar], split="train")
    one, two = AlignedDataset(optical, split="train"), AlignedDataset(lores_sar, split="train")
    assert len(ds) == len(one) + len(two)
    assert ds.modalities == ("lores",)  # the only modality in both files
    ranges = ds.file_indices()
    assert ranges == [range(0, len(one)), range(len(one), len(ds))]
    last = ds[len(ds) - 1]
    assert (
        last["file"] == 1
        and last["lores"].shape == (4, 60, 60)
        and set(last) == {"lores", "gsd", "bounds", "index", "file"}
    )
    assert ds.modality_info["lores"]["channels"] == 4 and ds.modality_info["lores"]["gsd"] == 1.0
    assert ds.modality_info["lores"]["bands"] == ["ms1:1", "ms1:2", "ms1:3", "ms1:4"]
    assert len(ds.modality_info["lores"]["mean"]) == 4 and all(
        isinstance(v, float) for v in ds.modality_info["lores"]["std"]
    )
    with pytest.raises(InputError, match="lores_sar.h5"):
        AlignedDataset([optical, lores_sar], modalities=["hires"])
    assert AlignedDataset(optical, modalities=["lores"]).modalities == ("lores",)


def test_files_with_other_band_counts_do_not_mix(optical, samples, tmp_path):
    rgb_only = tmp_path / "three.h5"
    align(
        hires=samples / SN6 / "pan1.tif",
        lores=samples / SN6 / "ms1.tif",
        output=rgb_only,
        tile_size_m=60,
        bands={"lores": [1, 2, 3]},
        progress=False,
    )
    with pytest.raises(InputError, match="lores has 3 bands"):
        AlignedDataset([optical, rgb_only])


def test_dataloader_workers_read_every_sample(optical, lores_sar):
    ds = AlignedDataset([optical, lores_sar], modalities=["lores"])
    ds[0]  # a handle is open in the parent: workers must not use it
    pickle.loads(pickle.dumps(ds))
    loader = DataLoader(ds, batch_size=None, num_workers=2, shuffle=False)
    seen = [(s["file"], s["index"], float(s["lores"].sum())) for s in loader]
    expected = [(s["file"], s["index"], float(s["lores"].sum())) for s in (ds[i] for i in range(len(ds)))]
    assert seen == expected
    # Batched within one file (chip shapes differ between files).
    batches = DataLoader(ds, batch_sampler=[list(r)[:8] for r in ds.file_indices()], num_workers=2)
    shapes = [tuple(b["lores"].shape) for b in batches]
    assert shapes == [(8, 4, 30, 30), (8, 4, 60, 60)]


def test_open_aligned_checks_format(optical, tmp_path):
    with open_aligned(optical) as f:
        assert f.attrs["format"] == "salibi-aligned"
    with pytest.raises(MissingInputError, match="salibi align"):
        open_aligned(tmp_path / "nope.h5")
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(DataFormatError, match=r"notes\.h5: not a readable HDF5 file.*re-create it with `salibi align`"):
        open_aligned(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "salibi-embeddings"
    with pytest.raises(
        DataFormatError, match=r"other\.h5: not a salibi aligned training set \(format 'salibi-embeddings'\)"
    ):
        open_aligned(other)
    future = tmp_path / "future.h5"
    shutil.copy(optical, future)
    with h5py.File(future, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(
        DataFormatError, match=r"future\.h5: aligned-set format version 99 is not one this salibi reads \(1 or 2\)"
    ):
        AlignedDataset(future)
    broken = tmp_path / "broken.h5"
    shutil.copy(optical, broken)
    with h5py.File(broken, "r+") as f:
        del f["lores/std"]
    with pytest.raises(DataFormatError, match=r"broken\.h5: incomplete or damaged aligned set \(missing lores/std\)"):
        AlignedDataset(broken)
    # /datetime (acquisition times) is optional: a set without it is read; one of the wrong length is refused.
    with h5py.File(broken, "r+") as f:
        f["lores/std"] = np.ones(4, np.float32)
        assert set(f["datetime"].asstr()[:]) == {""}  # the sample rasters record no time
        del f["datetime"]
    assert len(AlignedDataset(broken)) == len(AlignedDataset(optical))
    with h5py.File(broken, "r+") as f:
        f["datetime"] = np.array(["2020-01-01T00:00:00Z"], dtype=h5py.string_dtype())
    with pytest.raises(DataFormatError, match=r"broken\.h5: datetime has shape \(1,\), inconsistent with \d+ samples"):
        AlignedDataset(broken)
    with h5py.File(broken, "r+") as f:
        del f["datetime"]
        f["datetime"] = np.array(["", "2020-01-01T01:00:00+01:00", "soon"] + [""] * (len(f["split"]) - 3), dtype=object)
    with open_aligned(broken) as f:
        assert chip_times(f, [0, 1], broken) == [None, datetime(2020, 1, 1, tzinfo=timezone.utc)]
        with pytest.raises(DataFormatError, match=r"broken\.h5: /datetime holds 'soon', not an ISO 8601 time"):
            chip_times(f, [1, 2], broken)
