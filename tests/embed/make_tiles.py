"""Build the tile folders and checkpoints the embed tests use, from real rasters: the samples
shipped in data/samples (SpaceNet 6) and, read in place, Sen1Floods11 and NAIP from ../shared/data.

Everything is written into a folder given by the caller (the tests use pytest's tmp dirs), so
no generated file is committed. Run by hand to look at the result:

    python tests/embed/make_tiles.py /tmp/tiles      # mixed/, resume/ and ckpt/ under /tmp/tiles
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
#: Real data read in place beside the project, never copied into it (../shared/data/README.md).
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SPAIN_S1 = SHARED_DATA / "sen1floods11" / "Spain_7370579_S1Hand.tif"
SPAIN_S2 = SHARED_DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
NAIP = SHARED_DATA / "naip_5m" / "m_4709963_se_14_1_20180716.tif"
SN6 = SAMPLES / "spacenet6_rotterdam"

# Statistics saved with the test checkpoint (rough real values of each sensor).
BANDS = {"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02"], "hires": ["red", "green", "blue"]}
GSD = {"sar": 10.0, "lores": 10.0, "hires": 1.0}
MEAN = {"sar": [-12.0, -19.0], "lores": [1300.0, 1200.0, 1100.0], "hires": [90.0, 95.0, 85.0]}
STD = {"sar": [4.0, 5.0], "lores": [700.0, 650.0, 600.0], "hires": [50.0, 45.0, 40.0]}


def make_checkpoint(folder: Path, seed: int = 0, modalities=("sar", "lores", "hires"), stats: bool = True) -> Path:
    """A tiny model (patch 8) with band names, GSDs and (unless ``stats`` is False) statistics."""
    import torch

    from salibi.models import build, save_checkpoint

    torch.manual_seed(seed)
    model = build("tiny", modalities=modalities)
    pick = lambda d: {m: d[m] for m in modalities}  # noqa: E731
    extra = dict(mean=pick(MEAN), std=pick(STD)) if stats else {}
    return save_checkpoint(model, folder, bands=pick(BANDS), gsd=pick(GSD), **extra)


def crop(src: Path, dst: Path, window: Window, driver: str = "GTiff", **options) -> Path:
    """Copy a window of ``src`` (all bands, georeference, descriptions) to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src) as ds:
        data = ds.read(window=window)
        profile = dict(
            driver=driver,
            width=int(window.width),
            height=int(window.height),
            count=ds.count,
            dtype=ds.dtypes[0],
            crs=ds.crs,
            transform=ds.window_transform(window),
            nodata=ds.nodata,
        )
        profile.update(options)
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
            for i, description in enumerate(ds.descriptions, start=1):
                if description:
                    out.set_band_description(i, description)
            if ds.colorinterp and driver == "GTiff" and ds.count >= 3:
                out.colorinterp = ds.colorinterp
    return dst


def write_png(src: Path, dst: Path, window: Window, world_file: bool) -> Path:
    """An 8-bit RGB PNG/JPEG of ``src``; with ``world_file`` its georeference travels in a world
    file and .aux.xml (GDAL's way for formats without one), else it has none."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    driver = "PNG" if dst.suffix == ".png" else "JPEG"
    with rasterio.open(src) as ds:
        data = ds.read([1, 2, 3], window=window)
        crs, transform = ds.crs, ds.window_transform(window)
    if world_file:
        with rasterio.open(
            dst,
            "w",
            driver=driver,
            width=data.shape[2],
            height=data.shape[1],
            count=3,
            dtype="uint8",
            crs=crs,
            transform=transform,
            WORLDFILE="YES",
        ) as out:
            out.write(data)
    else:
        from PIL import Image

        Image.fromarray(np.moveaxis(data, 0, -1)).save(dst)
    return dst


def make_mixed(folder: Path) -> dict[str, str]:
    """Real tiles of mixed formats, sizes and GSDs. Returns {relative path: what it tests}."""
    tiles = {}
    # Sentinel-1 dB, VV/VH descriptions, geographic CRS, 100x70 px (not a multiple of the patch)
    crop(SPAIN_S1, folder / "s1" / "spain_s1.tif", Window(200, 100, 70, 100))
    tiles["s1/spain_s1.tif"] = "sar"
    # Sentinel-2 13 bands as a COG, 64x64: bands B4, B3, B2 picked by name
    crop(SPAIN_S2, folder / "s2" / "spain_s2_cog.tif", Window(128, 64, 64, 64), driver="COG")
    tiles["s2/spain_s2_cog.tif"] = "lores"
    # NAIP RGBN 5 m, the whole 724x934 scene: embedded in windows
    crop(NAIP, folder / "naip" / "naip_full.tif", Window(0, 0, 934, 724))
    tiles["naip/naip_full.tif"] = "lores"
    # NAIP crop as lossless JPEG 2000
    crop(
        NAIP,
        folder / "naip" / "naip_crop.jp2",
        Window(300, 200, 96, 80),
        driver="JP2OpenJPEG",
        REVERSIBLE="YES",
        QUALITY="100",
    )
    tiles["naip/naip_crop.jp2"] = "lores"
    # SpaceNet 6: dB SAR with 4 bands at 4.5 m (auto: dB -> sar), RGB composite at 4.5 m (hires)
    crop(SN6 / "sar_masked.tif", folder / "sn6" / "sar_db.tif", Window(0, 0, 120, 120))
    tiles["sn6/sar_db.tif"] = "sar"
    crop(SN6 / "rgb_unmasked.tif", folder / "sn6" / "rgb.tif", Window(20, 30, 90, 75))
    tiles["sn6/rgb.tif"] = "hires"
    # complex SLC, VV and VH stacked into one 2-band complex file (2.5 m)
    slc = folder / "sn6" / "slc_vv_vh.tif"
    with rasterio.open(SN6 / "sar_vv.tif") as vv, rasterio.open(SN6 / "sar_vh.tif") as vh:
        window = Window(40, 40, 64, 48)
        profile = dict(
            driver="GTiff",
            width=64,
            height=48,
            count=2,
            dtype="complex64",
            crs=vv.crs,
            transform=vv.window_transform(window),
        )
        with rasterio.open(slc, "w", **profile) as out:
            out.write(vv.read(1, window=window), 1)
            out.write(vh.read(1, window=window), 2)
    tiles["sn6/slc_vv_vh.tif"] = "sar"
    # a tile smaller than one patch
    crop(SN6 / "rgb_unmasked.tif", folder / "sn6" / "tiny_rgb.tif", Window(0, 0, 7, 5))
    tiles["sn6/tiny_rgb.tif"] = "hires"
    # PNG and JPEG: one with a world file (georeferenced), one without (fails unless --gsd)
    write_png(SN6 / "rgb_unmasked.tif", folder / "photos" / "georef.jpg", Window(100, 100, 64, 64), world_file=True)
    tiles["photos/georef.jpg"] = "hires"
    write_png(SN6 / "rgb_unmasked.tif", folder / "photos" / "plain.png", Window(50, 60, 40, 48), world_file=False)
    tiles["photos/plain.png"] = "failed: no georeference"
    # one band only: too few for the RGB encoder
    crop(SN6 / "pan1.tif", folder / "sn6" / "pan.tif", Window(0, 0, 64, 64))
    tiles["sn6/pan.tif"] = "failed: too few bands"
    # a GeoTIFF cut short, as an interrupted download leaves it
    whole = crop(SN6 / "rgb_unmasked.tif", folder / "broken" / "whole.tif", Window(0, 0, 200, 200))
    data = whole.read_bytes()
    whole.unlink()
    (folder / "broken" / "truncated.tif").write_bytes(data[: len(data) * 2 // 3])
    tiles["broken/truncated.tif"] = "failed: truncated"
    # not tiles: ignored
    (folder / "README.txt").write_text("notes, not a tile\n")
    (folder / "s2" / "metadata.json").write_text("{}\n")
    hidden = folder / ".cache"
    hidden.mkdir()
    crop(SN6 / "rgb_unmasked.tif", hidden / "ignored.tif", Window(0, 0, 16, 16))
    return tiles


def make_resume_set(folder: Path, count: int = 48, size: int = 128) -> list[str]:
    """``count`` overlapping ``size`` px Sentinel-2 crops (13 bands, geographic), one GeoTIFF each."""
    names = []
    with rasterio.open(SPAIN_S2) as ds:
        stride = (ds.width - size) // 6
        for k in range(count):
            r, c = divmod(k, 7)
            name = f"row{r}/s2_{k:03d}.tif"
            crop(SPAIN_S2, folder / name, Window(c * stride, r * stride, size, size))
            names.append(name)
    return sorted(names)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "embed-tiles")
    make_checkpoint(root / "ckpt")
    for rel, what in make_mixed(root / "mixed").items():
        print(f"{rel}: {what}")
    print(f"{len(make_resume_set(root / 'resume'))} tiles in {root / 'resume'}")
