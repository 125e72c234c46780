"""The bad-input table: every kind of bad input a stranger's files or a typo can give, and the one
line salibi answers with. ``docs/BAD_INPUT.md`` is generated from :data:`CASES` (run this file:
``python tests/faults/bad_input_table.py > docs/BAD_INPUT.md``) and ``test_bad_input.py`` runs
every row and checks the document is current, so the two cannot drift.

A case names the command's arguments with placeholders for the shared inputs ({pan}, {ms}: a
SpaceNet 6 pan/multispectral pair; {set}: an aligned set; {run}: a run trained on it; {ckpt}: a
checkpoint; {root}: a GEO-Bench root; {root2}: a GEO-Bench-2 root; {tiles}: a folder of tiles) and
{case}, its own folder, where ``make`` puts the bad input. ``message`` is the line on stderr with
every folder left out of the paths; "…" stands for text that depends on the machine (GDAL's or
HDF5's words, sizes, process ids).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Maker = Callable[[Path, dict[str, Path]], None]


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    wrong: str  # what is wrong, for the table
    args: tuple[str, ...]
    message: str
    make: Maker | None = None
    status: int = 1
    #: run as an unprivileged user (root reads and writes regardless of permissions)
    unprivileged: bool = False
    #: only where there is no CUDA GPU
    needs_no_gpu: bool = False
    #: why the command does not give this line yet (the row is an expected failure until it does)
    pending: str | None = None


# -- makers: each writes the bad input into the case folder --------------------------------------


def empty(name: str) -> Maker:
    return lambda case, inputs: (case / name).write_bytes(b"")


def text(name: str, content: str = "this is not what it says it is\n" * 20) -> Maker:
    return lambda case, inputs: (case / name).write_text(content)


def folder(name: str) -> Maker:
    return lambda case, inputs: (case / name).mkdir()


def truncated(source: str, name: str, fraction: float = 0.4) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        data = inputs[source].read_bytes()
        (case / name).write_bytes(data[: int(len(data) * fraction)])

    return make


def copy(source: str, name: str, mode: int | None = None) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        target = case / name
        if inputs[source].is_dir():
            shutil.copytree(inputs[source], target)
        else:
            shutil.copyfile(inputs[source], target)
        if mode is not None:
            target.chmod(mode)

    return make


def _raster(case: Path, inputs: dict[str, Path], name: str, change: Callable[[dict, np.ndarray], np.ndarray]) -> None:
    import rasterio

    with rasterio.open(inputs["ms"]) as src:
        profile, data = dict(src.profile), src.read()
    data = change(profile, data)
    profile.update(count=data.shape[0], dtype=str(data.dtype))
    with rasterio.open(case / name, "w", **profile) as out:
        out.write(data)


def no_crs(name: str) -> Maker:
    def change(profile: dict, data: np.ndarray) -> np.ndarray:
        profile.pop("crs", None)
        return data

    return lambda case, inputs: _raster(case, inputs, name, change)


def elsewhere(name: str) -> Maker:
    def change(profile: dict, data: np.ndarray) -> np.ndarray:
        t = profile["transform"]
        profile["transform"] = t.__class__(t.a, t.b, t.c + 100_000, t.d, t.e, t.f)
        return data

    return lambda case, inputs: _raster(case, inputs, name, change)


def all_nan(name: str) -> Maker:
    def change(profile: dict, data: np.ndarray) -> np.ndarray:
        profile["nodata"] = None
        return np.full(data.shape, np.nan, np.float32)

    return lambda case, inputs: _raster(case, inputs, name, change)


def aligned(name: str, modalities: dict, **attrs) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        import h5py

        from faults.aligned_files import write_aligned

        write_aligned(case / name, modalities, fill=None if max(s for _, s, _ in modalities.values()) > 512 else 0.5)
        with h5py.File(case / name, "r+") as f:
            for key, value in attrs.items():
                if key == "nan_mean":
                    f[value]["mean"][0] = np.nan
                else:
                    f.attrs[key] = value

    return make


def hdf5_of_another_kind(name: str) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        import h5py

        with h5py.File(case / name, "w") as f:
            f.create_dataset("embedding", data=np.zeros((3, 4), np.float32))

    return make


def aligned_version(name: str, version: int) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        import h5py

        shutil.copyfile(inputs["set"], case / name)
        with h5py.File(case / name, "r+") as f:
            f.attrs["format_version"] = version

    return make


def checkpoint_with(name: str, change: Callable[[Path], None]) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        shutil.copytree(inputs["ckpt"], case / name)
        change(case / name)

    return make


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _config_version(folder: Path) -> None:
    import json

    document = json.loads((folder / "config.json").read_text())
    document["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(document))


def _config_not_json(folder: Path) -> None:
    (folder / "config.json").write_bytes(b'{"format": "salibi-checkpoint", "model": {"si')


class _RunsCommand:
    def __reduce__(self):  # the classic pickle exploit: os.system at load time
        return (os.system, ("touch /tmp/salibi-bad-input-pwned",))


def hostile_task(name: str) -> Maker:
    """The GEO-Bench root with one task whose task_specs.pkl runs os.system when unpickled."""

    def make(case: Path, inputs: dict[str, Path]) -> None:
        shutil.copytree(inputs["root"], case / name)
        for specs in (case / name).rglob("task_specs.pkl"):
            specs.write_bytes(pickle.dumps(_RunsCommand()))

    return make


def tortilla_with(name: str, change: Callable[[bytes], bytes]) -> Maker:
    """A GEO-Bench-2 root with one dataset whose tortilla file is changed by ``change``."""

    def make(case: Path, inputs: dict[str, Path]) -> None:
        source = next(inputs["root2"].rglob("*.tortilla"))
        target = case / name / source.parent.name / source.name
        target.parent.mkdir(parents=True)
        target.write_bytes(change(source.read_bytes()))

    return make


def _footer_past_the_end(data: bytes) -> bytes:
    import struct

    magic, offset, length, partitions = struct.unpack_from("<2sQQQ", data)
    return data[:2] + struct.pack("<QQQ", len(data) + 4096, length, partitions) + data[26:]


def _cut_in_the_payloads(data: bytes) -> bytes:
    import struct

    _, offset, _, _ = struct.unpack_from("<2sQQQ", data)
    return data[: offset // 2]


def embeddings_of(checkpoint_folder: str, name: str) -> Maker:
    """An embeddings output written with another checkpoint (a model of other weights)."""

    def make(case: Path, inputs: dict[str, Path]) -> None:
        import torch

        from salibi.models import build, save_checkpoint

        torch.manual_seed(99)
        other = save_checkpoint(build("tiny"), case / checkpoint_folder, gsd={"sar": 10, "lores": 10, "hires": 0.5})
        subprocess.run(
            [str(Path(sys.executable).with_name("salibi")), "embed", str(inputs["tiles"]), "--checkpoint", str(other),
             "-o", str(case / name)],
            check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        shutil.rmtree(case / checkpoint_folder)

    return make


def read_only_folder(name: str) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        (case / name).mkdir()
        (case / name).chmod(0o555)

    return make


def fetch_folder(name: str, kind: str) -> Maker:
    """A salibi fetch folder: ``other-query`` (a plan of other dates), ``damaged`` (its plan cut
    short), ``incomplete`` (shard 1 of 2 not done) or ``altered`` (a file outside the folder)."""

    def make(case: Path, inputs: dict[str, Path]) -> None:
        import json

        from salibi.fetch.fetch_job import build_query
        from salibi.fetch.manifest import new_document
        from salibi.fetch.stac.catalogs import resolve_catalog

        query = build_query(resolve_catalog("earth-search"), FETCH_BBOX, "2019-01-01/2019-01-31", {}, {}, 10.0, 12.0,
                            (), False)  # fmt: skip
        parts = case / name / "manifests"
        parts.mkdir(parents=True)
        document = new_document(query, (0, 2 if kind == "incomplete" else 1))
        text = json.dumps(document)
        if kind in ("other-query", "damaged"):
            (parts / "shard-0-of-1.json").write_text(text[: len(text) // 2] if kind == "damaged" else text)
            return
        group = {"files": {"lores": [{"path": "../../etc/passwd"}]}}
        merged = {**document, "shards": 2, "shards_done": [0], "complete": kind == "altered",
                  "areas": [{"key": "bbox", "groups": [group] if kind == "altered" else []}]}  # fmt: skip
        (case / name / "manifest.json").write_text(json.dumps(merged))

    return make


def archives(lores: Callable[[Path, Path], object] | None = None, tile: str | None = None, shift: int = 0) -> Maker:
    """A sar archive and a lores archive in the released format (tests/align/pmtiles_archives.py,
    two tiles of real Sen1Floods11 pixels each) as sar.pmtile and visual.pmtile; ``lores(data, path)``
    writes a hostile lores archive instead; ``tile``: the lores archive's first tile is a
    decompression ``bomb``, of the wrong ``size`` or ``junk``; ``shift``: the lores tiles lie elsewhere."""

    def make(case: Path, inputs: dict[str, Path]) -> None:
        from align import pmtiles_archives

        data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        pmtiles_archives.small_archive(data, case / "sar.pmtile", "sar")
        if lores is not None:
            lores(data, case / "visual.pmtile")
            return
        replace = {
            None: None,
            "bomb": lambda: pmtiles_archives.png_claiming(100_000, 100_000),
            "size": lambda: pmtiles_archives.png_of_size(512),
            "junk": lambda: b"not an image" * 8,
        }[tile]
        pmtiles_archives.small_archive(
            data, case / "visual.pmtile", "lores", replace=replace() if replace else None, shift=shift
        )

    return make


def _archive_built(name: str) -> Callable[[Path, Path], Path]:
    def write(data: Path, path: Path) -> Path:
        from align import pmtiles_archives

        return getattr(pmtiles_archives, name)(data, path)

    return write


def _archive_changed(change: Callable[[bytes], bytes]) -> Callable[[Path, Path], Path]:
    def write(data: Path, path: Path) -> Path:
        from align import pmtiles_archives

        good = pmtiles_archives.small_archive(data, path, "lores")
        path.write_bytes(change(good.read_bytes()))
        return path

    return write


def _root_past_the_end(data: bytes) -> bytes:
    import struct

    return data[:8] + struct.pack("<Q", 10**9) + data[16:]


def split_file_with_objects(name: str) -> Maker:
    def make(case: Path, inputs: dict[str, Path]) -> None:
        archives()(case, inputs)
        np.save(case / name, np.array([{"tile": 1}], dtype=object), allow_pickle=True)

    return make


NON_UTF8 = os.fsdecode(b"caf\xe9.tif")  # Latin-1 bytes: not UTF-8

# -- the table -------------------------------------------------------------------------------------

ALIGN = ("--hires", "{pan}", "--tile-size-m", "60", "-o", "{case}/out.h5")
PMT = ("--sar", "{case}/sar.pmtile", "--lores", "{case}/visual.pmtile", "-o", "{case}/out.h5")
OUT = ("--out", "{case}/run", "--batch-size", "4", "--max-steps", "2", "--quiet")
EVAL = ("--checkpoint", "{ckpt}", "--root", "{root}", "--output", "{case}/results.json")
EMBED = ("--checkpoint", "{ckpt}", "-o", "{case}/out.h5")
FETCH_BBOX = "-0.78,38.08,-0.74,38.13"
FETCH = ("--bbox", FETCH_BBOX, "--datetime", "2019-09-01/2019-09-30", "--quiet")

CASES: tuple[Case, ...] = (
    # align
    Case("align-missing", "align", "a file that does not exist", ("--lores", "{case}/missing.tif", *ALIGN),
         "Error: --lores missing.tif: no such file"),
    Case("align-0-byte", "align", "0-byte file", ("--lores", "{case}/empty.tif", *ALIGN),
         "Error: --lores empty.tif: not a readable raster ('empty.tif' not recognized as being in a supported file "
         "format.)", empty("empty.tif")),
    Case("align-truncated", "align", "truncated GeoTIFF (the pixels cut off)", ("--lores", "{case}/cut.tif", *ALIGN),
         "Error: --lores cut.tif: not a readable raster (cut.tif: TIFFReadDirectory:Failed to read directory at offset …)",
         truncated("ms", "cut.tif")),
    Case("align-not-raster", "align", "wrong format: text named .tif", ("--lores", "{case}/junk.tif", *ALIGN),
         "Error: --lores junk.tif: not a readable raster ('junk.tif' not recognized as being in a supported file "
         "format.)", text("junk.tif")),
    Case("align-directory", "align", "a directory instead of a file", ("--lores", "{case}/tiles", *ALIGN),
         "Error: --lores tiles: is a directory, not a raster file", folder("tiles")),
    Case("align-no-crs", "align", "no CRS", ("--lores", "{case}/nocrs.tif", *ALIGN),
         "Error: --lores nocrs.tif: has no coordinate reference system; georeference it first (e.g. gdal_translate -a_srs)",
         no_crs("nocrs.tif")),
    Case("align-geographic-crs", "align", "wrong CRS: a geographic target", ("--lores", "{ms}", *ALIGN, "--crs", "EPSG:4326"),
         "Error: --crs EPSG:4326: is geographic (degrees); chips need a projected CRS in metres, e.g. a UTM zone such "
         "as EPSG:32631, or leave --crs out to pick one"),
    Case("align-feet", "align", "wrong units: a CRS in feet", ("--lores", "{ms}", *ALIGN, "--crs", "EPSG:2264"),
         "Error: --crs EPSG:2264: its unit is not the metre; choose a projected CRS in metres"),
    Case("align-no-overlap", "align", "inputs of different places", ("--lores", "{case}/far.tif", *ALIGN),
         "Error: the inputs do not overlap: --lores far.tif covers x 693270..693570, y 5747357..5747657 and --hires "
         "pan1.tif covers x 593270..593570, y 5747357..5747657 in EPSG:32631; give rasters of the same place",
         elsewhere("far.tif")),
    Case("align-nan", "align", "NaN everywhere", ("--lores", "{case}/nan.tif", *ALIGN),
         "Error: all 16 chips have more than 5% invalid (nodata/NaN/zero) pixels in some modality (chips over the limit "
         "per modality: lores: 16, hires: 0); check that the inputs hold valid data over the same area, or raise "
         "--max-nodata", all_nan("nan.tif")),
    Case("align-one-modality", "align", "one modality only", ALIGN,
         "Error: need input files for at least two modalities (--hires, --lores, --sar), got only --hires; add files "
         "of another modality"),
    Case("align-band-range", "align", "a band that is not there", ("--lores", "{ms}", *ALIGN, "--bands", "lores=9"),
         "Error: --bands lores: band 9 is out of range; lores has 4 band(s) numbered from 1 (ms1.tif: 4)"),
    Case("align-band-names", "align", "names for the wrong number of bands",
         ("--lores", "{ms}", *ALIGN, "--band-names", "lores=red,green"),
         "Error: --band-names lores: 2 name(s) for 4 band(s) (ms1:1, ms1:2, ms1:3, ms1:4); give one non-empty name per "
         "kept band, in order"),
    Case("align-gsd-units", "align", "wrong units: a GSD that is not positive", ("--lores", "{ms}", *ALIGN, "--gsd", "lores=-2"),
         "Error: --gsd lores=-2: the ground sample distance must be > 0 metres per pixel"),
    Case("align-whole-pixels", "align", "chips that are not whole pixels", ("--lores", "{ms}", *ALIGN[:2], "--tile-size-m", "60.25", *ALIGN[4:]),
         "Error: --tile-size-m 60.25 m is not a whole number of lores pixels at 1 m/px (60.250 px); tile sizes that "
         "fit every modality are multiples of 1 m, e.g. 60 or 61 (or change --gsd)"),
    Case("align-output-directory", "align", "a directory instead of the output file", ("--lores", "{ms}", *ALIGN[:4], "-o", "{case}/out"),
         "Error: -o out: is a directory; give a file name such as out/aligned.h5", folder("out")),
    Case("align-output-exists", "align", "an output that exists", ("--lores", "{ms}", *ALIGN[:4], "-o", "{case}/keep.h5"),
         "Error: -o keep.h5: already exists; pass --overwrite to replace it", text("keep.h5", "keep me")),
    Case("align-output-folder", "align", "an output folder that does not exist", ("--lores", "{ms}", *ALIGN[:4], "-o", "{case}/no/such/out.h5"),
         "Error: -o no/such/out.h5: folder no/such does not exist; create it first"),
    Case("align-unreadable", "align", "unreadable permission", ("--lores", "{case}/locked.tif", *ALIGN),
         "Error: Invalid value for '--lores': Path 'locked.tif' is not readable. (see 'salibi align --help')",
         copy("ms", "locked.tif", 0o000), status=2, unprivileged=True),
    Case("align-read-only-output", "align", "an output folder without write permission", ("--lores", "{ms}", *ALIGN[:4], "-o", "{case}/ro/out.h5"),
         "Error: -o ro/out.h5: folder ro is not writable; choose another output path", read_only_folder("ro"),
         unprivileged=True),
    Case("align-non-utf8", "align", "a non-UTF-8 file name", ("--lores", "{case}/" + NON_UTF8, *ALIGN),
         "Error: --lores caf\\udce9.tif: no such file"),
    Case("align-usage", "align", "a malformed option value", ("--lores", "{ms}", *ALIGN, "--bands", "lores=a"),
         "Error: Invalid value for --bands: 'lores=a': expected band numbers separated by commas, e.g. lores=4,3,2 "
         "(see 'salibi align --help')", status=2),
    # align of PMTiles archives (the paper's released format)
    Case("align-pmtiles-not-an-archive", "align", "wrong format: text named .pmtile", ("--sar", "{case}/sar.pmtile", *PMT[2:3], "{case}/junk.pmtile", *PMT[4:]),
         "Error: --lores junk.pmtile: not a PMTiles archive (it does not start with the PMTiles magic bytes); give the "
         ".pmtile archive itself", archives(lores=lambda data, path: (path.parent / "junk.pmtile").write_text("this is not what it says it is\n" * 20))),
    Case("align-pmtiles-version", "align", "a PMTiles archive of version 2", PMT,
         "Error: --lores visual.pmtile: PMTiles version 2 (an older layout); salibi reads version 3: convert it with "
         "`pmtiles convert`", archives(lores=lambda data, path: path.write_bytes(b"PM\x02\x00" + bytes(508)))),
    Case("align-pmtiles-truncated", "align", "truncated PMTiles archive (tiles cut off)", PMT,
         "Error: --lores visual.pmtile: the tile data (as the header says) at bytes … lies outside the file (… bytes): "
         "the archive is truncated or damaged; download it again",
         archives(lores=_archive_changed(lambda data: data[: int(len(data) * 0.6)]))),
    Case("align-pmtiles-offset", "align", "a header offset past the end of the file", PMT,
         "Error: --lores visual.pmtile: the root directory (as the header says) at bytes 1000000000..… lies outside "
         "the file (… bytes): the archive is truncated or damaged; download it again",
         archives(lores=_archive_changed(_root_past_the_end))),
    Case("align-pmtiles-directory-bomb", "align", "a directory that gzip-expands to 20 MiB", PMT,
         "Error: --lores visual.pmtile: the root directory: expands to more than 16777216 bytes (a decompression "
         "bomb?); salibi does not read it", archives(lores=_archive_built("archive_with_directory_bomb"))),
    Case("align-pmtiles-leaf-loop", "align", "a leaf directory pointed to twice (a loop)", PMT,
         "Error: --lores visual.pmtile: a leaf directory at byte … is pointed to twice; the archive is damaged",
         archives(lores=_archive_built("archive_with_leaf_twice"))),
    Case("align-pmtiles-tile-bomb", "align", "a tile claiming 100000 x 100000 px (decompression bomb)", PMT,
         "Error: --lores visual.pmtile: tile 15/16313/12625: refused as a decompression bomb (…)",
         archives(tile="bomb")),
    Case("align-pmtiles-tile-size", "align", "a tile of the wrong size", PMT,
         "Error: --lores visual.pmtile: tile 15/16313/12625: a 512 x 512 px PNG image, not a 256 x 256 px tile",
         archives(tile="size")),
    Case("align-pmtiles-not-image", "align", "a tile that is no image", PMT,
         "Error: --lores visual.pmtile: tile 15/16313/12625: not a PNG, JPEG or WebP image (it starts with 6e 6f 74 "
         "20 61 6e 20 69)", archives(tile="junk")),
    Case("align-pmtiles-elsewhere", "align", "archives of different places", PMT,
         "Error: no tile of zoom 15 is in every archive (tiles at zoom 15: sar: 2, lores: 2); check that the archives "
         "cover the same places, or choose another --zoom", archives(shift=40)),
    Case("align-pmtiles-split-pickle", "align", "a split file holding pickled objects", (*PMT, "--split-ids", "train={case}/split.npy"),
         "Error: --split-ids train=split.npy: holds Python objects (a pickle), which salibi never loads; save the ids "
         "as a plain integer array (np.save(path, ids.astype(np.uint64)))", split_file_with_objects("split.npy")),
    Case("align-pmtiles-with-raster", "align", "an archive and a raster mixed", ("--sar", "{case}/sar.pmtile", "--lores", "{ms}", "-o", "{case}/out.h5"),
         "Error: --lores ms1.tif is a raster but other inputs are PMTiles archives; give archives for every modality "
         "(or rasters for every one)", archives()),
    # pretrain
    Case("pretrain-missing", "pretrain", "a file that does not exist", ("{case}/missing.h5", *OUT),
         "Error: missing.h5: no such file; create it with `salibi align`"),
    Case("pretrain-0-byte", "pretrain", "0-byte file", ("{case}/empty.h5", *OUT),
         "Error: empty.h5: not a readable HDF5 file (Unable to synchronously open file (file signature not found)); "
         "re-create it with `salibi align`", empty("empty.h5")),
    Case("pretrain-truncated", "pretrain", "truncated HDF5", ("{case}/cut.h5", *OUT),
         "Error: cut.h5: not a readable HDF5 file (Unable to synchronously open file (truncated file: eof = …, "
         "sblock->base_addr = 0, stored_eof = …)); re-create it with `salibi align`", truncated("set", "cut.h5")),
    Case("pretrain-other-hdf5", "pretrain", "wrong format: an HDF5 file of another kind", ("{case}/other.h5", *OUT),
         "Error: other.h5: not a salibi aligned training set (no format attribute); re-create it with `salibi align`",
         hdf5_of_another_kind("other.h5")),
    Case("pretrain-version", "pretrain", "wrong format version", ("{case}/v9.h5", *OUT),
         "Error: v9.h5: aligned-set format version 9 is not one this salibi reads (1 or 2); re-create it with "
         "`salibi align`", aligned_version("v9.h5", 9)),
    Case("pretrain-directory", "pretrain", "a directory instead of a file", ("{case}/set", *OUT),
         "Error: Invalid value for 'DATA...': File 'set' is a directory. (see 'salibi pretrain --help')", folder("set"),
         status=2),
    Case("pretrain-one-modality", "pretrain", "one modality only", ("{case}/one.h5", *OUT),
         "Error: one.h5: pretraining needs two modalities present in every file; found lores",
         aligned("one.h5", {"lores": (3, 24, 10.0)})),
    Case("pretrain-nan-statistics", "pretrain", "NaN statistics (a band with no valid pixel)", ("{case}/nan.h5", *OUT),
         "Error: nan.h5: the sar band statistics are not numbers (mean [nan, 0.5], std [0.1, 0.1]): some band has no "
         "valid pixel in the training chips; re-create it with `salibi align` from rasters with valid data",
         aligned("nan.h5", {"sar": (2, 24, 10.0), "lores": (3, 24, 10.0)}, nan_mean="sar")),
    Case("pretrain-whole-patches", "pretrain", "chips that are not a whole number of patches", ("{case}/odd.h5", *OUT),
         "Error: odd.h5: sar chips are 28x28 px, not a whole number of the tiny model's 8-px patches; re-align with a "
         "--tile-size-m that gives a multiple of 8 px at every GSD (e.g. --tile-size-m 240), or another --gsd sar=...",
         aligned("odd.h5", {"sar": (2, 28, 10.0), "lores": (3, 28, 10.0)})),
    Case("pretrain-memory", "pretrain", "chips too large for memory", ("{case}/huge.h5", *OUT[:2], "--model", "base", "--batch-size", "8", "--quiet"),
         "Error: one training step needs an estimated … GiB per rank, more than the … GiB of this machine: … GiB of "
         "attention biases (8 chips per rank and micro-batch; hires has 57600 tokens per chip (~240x240), 28800 kept; "
         "the biases grow with their square), … Lower --batch-size (or raise --accumulate), or re-align with fewer "
         "tokens per chip: a coarser `salibi align --gsd hires=...` or a smaller --tile-size-m (half the side, 1/16 of "
         "the biases)", aligned("huge.h5", {"lores": (3, 96, 10.0), "hires": (3, 3840, 0.25)})),
    Case("pretrain-duplicated", "pretrain", "duplicated paths", ("{set}", "{set}", *OUT),
         "Error: set.h5: given twice (set.h5 is the same file); each file is read once per epoch: drop the repeat"),
    Case("pretrain-resume-other-data", "pretrain", "--resume with other data", ("{case}/other.h5", "--out", "{run}", "--resume", "--quiet"),
         "Error: --resume: other.h5 are not the data run was trained on (set.h5: the number of files, their order, "
         "chips, GSDs, bands or statistics differ); give the run's files in the same order, or start a new run with "
         "another --out", aligned("other.h5", {"sar": (2, 24, 10.0), "lores": (4, 24, 10.0)})),
    Case("pretrain-resume-other-model", "pretrain", "--resume with other settings", ("{set}", "--out", "{run}", "--resume", "--model", "small", "--quiet"),
         "Error: run was started with other settings: --model 'small' (the run has 'tiny'). Drop those options to "
         "resume it, or start a new run with another --out"),
    Case("pretrain-existing-run", "pretrain", "an output run that exists", ("{set}", "--out", "{run}", "--quiet"),
         "Error: run already holds a run (checkpoints up to step 2): pass --resume to continue it, or choose another --out"),
    Case("pretrain-damaged-run", "pretrain", "a damaged run description on --resume", ("{set}", "--out", "{case}/run", "--resume", "--quiet"),
         "Error: run/run.json: unreadable (Expecting property name enclosed in double quotes: line 1 column 2 (char "
         "1)); this is not a salibi run folder",
         lambda case, inputs: ((case / "run").mkdir(), (case / "run" / "run.json").write_text("{not json"))),
    Case("pretrain-batch", "pretrain", "a batch larger than the data", ("{set}", *OUT[:2], "--batch-size", "1000", "--quiet"),
         "Error: --batch-size 1000 is larger than the training split of every file (largest: 25 chips): lower "
         "--batch-size or align more data"),
    Case("pretrain-out-is-file", "pretrain", "a file instead of the output folder", ("{set}", "--out", "{case}/run.txt", "--quiet"),
         "Error: Invalid value for '--out': Directory 'run.txt' is a file. (see 'salibi pretrain --help')",
         text("run.txt"), status=2),
    Case("pretrain-gpus", "pretrain", "GPUs that are not there", ("{set}", *OUT, "--gpus", "4"),
         "Error: --gpus 4: this machine has 0 usable CUDA GPU(s); run on CPU processes with --cpu-procs N instead",
         needs_no_gpu=True),
    Case("pretrain-unreadable", "pretrain", "unreadable permission", ("{case}/locked.h5", *OUT),
         "Error: Invalid value for 'DATA...': File 'locked.h5' is not readable. (see 'salibi pretrain --help')",
         copy("set", "locked.h5", 0o000), status=2, unprivileged=True),
    Case("pretrain-read-only-out", "pretrain", "an output folder without write permission", ("{set}", *OUT[:1], "{case}/ro/run", *OUT[2:]),
         "Error: Permission denied: ro/run", read_only_folder("ro"), unprivileged=True),
    Case("pretrain-usage", "pretrain", "a malformed option value", ("{set}", *OUT, "--mask-ratio", "1"),
         "Error: Invalid value for '--mask-ratio': 1.0 is not in the range 0<=x<1. (see 'salibi pretrain --help')",
         status=2),
    # eval
    Case("eval-missing-checkpoint", "eval", "a checkpoint that does not exist", ("geobench", "--checkpoint", "{case}/none", *EVAL[2:]),
         "Error: none: no such checkpoint or run folder"),
    Case("eval-truncated-weights", "eval", "truncated weights", ("geobench", "--checkpoint", "{case}/ckpt", *EVAL[2:]),
         "Error: ckpt/model.safetensors: damaged or truncated safetensors file: … bytes, but its header describes …; "
         "use another checkpoint",
         checkpoint_with("ckpt", _truncate_weights)),
    Case("eval-checkpoint-version", "eval", "wrong format version", ("geobench", "--checkpoint", "{case}/ckpt", *EVAL[2:]),
         "Error: ckpt/config.json: checkpoint format version 99; this salibi reads version 1 (a newer salibi wrote it? "
         "upgrade salibi)", checkpoint_with("ckpt", _config_version)),
    Case("eval-checkpoint-config", "eval", "truncated JSON", ("geobench", "--checkpoint", "{case}/ckpt", *EVAL[2:]),
         "Error: ckpt/config.json: not valid JSON (Unterminated string starting at: line 1 column 43 (char 42)); the "
         "file is damaged or truncated: use another checkpoint or save it again", checkpoint_with("ckpt", _config_not_json)),
    Case("eval-not-a-root", "eval", "a folder that is not GEO-Bench", ("geobench", *EVAL[:2], "--root", "{case}/empty", *EVAL[4:]),
         "Error: no GEO-Bench tasks under empty: expected classification_v1.0/<task>/ or segmentation_v1.0/<task>/ "
         "folders with task_specs.pkl and .hdf5 samples; pass --root or set GEO_BENCH_DIR", folder("empty")),
    Case("eval-hostile-pickle", "eval", "a hostile pickle", ("geobench", *EVAL[:2], "--root", "{case}/root", *EVAL[4:]),
         "Error: raleigh-landcover: refusing to unpickle posix.system from root/classification_v1.0/raleigh-landcover/"
         "task_specs.pkl: GEO-Bench metadata holds only geobench records, numpy arrays and dates, so this file was not "
         "written by geobench or was altered. Nothing was run. Re-download the task from the official source. (and 1 "
         "more task failed: raleigh-landcover-seg)",
         hostile_task("root")),
    Case("eval-tortilla-offsets", "eval", "tortilla offsets past the end", ("geobench", *EVAL[:2], "--root", "{case}/gb2", *EVAL[4:]),
         "Error: benv2: gb2/benv2/geobench_benv2.tortilla: the header puts the footer at bytes …, outside the … bytes "
         "after the 200-byte header; re-download the file (a partial download or a damaged copy)",
         tortilla_with("gb2", _footer_past_the_end)),
    Case("eval-tortilla-truncated", "eval", "truncated tortilla", ("geobench", *EVAL[:2], "--root", "{case}/gb2", *EVAL[4:]),
         "Error: benv2: gb2/benv2/geobench_benv2.tortilla: the header puts the footer at bytes …, outside the … bytes "
         "after the 200-byte header; re-download the file (a partial download or a damaged copy)",
         tortilla_with("gb2", _cut_in_the_payloads)),
    Case("eval-tortilla-0-byte", "eval", "0-byte tortilla", ("geobench", *EVAL[:2], "--root", "{case}/gb2", *EVAL[4:]),
         "Error: benv2: gb2/benv2/geobench_benv2.tortilla: 0 bytes, shorter than the 200-byte tortilla header; "
         "re-download the file (a partial download or a damaged copy)", tortilla_with("gb2", lambda data: b"")),
    Case("eval-unknown-task", "eval", "a task that is not there", ("geobench", *EVAL, "--tasks", "m-nope"),
         "Error: unknown GEO-Bench task(s) m-nope under geobench; available: raleigh-landcover, raleigh-landcover-seg"),
    Case("eval-output-directory", "eval", "a directory instead of the output file", ("geobench", *EVAL[:4], "--output", "{case}/out"),
         "Error: --output out: give a .json file name (the chart and CSV go beside it)", folder("out")),
    Case("eval-compare-missing", "eval", "results to compare that do not exist", ("geobench", "--compare", "{case}/a.json", "{case}/b.json"),
         "Error: results file a.json does not exist; write one with salibi eval geobench --output"),
    Case("eval-compare-truncated", "eval", "truncated results JSON", ("geobench", "--compare", "{case}/a.json"),
         "Error: a.json is not JSON (Expecting value: line 2 column 1 (char 6)); pass files written by salibi eval "
         "geobench", text("a.json", '{"x":\n')),
    Case("eval-unreadable-checkpoint", "eval", "an unreadable checkpoint folder", ("geobench", "--checkpoint", "{case}/ckpt", *EVAL[2:]),
         "Error: Invalid value for '--checkpoint': Path 'ckpt' is not readable. (see 'salibi eval geobench --help')",
         checkpoint_with("ckpt", lambda f: f.chmod(0o000)), status=2, unprivileged=True),
    # eval retrieval
    Case("eval-retrieval-missing-set", "eval", "an aligned set that does not exist", ("retrieval", "{case}/none.h5", "--checkpoint", "{run}"),
         "Error: none.h5: no such file; create it with `salibi align`"),
    Case("eval-retrieval-not-a-set", "eval", "a text file instead of an aligned set", ("retrieval", "{case}/set.h5", "--checkpoint", "{run}"),
         "Error: set.h5: not a readable HDF5 file (…); re-create it with `salibi align`", text("set.h5")),
    Case("eval-retrieval-one-modality", "eval", "a set sharing one modality with the checkpoint", ("retrieval", "{case}/hl.h5", "--checkpoint", "{run}"),
         "Error: hl.h5: retrieval needs two modalities that the set (lores, hires) and the checkpoint (sar, lores) share; "
         "align the set with two of the checkpoint's modalities",
         aligned("hl.h5", {"hires": (3, 24, 10.0), "lores": (4, 24, 10.0)})),
    Case("eval-retrieval-bands", "eval", "a set without the checkpoint's bands", ("retrieval", "{case}/b.h5", "--checkpoint", "{run}", "--split", "all"),
         "Error: b.h5 /sar: none of its bands (b1, b2) is one of the sar encoder's (VV, VH); align the set with the "
         "checkpoint's sar bands, named (salibi align --band-names)",
         aligned("b.h5", {"sar": (2, 24, 10.0), "lores": (4, 24, 10.0)})),
    Case("eval-retrieval-empty-split", "eval", "no chip of the split", ("retrieval", "{set}", "--checkpoint", "{run}"),
         "Error: set.h5: 0 validation chips; retrieval needs at least 2 to choose among (align with --val-fraction for "
         "validation chips, or give --split train or --split all)"),
    Case("eval-retrieval-output-directory", "eval", "a directory instead of the output file", ("retrieval", "{set}", "--checkpoint", "{run}", "--split", "all", "--output", "{case}/out"),
         "Error: Invalid value for --output: out is a folder; give a .json file name (see 'salibi eval retrieval --help')",
         folder("out"), status=2),
    # embed
    Case("embed-missing", "embed", "a folder that does not exist", ("{case}/none", *EMBED),
         "Error: none: no such file or folder; give a folder of tiles or scenes, a raster or an aligned set"),
    Case("embed-empty-folder", "embed", "nothing to embed", ("{case}/empty", *EMBED),
         "Error: empty: no tiles found (looked for .tif, .tiff, .jp2, .j2k, .png, .jpg, .jpeg files in it and its "
         "subfolders)", folder("empty")),
    Case("embed-0-byte-checkpoint", "embed", "0-byte weights", ("{tiles}", "--checkpoint", "{case}/ckpt", *EMBED[2:]),
         "Error: ckpt/model.safetensors: damaged or truncated safetensors file (0 bytes); use another checkpoint or save "
         "it again", checkpoint_with("ckpt", lambda f: (f / "model.safetensors").write_bytes(b""))),
    Case("embed-output-directory", "embed", "a directory instead of the output file", ("{tiles}", *EMBED[:2], "-o", "{case}/out.h5"),
         "Error: -o out.h5: is a folder; give a file name such as out.h5/embeddings.h5", folder("out.h5")),
    Case("embed-output-other-format", "embed", "an output of another kind", ("{tiles}", *EMBED[:2], "-o", "{case}/set.h5"),
         "Error: -o set.h5: not a salibi embeddings file (…); choose another -o", copy("set", "set.h5")),
    Case("embed-other-checkpoint", "embed", "an output made with another checkpoint", ("{tiles}", *EMBED),
         "Error: -o out.h5 holds embeddings of another checkpoint (sha256 …, variant scale-alibi) than ckpt (sha256 …); "
         "embeddings of different checkpoints do not mix: choose another -o", embeddings_of("other", "out.h5")),
    Case("embed-read-only-output", "embed", "an output folder without write permission", ("{tiles}", *EMBED[:2], "-o", "{case}/ro/out.h5"),
         "Error: -o ro/out.h5: cannot write there (Permission denied); choose a writable location",
         read_only_folder("ro"), unprivileged=True),
    Case("embed-usage", "embed", "a malformed option value", ("{tiles}", *EMBED, "--gsd", "-1"),
         "Error: Invalid value for '--gsd': -1.0 is not in the range x>0. (see 'salibi embed --help')", status=2),
    # fetch (refused before the catalog is asked anything, but the one unreachable catalog)
    Case("fetch-bbox", "fetch", "a box west of its east", ("--bbox", "10,0,5,1", *FETCH[2:], "-o", "{case}/out"),
         "Error: --bbox 10,0,5,1: needs -180 <= W < E <= 180 and -90 <= S < N <= 90 (longitude first, degrees)"),
    Case("fetch-dates", "fetch", "dates that end before they start", (*FETCH[:2], "--datetime", "2023-08-31/2023-06-01", "-o", "{case}/out"),
         "Error: --datetime 2023-08-31/2023-06-01: the start is after the end"),
    Case("fetch-stac-file", "fetch", "a catalog that is a local file", ("--stac", "file:///etc", *FETCH, "-o", "{case}/out"),
         "Error: --stac file:///etc: not a catalog name or an http(s) URL of a STAC API; use earth-search, "
         "planetary-computer or a URL such as https://example.com/stac/v1"),
    Case("fetch-stac-down", "fetch", "a catalog nobody answers", ("--stac", "http://127.0.0.1:1", "--lores", "a", "--sar", "b", "--tries", "1", *FETCH, "-o", "{case}/out"),
         "Error: --stac http://127.0.0.1:1: cannot reach the STAC API at http://127.0.0.1:1 (connection refused); "
         "check the URL and the network"),
    Case("fetch-one-modality", "fetch", "one modality only", ("--sar", "none", *FETCH, "-o", "{case}/out"),
         "Error: need collections for two modalities at least (--lores, --sar, --hires), got --lores sentinel-2-l2a; "
         "add another"),
    Case("fetch-band", "fetch", "a band name that is no band", (*FETCH, "--bands", "lores=B99", "-o", "{case}/out"),
         "Error: --bands lores=B99: 'B99' is not a Sentinel-2 band or colour (B04, red, nir)"),
    Case("fetch-tile", "fetch", "a tile that is not there", (*FETCH, "--tiles", "10/5000/1", "-o", "{case}/out"),
         "Error: --tiles 10/5000/1: zoom 10 has tiles 0..1023 in X and Y"),
    Case("fetch-shard", "fetch", "a shard past the last", (*FETCH, "--shard", "2/2", "-o", "{case}/out"),
         "Error: --shard 2/2: give I/N with 0 <= I < N, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"),
    Case("fetch-output-file", "fetch", "a file instead of the output folder", (*FETCH, "-o", "{case}/keep.txt"),
         "Error: -o keep.txt: is a file; give a folder for the fetched scenes", text("keep.txt", "keep me")),
    Case("fetch-other-query", "fetch", "a folder of another query", (*FETCH, "-o", "{case}/dir"),
         'Error: -o dir: holds a fetch of another query (datetime "2019-01-01/2019-01-31" there, '
         '"2019-09-01/2019-09-30" now); use another -o for this one', fetch_folder("dir", "other-query")),
    Case("fetch-damaged-plan", "fetch", "truncated JSON", (*FETCH, "-o", "{case}/dir"),
         "Error: dir/manifests/shard-0-of-1.json: not a readable fetch manifest (…); remove it and run salibi fetch "
         "again", fetch_folder("dir", "damaged")),
    Case("fetch-usage", "fetch", "a malformed option value", (*FETCH, "--max-cloud", "150", "-o", "{case}/out"),
         "Error: Invalid value for '--max-cloud': 150.0 is not in the range 0<=x<=100. (see 'salibi fetch --help')",
         status=2),
    # align DIR (a salibi fetch folder)
    Case("align-dir-not-fetch", "align", "a folder salibi fetch did not write", ("{case}/empty", "-o", "{case}/out.h5"),
         "Error: empty: no manifest.json; give a folder written by salibi fetch (or input files with "
         "--hires/--lores/--sar)", folder("empty")),
    Case("align-dir-incomplete", "align", "a fetch with a shard not done", ("{case}/dir", "-o", "{case}/out.h5"),
         "Error: dir: the fetch is not complete (shard 1/2 not done); run the same salibi fetch command again for it",
         fetch_folder("dir", "incomplete")),
    Case("align-dir-altered", "align", "a manifest naming a file outside its folder", ("{case}/dir", "-o", "{case}/out.h5"),
         "Error: dir/manifest.json: file '../../etc/passwd' is not inside the folder; the manifest was altered",
         fetch_folder("dir", "altered")),
    # bias (sizes the core refuses: a ValueError or MemoryError, never an abort)
    Case("bias-too-large", "bias", "a table no memory holds", ("--query", "4096x4096@10", "--key", "4096x4096@10",
         "-o", "{case}/bias.png"),
         "Error: 4096x4096 query patches against 4096x4096 key patches: heads, query, key: 8 x 16777216 x 16777216 "
         "values need 8.0 PiB (9007199254740992 bytes), which could not be allocated; use smaller sizes"),
)  # fmt: skip


def markdown(cases: tuple[Case, ...] = CASES) -> str:
    """docs/BAD_INPUT.md."""
    pending = [c for c in cases if c.pending]
    lines = [
        "# Bad input: what salibi says",
        "",
        "Every row is checked by `tests/faults/test_bad_input.py`, which runs the command and requires",
        "its exit status (1, or 2 for a usage error), exactly this one line on stderr (no traceback),",
        "and no output left behind or changed. This file is generated from the same list",
        "(`python tests/faults/bad_input_table.py > docs/BAD_INPUT.md`); a test keeps it current.",
        "Paths are shown without their folders; `…` stands for words that depend on the machine",
        "(GDAL's or HDF5's reason, sizes). Rows marked *(unprivileged)* run as the user `nobody`",
        "(permissions mean nothing to root, which CI is).",
        "",
        f"{len(cases)} cases; {len(pending)} of them (marked †) are expected failures until the command",
        "gives the line shown (see the notes below the table).",
        "",
        "| # | command | what is wrong | exit | what the user sees |",
        "|---|---|---|---|---|",
    ]
    for number, case in enumerate(cases, 1):
        wrong = case.wrong + (" *(unprivileged)*" if case.unprivileged else "") + (" †" if case.pending else "")
        message = case.message.replace("|", "\\|")
        lines.append(f"| {number} | `salibi {case.command}` | {wrong} | {case.status} | `` {message} `` |")
    if pending:
        lines += ["", "† Not yet:", ""]
        lines += [f"- {case.id}: {case.pending}" for case in pending]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
