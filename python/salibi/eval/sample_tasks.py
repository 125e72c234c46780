"""Real-pixel GEO-Bench tasks made from the sample data shipped in ``data/samples``.

:func:`write_sen1floods11_task` cuts the Sen1Floods11 chip (Sentinel-2 L1C, Sentinel-1 VV/VH,
hand-drawn water mask; Bonafilia et al. 2020, CC BY 4.0) into small chips and writes them in
GEO-Bench's on-disk layout, so ``salibi eval geobench`` (and geobench's own loader) can read
them like a downloaded task. Tests and ``salibi demo`` use it.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import InputError, MissingInputError, OutputExistsError
from salibi.eval import safe_pickle
from salibi.eval.safe_pickle import AffineRecord, CRSRecord, make_record

__all__ = ["SEN1FLOODS11_DIR", "write_sen1floods11_task"]

#: The shipped Sen1Floods11 sample (data/samples/sen1floods11 of a source checkout).
SEN1FLOODS11_DIR = Path(__file__).resolve().parents[3] / "data" / "samples" / "sen1floods11"
_SCENE = "Spain_7370579"
_ACQUIRED = datetime.date(2019, 9, 18)  # Sen1Floods11's Spain event (DANA floods, September 2019)

# geobench's own Sentinel-2 band descriptions (name, alternative names, native GSD, wavelength µm).
_S2_BANDS = [
    ("01 - Coastal aerosol", ("1", "01"), 60, 0.443),
    ("02 - Blue", ("2", "02", "blue"), 10, 0.49),
    ("03 - Green", ("3", "03", "green"), 10, 0.56),
    ("04 - Red", ("4", "04", "red"), 10, 0.665),
    ("05 - Vegetation Red Edge", ("5", "05"), 20, 0.705),
    ("06 - Vegetation Red Edge", ("6", "06"), 20, 0.74),
    ("07 - Vegetation Red Edge", ("7", "07"), 20, 0.783),
    ("08 - NIR", ("8", "08", "NIR"), 10, 0.842),
    ("08A - Vegetation Red Edge", ("8A", "08A"), 20, 0.865),
    ("09 - Water vapour", ("9", "09"), 60, 0.945),
    ("10 - SWIR - Cirrus", ("10",), 60, 1.375),
    ("11 - SWIR", ("11",), 20, 1.61),
    ("12 - SWIR", ("12",), 20, 2.19),
]
_S1_BANDS = [("VV", ("vv",)), ("VH", ("vh",))]
GSD = 10.0


def _band_records(benchmark_module: str) -> list[Any]:
    records = [
        make_record(f"{benchmark_module}.Sentinel2", name=name, alt_names=alt, spatial_resolution=res, wavelength=wl)
        for name, alt, res, wl in _S2_BANDS
    ]
    records += [
        make_record(f"{benchmark_module}.Sentinel1", name=name, alt_names=alt, spatial_resolution=10, wavelength=None)
        for name, alt in _S1_BANDS
    ]
    return records


def _stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)].astype(np.float64)
    q = np.percentile(values, [0.1, 1, 5, 50, 95, 99, 99.9])
    return {
        "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
        "std": float(values.std()), "median": float(q[3]), "percentile_0_1": float(q[0]),
        "percentile_1": float(q[1]), "percentile_5": float(q[2]), "percentile_95": float(q[4]),
        "percentile_99": float(q[5]), "percentile_99_9": float(q[6]),
    }  # fmt: skip


def write_sen1floods11_task(
    root: str | os.PathLike[str],
    chip: int = 64,
    kind: str = "segmentation",
    name: str | None = None,
    source: str | os.PathLike[str] | None = None,
    water_threshold: float = 0.2,
    overwrite: bool = False,
) -> Path:
    """Write the shipped Sen1Floods11 scene as a GEO-Bench task; return the task folder.

    The 512x512 scene (~10 m) is cut into ``chip`` x ``chip`` chips on a regular grid; each
    chip is one sample with the 13 Sentinel-2 bands (int16, geobench's band names) and
    Sentinel-1 ``VV``/``VH`` (float32 dB; no-data as NaN, as in the source).

    ``kind``:
      - ``"segmentation"``: ``root/segmentation_v1.0/<name>/``, label dataset ``label``
        (int16: 0 dry, 1 water, -1 no data, which evaluation ignores), 2 classes;
      - ``"classification"``: ``root/classification_v1.0/<name>/``, label 1 when at least
        ``water_threshold`` of the chip's labelled pixels are water, else 0.

    Splits are spatial blocks of chip columns: the first 5/8 of the columns train, the next
    1/8 validation, the last 1/4 test. Written: one ``<sample>.hdf5`` per chip (band datasets
    plus geobench's ``pickle`` attribute, with per-band date, GSD, affine transform and CRS),
    ``task_specs.pkl`` (written by :func:`salibi.eval.safe_pickle.dumps`: geobench 1.0's class
    paths, plain data only), ``band_stats.json`` and ``default_partition.json`` /
    ``1.00x_train_partition.json``. The folder is assembled under a temporary name and renamed
    when complete. Default ``name``: ``sen1floods11-water-seg`` or ``sen1floods11-water``.
    """
    import h5py
    import rasterio

    if kind not in ("segmentation", "classification"):
        raise InputError(f"kind {kind!r}: choose segmentation or classification")
    if chip < 8 or 512 % chip:
        raise InputError(f"chip {chip}: must divide 512 and be at least 8 (e.g. 32, 64, 128)")
    source_dir = Path(source) if source is not None else SEN1FLOODS11_DIR
    paths = {part: source_dir / f"{_SCENE}_{part}.tif" for part in ("S2Hand", "S1Hand", "LabelHand")}
    for path in paths.values():
        if not path.exists():
            raise MissingInputError(f"{path} does not exist: pass source= the folder holding the Sen1Floods11 "
                                    f"sample ({_SCENE}_S2Hand.tif, _S1Hand.tif, _LabelHand.tif)")  # fmt: skip
    name = name or ("sen1floods11-water-seg" if kind == "segmentation" else "sen1floods11-water")
    benchmark = f"{kind}_v1.0"
    target = Path(root) / benchmark / name
    if target.exists():
        if not overwrite:
            raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it")

    with rasterio.open(paths["S2Hand"]) as src:
        s2 = src.read()
        transform = src.transform
        crs_wkt = src.crs.to_wkt() if src.crs else ""
    with rasterio.open(paths["S1Hand"]) as src:
        s1 = src.read().astype(np.float32)
    with rasterio.open(paths["LabelHand"]) as src:
        label = src.read(1).astype(np.int16)
    if s2.shape[0] != 13 or s1.shape[0] != 2 or s2.shape[1:] != label.shape or s1.shape[1:] != label.shape:
        raise InputError(f"{source_dir}: expected 13 S2 bands, 2 S1 bands and a label on one grid, got "
                         f"{s2.shape}, {s1.shape}, {label.shape}")  # fmt: skip

    module = "geobench.dataset"
    band_records = _band_records(module)
    if kind == "segmentation":
        label_type = make_record(f"{module}.SegmentationClasses", name="label", alt_names=(), spatial_resolution=GSD,
                                 n_classes=2, _class_names=["dry", "water"])  # fmt: skip
    else:
        label_type = make_record("geobench.label.Classification", n_classes=2, _class_names=["no water", "water"])
    specs = make_record(
        "geobench.task.TaskSpecifications",
        dataset_name=name, benchmark_name=benchmark, patch_size=(chip, chip), n_time_steps=1,
        bands_info=band_records, label_type=label_type, spatial_resolution=GSD,
    )  # fmt: skip

    root_path = Path(root) / benchmark
    root_path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root_path))
    try:
        n = label.shape[0] // chip
        partition: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
        class_labels: list[int] = []
        train_cols, valid_cols = round(n * 5 / 8), round(n * 6 / 8)
        band_names = [b.fields["name"] for b in band_records]
        for r in range(n):
            for c in range(n):
                sample = f"chip_{r:02d}_{c:02d}"
                window = (slice(r * chip, (r + 1) * chip), slice(c * chip, (c + 1) * chip))
                chip_label = label[window]
                chip_transform = AffineRecord(transform.a, transform.b, transform.c + c * chip * transform.a,
                                              transform.d, transform.e, transform.f + r * chip * transform.e)  # fmt: skip
                arrays = [s2[i][window] for i in range(13)] + [s1[i][window] for i in range(2)]
                attrs: dict[str, Any] = {}
                with h5py.File(staging / f"{sample}.hdf5", "w") as f:
                    for record, band, data in zip(band_records, band_names, arrays):
                        f.create_dataset(band, data=data)
                        attrs[band] = {"date": _ACQUIRED, "date_id": _ACQUIRED, "spatial_resolution": GSD,
                                       "band_info": record, "meta_info": None, "transform": chip_transform,
                                       "crs": CRSRecord(crs_wkt)}  # fmt: skip
                    order = list(band_names)
                    if kind == "segmentation":
                        f.create_dataset("label", data=chip_label)
                        attrs["label"] = {"date": None, "date_id": None, "spatial_resolution": GSD,
                                          "band_info": label_type, "meta_info": None, "transform": chip_transform,
                                          "crs": CRSRecord(crs_wkt)}  # fmt: skip
                        order.append("label")
                    else:
                        labelled = chip_label >= 0
                        water = float((chip_label == 1).sum()) / max(1, int(labelled.sum()))
                        attrs["label"] = int(water >= water_threshold)
                        class_labels.append(attrs["label"])
                    attrs["bands_order"] = order
                    f.attrs["pickle"] = safe_pickle.dumps_attribute(attrs)
                split = "train" if c < train_cols else "valid" if c < valid_cols else "test"
                partition[split].append(sample)
        (staging / "task_specs.pkl").write_bytes(safe_pickle.dumps(specs))
        stats = {band: _stats(data) for band, data in zip(band_names, list(s2) + list(s1))}
        stats["label"] = _stats(label.astype(np.float64) if kind == "segmentation" else np.array(class_labels, float))
        (staging / "band_stats.json").write_text(json.dumps(stats, indent=4))
        for partition_name in ("default", "1.00x_train"):
            (staging / f"{partition_name}_partition.json").write_text(json.dumps(partition, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
