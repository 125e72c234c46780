"""Aligned sets (salibi align output) embedded through the cross-modal encoder: a joint row per
chip with all its modalities, per-modality rows when asked; values checked against the model."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import rasterio
import torch

from salibi.align import align
from salibi.embed import embed, read_embeddings
from salibi.errors import InputError
from salibi.models import load_checkpoint

from .make_tiles import BANDS, MEAN, SAMPLES, SPAIN_S1, SPAIN_S2, STD, make_checkpoint

S2_TIME = "2019-09-18T10:50:00Z"  # tagged on the S2 file: what every chip records
S1_TIME = "2019:09:19 18:00:00"  # the TIFF DateTime tag of the S1 file: not the chips' time


@pytest.fixture(scope="module")
def floods_set(tmp_path_factory):
    """Sen1Floods11 S1 (VV, VH) and S2 (B4, B3, B2 of 13), tagged with their acquisition times,
    aligned into 640 m chips at 10 m."""
    folder = tmp_path_factory.mktemp("aligned")
    tagged = {}
    for name, source, tags in (
        ("lores", SPAIN_S2, {"ACQUISITION_DATETIME": S2_TIME}),
        ("sar", SPAIN_S1, {"TIFFTAG_DATETIME": S1_TIME}),
    ):
        tagged[name] = shutil.copyfile(source, folder / source.name)
        with rasterio.open(tagged[name], "r+") as ds:
            ds.update_tags(**tags)
    out = folder / "floods.h5"
    align(
        sar=tagged["sar"],
        lores=tagged["lores"],
        bands={"lores": [4, 3, 2]},
        gsd={"sar": 10.0, "lores": 10.0},
        tile_size_m=640,
        val_fraction=0.0,
        output=out,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def joint_run(floods_set, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint") / "joint.h5"
    summary = embed(floods_set, checkpoint, out, per_modality=True, batch_size=16, progress=False)
    return summary, read_embeddings(out)


def normalised(f, modality, rows):
    x = f[modality]["data"][rows].astype(np.float32)
    mean = np.array(MEAN[modality], np.float32)[None, :, None, None]
    std = np.array(STD[modality], np.float32)[None, :, None, None]
    x = (x - mean) / std
    x[~np.isfinite(x)] = 0  # NaN (invalid) -> the band mean
    return torch.from_numpy(x)


def test_every_chip_has_a_joint_row_and_one_per_modality(floods_set, joint_run):
    summary, table = joint_run
    with h5py.File(floods_set) as f:
        count, bounds, crs = f["bounds"].shape[0], f["bounds"][:], f.attrs["crs"]
    assert (summary.kind, summary.found, summary.embedded, summary.rows) == (
        "aligned set",
        3 * count,
        3 * count,
        3 * count,
    )
    assert summary.area_km2 == pytest.approx(count * 0.64**2)  # per-modality rows cover the same ground
    for modality in ("joint", "sar", "lores"):
        paths = [p for p, m in zip(table.path, table.modality) if m == modality]
        assert sorted(paths) == sorted(f"floods.h5#{i}" for i in range(count)), modality
    i = table.row_of("floods.h5#7", "joint")
    np.testing.assert_array_equal(table.bounds[i], bounds[7])
    assert table.crs[i] == (crs.decode() if isinstance(crs, bytes) else crs)
    assert table.bands[i] == "sar: VV,VH; lores: B4,B3,B2" and table.gsd[i] == 10.0 and table.source[i] == "floods.h5"
    assert table.chip[i].tolist() == [-1, -1, -1, -1]
    assert table.bands[table.row_of("floods.h5#7", "lores")] == "B4,B3,B2"
    # The low-res scene's time, on the joint and the per-modality rows of every chip.
    assert (table.datetime == np.datetime64(S2_TIME.rstrip("Z"), "us")).all()


def test_rows_equal_the_models_joint_and_unimodal_embeddings(floods_set, joint_run, checkpoint):
    _, table = joint_run
    model = load_checkpoint(checkpoint)
    rows = [0, 5, 11]
    assert table.path.count("floods.h5#11") == 3
    with h5py.File(floods_set) as f, torch.no_grad():
        images = {m: normalised(f, m, rows) for m in ("sar", "lores")}
        joint = model.embed_joint(images, {"sar": 10.0, "lores": 10.0}).numpy()
        single = {m: model.embed(x, modality=m, gsd=10.0).numpy() for m, x in images.items()}
    for k, index in enumerate(rows):
        path = f"floods.h5#{index}"
        np.testing.assert_allclose(table.embedding[table.row_of(path, "joint")], joint[k], rtol=1e-4, atol=1e-5)
        for m in ("sar", "lores"):
            np.testing.assert_allclose(table.embedding[table.row_of(path, m)], single[m][k], rtol=1e-4, atol=1e-5)
    # the joint row is not one modality's: fusion changes the tokens
    assert not np.allclose(joint[0], single["lores"][0], atol=1e-3)


def test_encode_joint_equals_the_pretraining_fusion_with_nothing_masked(checkpoint):
    """encode_joint (inference: all tokens, broadcast biases) is forward's fusion path at mask ratio 0."""
    model = load_checkpoint(checkpoint)
    torch.manual_seed(1)
    x = {"sar": torch.randn(2, 2, 16, 16), "lores": torch.randn(2, 3, 16, 16), "hires": torch.randn(2, 3, 64, 64)}
    gsd = {"sar": 10.0, "lores": 10.0, "hires": 2.5}
    with torch.no_grad():
        joint = model.encode_joint(x, gsd)
        geometry = model.geometry({m: tuple(v.shape[-2:]) for m, v in x.items()}, gsd)
        ids, bias, encoded = {}, {}, {}
        for m, v in x.items():
            n = (v.shape[-2] // 8) * (v.shape[-1] // 8)
            ids[m] = geometry.ids(m, torch.arange(n).expand(2, n))
            bias[m] = geometry.bias(ids[m], ids[m], model.config.heads)
            encoded[m] = model.encoders[m](model.patch_tokens(v, m), bias[m])
        reference = model.fuse(encoded, ids, geometry, bias)
    for m in x:
        torch.testing.assert_close(joint[m], reference[m], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_resume_adds_per_modality_rows_to_a_joint_output(floods_set, checkpoint, tmp_path):
    out = tmp_path / "joint.parquet"
    first = embed(floods_set, checkpoint, out, batch_size=16, progress=False)
    again = embed(floods_set, checkpoint, out, per_modality=True, batch_size=16, progress=False)
    assert again.skipped == first.embedded and again.embedded == 2 * first.embedded
    table = read_embeddings(out)
    assert len(set(zip(table.path, table.modality))) == len(table) == 3 * first.embedded


def test_bands_named_from_sentinel2_file_names_match_without_assumption(checkpoint, tmp_path):
    """salibi align names one-band BigEarthNet files B04, B03, B02 and VV, VH from their file names,
    so the checkpoint's bands are found by name: no assumption, no warning."""
    s2 = SAMPLES / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48"
    s1 = SAMPLES / "bigearthnet" / "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    aligned = tmp_path / "ben.h5"
    align(
        lores=[next(s2.glob(f"*_{b}.tif")) for b in ("B04", "B03", "B02")],
        sar=[next(s1.glob(f"*_{p}.tif")) for p in ("VV", "VH")],
        output=aligned,
        tile_size_m=400,
        val_fraction=0,
        progress=False,
    )
    import warnings

    with h5py.File(aligned, "r+") as f:
        del f["datetime"]  # as sets written before it: still embedded, times unknown
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a band assumption would be a warning
        embed(aligned, checkpoint, tmp_path / "ben_joint.h5", progress=False)
    table = read_embeddings(tmp_path / "ben_joint.h5")
    assert set(table.bands) == {"sar: VV,VH; lores: B04,B03,B02"}
    assert len(table) and np.isnat(table.datetime).all()


@pytest.mark.slow
def test_a_missing_band_is_refused_or_filled_with_the_mean(floods_set, tmp_path):
    """A checkpoint whose low-res encoder also takes B08: the set (B4, B3, B2) lacks it."""
    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    model = build("tiny", modalities=("sar", "lores"), channels={"lores": 4})
    ckpt = save_checkpoint(
        model,
        tmp_path / "ckpt4",
        bands={"sar": BANDS["sar"], "lores": [*BANDS["lores"], "B08"]},
        gsd={"sar": 10.0, "lores": 10.0},
        mean={"sar": MEAN["sar"], "lores": [*MEAN["lores"], 2500.0]},
        std={"sar": STD["sar"], "lores": [*STD["lores"], 900.0]},
    )
    with pytest.raises(InputError, match=r"has B4, B3, B2 of the lores encoder's B04, B03, B02, B08 but not B08"):
        embed(floods_set, ckpt, tmp_path / "refused.h5", progress=False)
    embed(floods_set, ckpt, tmp_path / "filled.h5", fill_missing="mean", progress=False)
    table = read_embeddings(tmp_path / "filled.h5")
    assert set(table.bands) == {"sar: VV,VH; lores: B4,B3,B2,B08=mean"}
    loaded = load_checkpoint(ckpt)
    with h5py.File(floods_set) as f, torch.no_grad():
        lores = normalised(f, "lores", [3])
        lores = torch.cat([lores, torch.zeros(1, 1, *lores.shape[-2:])], dim=1)  # B08 = its mean
        expected = loaded.embed_joint({"sar": normalised(f, "sar", [3]), "lores": lores}, {"sar": 10.0, "lores": 10.0})
    np.testing.assert_allclose(table.embedding[table.row_of("floods.h5#3")], expected[0].numpy(), rtol=1e-4, atol=1e-5)


def test_sets_the_cross_modal_encoder_cannot_fuse_are_refused(floods_set, tmp_path):
    lonely = make_checkpoint(tmp_path / "lores_hires", modalities=("lores", "hires"))
    with pytest.raises(InputError, match="needs two modalities that the set .sar, lores. and the checkpoint"):
        embed(floods_set, lonely, tmp_path / "out.h5", progress=False)
    with pytest.raises(InputError, match="--chip-size-m: .* is an aligned set"):
        embed(floods_set, lonely, tmp_path / "out.h5", chip_size_m=320, progress=False)
