"""``salibi align`` on archives in the Scale-ALiBi authors' released format (tests/align/
pmtiles_archives.py: real Sen1Floods11 and NAIP pixels), end to end: stitching against the source
raster, per-chip ground GSD, SAR saturation, splits, HTTP range reads through a redirect, resume
after kill -9, compact storage, then ``salibi pretrain`` and ``salibi embed`` on the imported set."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pmtiles.tile import zxy_to_tileid
from torch.utils.data import DataLoader

from helpers import REPO
from http_server import FileServer
from salibi.align.pmtiles import import_archives
from salibi.cli import cli
from salibi.data import AlignedDataset
from salibi.models import ModelConfig
from salibi.train.data_facts import read_data_facts
from salibi.train.memory import estimate_step_memory

from .pmtiles_archives import ZOOM, build

KILLER = REPO / "tests" / "faults" / "kill_at_fsync.py"
FULL = {"max_nodata": 0.3}  # partly covered tiles too: more chips from the small scene


@pytest.fixture(scope="module")
def archives(shared, tmp_path_factory):
    return build(shared("data"), tmp_path_factory.mktemp("archives"))


@pytest.fixture(scope="module")
def full(archives, tmp_path_factory):
    """All three archives, salibi's spatial split."""
    out = tmp_path_factory.mktemp("full") / "set.h5"
    summary = import_archives(
        sar=archives.sar, lores=archives.lores, hires=archives.hires, output=out, progress=False, **FULL
    )
    return summary


@pytest.fixture(scope="module")
def by_url(archives, tmp_path_factory):
    """sar (through a 302, as the released dataset's hosting answers) and lores over HTTP, the
    authors' split files, SAR overflow kept."""
    folder = tmp_path_factory.mktemp("splits")
    chips = sorted(
        zxy_to_tileid(ZOOM, x, y) for x in archives.xs[1:-1] for y in archives.ys[1:-1]
    )  # the inner tiles: fully covered
    ids = {"train": chips[:3], "val": chips[3:4], "test": chips[4:5]}
    files = {}
    for name, values in ids.items():
        files[name] = folder / f"split_{name}.npy"
        np.save(files[name], np.array(values, np.uint64))
    with FileServer(archives.sar.parent) as server:
        summary = import_archives(
            sar=server.redirect(archives.sar.name),
            lores=server.url(archives.lores.name),
            output=folder / "set.h5",
            split_ids=files,
            keep_sar_overflow=True,
            progress=False,
        )
        requests = list(server.requests)
    return summary, ids, requests


def centre_latitude(bounds: np.ndarray) -> float:
    """Latitude of a box's centre in EPSG:3857, by PROJ (independent of salibi's formula)."""
    from rasterio.warp import transform

    _, lat = transform("EPSG:3857", "EPSG:4326", [(bounds[0] + bounds[2]) / 2], [(bounds[1] + bounds[3]) / 2])
    return lat[0]


def test_every_chip_has_its_own_ground_gsd(full):
    ds = AlignedDataset(full.path, normalize=False)
    mercator = 2 * math.pi * 6378137.0 / 2**ZOOM / 256
    for i in range(len(ds)):
        sample = ds[i]
        expected = mercator * math.cos(math.radians(centre_latitude(sample["bounds"].numpy())))
        assert sample["gsd"]["sar"] == pytest.approx(expected, rel=1e-9)
        assert sample["gsd"]["lores"] == pytest.approx(expected, rel=1e-9)
        assert sample["gsd"]["hires"] == pytest.approx(expected / 2, rel=1e-9)
    gsds = [ds[i]["gsd"]["lores"] for i in range(len(ds))]
    assert len(set(gsds)) > 1, "chips of different rows should differ"
    batch = next(iter(DataLoader(ds, batch_size=4)))  # default_collate: a (B,) GSD per modality for the model
    assert batch["gsd"]["lores"].shape == (4,) and batch["hires"].shape == (4, 3, 512, 512)


def test_hires_is_the_four_children_stitched_like_the_source_raster(full, archives):
    """The 512 px hires chip equals the placed NAIP raster reprojected onto the chip's tile, up to
    JPEG error; a chip with its quadrants in another order would not."""
    import rasterio
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject

    ds = AlignedDataset(full.path, modalities=["hires"], normalize=False)
    checked = 0
    with rasterio.open(archives.naip) as naip:
        source = np.concatenate([naip.read(), np.ones((1, naip.height, naip.width), np.uint8)]).astype(np.float32)
        for i in range(len(ds)):
            sample = ds[i]
            expected = np.zeros((4, 512, 512), np.float32)
            reproject(source, expected, src_transform=naip.transform, src_crs=naip.crs,
                      dst_transform=from_bounds(*sample["bounds"].numpy(), 512, 512), dst_crs=naip.crs,
                      resampling=Resampling.nearest)  # fmt: skip
            covered = expected[3] > 0  # where the raster has pixels (partly covered tiles: alpha 0 elsewhere)
            chip = sample["hires"].numpy()
            error = np.abs(chip - expected[:3])[:, covered].mean()
            assert error < 4.0, f"chip {i}: mean difference {error:.1f} from the source"
            swapped = np.concatenate([chip[:, :, 256:], chip[:, :, :256]], axis=2)
            assert np.abs(swapped - expected[:3])[:, covered].mean() > 3 * error
            checked += 1
    assert checked == full.chips_kept >= 6


def test_lores_and_sar_pixels_are_the_archive_tiles(full, archives):
    """Bands, validity and the SAR saturation repair, against the tiles decoded by Pillow directly."""
    from pmtiles.reader import MmapSource, Reader

    ds = AlignedDataset(full.path, modalities=["sar", "lores"], normalize=False)
    with h5py.File(full.path) as f:
        zxy, saturated, split = f["tile_zxy"][:], f["sar/saturated"][:], f["split"][:]
        stats = f["lores/mean"][:], f["lores/std"][:]
    train_pixels = []
    with archives.sar.open("rb") as s, archives.lores.open("rb") as v:
        sar_reader, lores_reader = Reader(MmapSource(s)), Reader(MmapSource(v))
        for i in range(len(ds)):
            sample = ds[i]
            sar = np.asarray(Image.open(io.BytesIO(sar_reader.get(*zxy[i]))))
            lores = np.asarray(Image.open(io.BytesIO(lores_reader.get(*zxy[i]))))
            valid = lores[..., 3] > 0
            np.testing.assert_array_equal(sample["lores"].numpy()[:, valid], lores[valid][:, :3].T)
            wrapped = (sar[..., 1:3] == 0) & (sar[..., 3:] > 0)
            assert saturated[i] == wrapped.sum()
            expected = np.where(wrapped, 255, sar[..., 1:3]).astype(np.float32)
            sar_valid = sar[..., 3] > 0
            np.testing.assert_array_equal(np.moveaxis(sample["sar"].numpy(), 0, -1)[sar_valid], expected[sar_valid])
            if split[i] == 0:
                train_pixels.append(lores[valid][:, :3])
    assert full.sar_saturated == saturated.sum() > 0
    pixels = np.concatenate(train_pixels).astype(np.float64)
    np.testing.assert_allclose(stats[0], pixels.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats[1], pixels.std(axis=0), rtol=1e-4)


def test_the_set_is_compact_and_says_what_it_dropped(full):
    assert full.size_ratio <= 1.5, full.format()
    assert (
        full.chips_in_every_archive
        == full.chips_kept + full.dropped_missing_child + full.dropped_nodata + full.dropped_buffer
    )
    assert full.dropped_missing_child > 0  # the placed NAIP leaves the south without hires children
    assert "missing a hires tile of zoom 16" in full.format() and full.chips_val > 0


def test_split_files_over_http_with_a_redirect_and_overflow_kept(by_url, archives):
    summary, ids, requests = by_url
    assert (summary.chips_train, summary.chips_val, summary.chips_test) == (3, 1, 1)
    assert summary.dropped_no_split == summary.chips_in_every_archive - 5
    for split, name in (("train", "train"), ("val", "val"), ("test", "test")):
        ds = AlignedDataset(summary.path, split=split, normalize=False)
        with h5py.File(summary.path) as f:
            assert sorted(f["tile_id"][[ds.locate(i)[1] for i in range(len(ds))]].tolist()) == ids[name]
    test = AlignedDataset(summary.path, split="test", normalize=False)
    assert summary.sar_overflow == "kept" and summary.sar_saturated > 0
    assert any((test[i]["sar"] == 0).any() for i in range(len(test)))  # saturated values stay 0
    facts = read_data_facts([summary.path])  # what pretrain plans with: the GSD is per chip
    assert all(v.gsd_per_chip for v in facts.files[0].modalities.values())
    config, chips = ModelConfig.for_size("tiny"), {m: (256, 256) for m in ("sar", "lores")}
    alike, own = (estimate_step_memory(config, chips, 0.5, 4, 4, 0, gsd_per_chip=g).biases for g in (False, True))
    assert own - alike == 3 * config.decoder_heads * 2048**2 * 4  # one decoder bias per sample, not one in all
    statuses = [r.status for r in requests]
    assert 302 in statuses and set(statuses) <= {206, 302}
    served = sum(r.sent for r in requests)
    assert served < archives.sar.stat().st_size + archives.lores.stat().st_size


def test_killed_import_continues_where_it_stopped(full, archives, tmp_path):
    """kill -9 while the second part is written; the same command finishes with the first part
    reused, and writes the same set as an import never killed."""
    out = tmp_path / "set.h5"
    args = ["align", "--sar", str(archives.sar), "--lores", str(archives.lores), "--hires", str(archives.hires),
            "-o", str(out), "--max-nodata", str(FULL["max_nodata"])]  # fmt: skip
    killed = subprocess.run(
        [sys.executable, str(KILLER), r"/\.part-000001\.h5\.[^/]*\.tmp$", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -9, killed.stderr
    work = tmp_path / ".set.h5.import"
    assert (work / "part-000000.h5").exists() and not out.exists()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "chips from an earlier run" in result.output and not work.exists()
    with h5py.File(out) as resumed, h5py.File(full.path) as whole:
        for name in (
            "split",
            "tile_id",
            "bounds",
            "sar/tile_bytes",
            "hires/tile_offsets",
            "lores/mean",
            "hires/chip_gsd",
        ):
            np.testing.assert_array_equal(resumed[name][:], whole[name][:], err_msg=name)


def test_pretrain_and_embed_use_the_imported_set(by_url, tmp_path):
    summary, _, _ = by_url
    run = tmp_path / "run"
    trained = CliRunner().invoke(
        cli, ["pretrain", str(summary.path), "--out", str(run), "--batch-size", "2", "--max-steps", "1", "--quiet"]
    )
    assert trained.exit_code == 0, trained.output
    embedded = tmp_path / "embeddings.h5"
    result = CliRunner().invoke(cli, ["embed", str(summary.path), "--checkpoint", str(run), "-o", str(embedded)])
    assert result.exit_code == 0, result.output
    with h5py.File(embedded) as f, h5py.File(summary.path) as s:
        assert f["embedding"].shape[0] == s["split"].shape[0] == 5
        assert np.isfinite(f["embedding"][:]).all()
        np.testing.assert_allclose(np.sort(f["gsd"][:]), np.sort(s["sar/chip_gsd"][:]), rtol=1e-9)


def test_hires_without_children_is_its_own_tile(archives, tmp_path):
    """A hires archive of the chip zoom alone: each hires chip is that tile, 256 px at the chips' GSD."""
    from pmtiles.reader import MmapSource, all_tiles

    from .pmtiles_archives import write_archive

    with archives.hires.open("rb") as f:
        same_zoom = {zxy: bytes(data) for zxy, data in all_tiles(MmapSource(f)) if zxy[0] == ZOOM}
    hires = write_archive(tmp_path / "hires_z15.pmtile", same_zoom)
    summary = import_archives(lores=archives.lores, hires=hires, output=tmp_path / "set.h5", progress=False, **FULL)
    assert summary.chip_px == {"lores": 256, "hires": 256} and summary.dropped_missing_child == 0
    ds = AlignedDataset(summary.path, normalize=False)
    with h5py.File(summary.path) as f:
        zxy = f["tile_zxy"][:]
    sample = ds[0]
    assert sample["gsd"]["hires"] == sample["gsd"]["lores"]
    tile = np.asarray(Image.open(io.BytesIO(same_zoom[tuple(int(v) for v in zxy[0])])).convert("RGBA"))
    valid = tile[..., 3] > 0
    np.testing.assert_array_equal(sample["hires"].numpy()[:, valid], tile[valid][:, :3].T.astype(np.float32))
