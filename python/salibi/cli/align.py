"""``salibi align``: cut co-registered multi-modal chips into one HDF5 training set.

Thin: parses the options, calls :func:`salibi.align.align` (rasters, or a fetch folder) or
:func:`salibi.align.pmtiles.import_archives` (PMTiles archives) and prints its summary.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import click

from salibi.align.settings import DEFAULTS
from salibi.cli.options import overwrite_option, parse_modality_values
from salibi.vocabulary import MODALITIES, MODALITY_HELP

F = TypeVar("F", bound=Callable[..., object])


def _band_list(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ValueError("expected band numbers separated by commas, e.g. lores=4,3,2") from None


def _files_options(f: F) -> F:
    """A repeatable ``--<modality> FILE`` option per modality."""
    # Click lists the option applied last first: --help shows --hires, --lores, --sar.
    for modality in MODALITIES:
        f = click.option(
            f"--{modality}",
            multiple=True,
            metavar="FILE",
            type=click.Path(dir_okay=True, path_type=str),
            help=f"{MODALITY_HELP[modality]} raster (GeoTIFF, JP2, ... anything GDAL reads). Repeat for more files: "
            "they are the bands of this modality in the order given and may differ in resolution. "
            "Or the modality's PMTiles archive of the paper's released dataset (a path or an http(s) URL).",
        )(f)
    return f


@click.command("align")
@click.argument("fetch_folder", required=False, metavar="[DIR]", type=click.Path(path_type=str))
@_files_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="HDF5 training set to write.")
@click.option(
    "--tile-size-m",
    type=float,
    default=DEFAULTS.tile_size_m,
    show_default=True,
    help="Chip side on the ground, metres; a whole number of pixels at every modality's GSD.",
)
@click.option(
    "--gsd",
    "gsd_values",
    multiple=True,
    metavar="MODALITY=M",
    help="Metres per pixel of a modality's chips, e.g. --gsd hires=2.5 --gsd lores=10 "
    "(default: the native GSD of the modality's finest file, rounded to 3 significant digits).",
)
@click.option(
    "--bands",
    "band_values",
    multiple=True,
    metavar="MODALITY=I,J,...",
    help="Bands to keep, numbered from 1 over the concatenated bands of that modality's files "
    "in the order given, e.g. --bands lores=4,3,2 (default: all).",
)
@click.option(
    "--band-names",
    "band_name_values",
    multiple=True,
    metavar="MODALITY=A,B,...",
    help="Names of a modality's kept bands, in order, e.g. --band-names lores=red,green,blue "
    "(default: the files' band descriptions, else the band a Sentinel-1/2 or Landsat band file's name "
    "states, e.g. ..._B04.jp2 -> B04, else FILE:BAND).",
)
@click.option(
    "--crs",
    default=None,
    metavar="CRS",
    help="Projected target CRS, e.g. EPSG:32631 (default: the high-res input's, or the UTM zone "
    "of the footprint when that is geographic).",
)
@click.option(
    "--max-nodata",
    type=float,
    default=DEFAULTS.max_nodata,
    show_default=True,
    help="Drop chips with a larger fraction of invalid (nodata/NaN/zero-fill) pixels in any modality.",
)
@click.option(
    "--val-fraction",
    type=float,
    default=DEFAULTS.val_fraction,
    show_default=True,
    help="Share of kept chips for validation, in spatial blocks; training chips touching a "
    "validation chip are dropped.",
)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seed of the train/validation split.")
@click.option(
    "--zoom",
    type=click.IntRange(0, 30),
    default=None,
    help="PMTiles archives: the zoom of the chips (default: the deepest of the sar/lores archives).",
)
@click.option(
    "--split-ids",
    "split_id_values",
    multiple=True,
    metavar="SPLIT=FILE.npy",
    help="PMTiles archives: keep the authors' splits, e.g. --split-ids train=split_train.npy (train, "
    "validation or val, test; NumPy arrays of tile ids). Default: a spatial split (--val-fraction).",
)
@click.option(
    "--keep-sar-overflow",
    is_flag=True,
    help="PMTiles archives: leave the released SAR's wrapped values (DN >= 1000 stored as 0) as 0 "
    "instead of repairing them to 255.",
)
@overwrite_option
@click.pass_context
def command(
    ctx: click.Context,
    fetch_folder: str | None,
    output: str,
    tile_size_m: float,
    gsd_values: tuple[str, ...],
    band_values: tuple[str, ...],
    band_name_values: tuple[str, ...],
    crs: str | None,
    max_nodata: float,
    val_fraction: float,
    seed: int,
    zoom: int | None,
    split_id_values: tuple[str, ...],
    keep_sar_overflow: bool,
    overwrite: bool,
    **files: tuple[str, ...],
) -> None:
    """Cut chips of identical ground footprint out of high-res optical, low-res optical and SAR
    rasters (any CRS, any GSD) into one HDF5 training set.

    \b
    Chips cover the intersection of all inputs. Two of the three modalities are enough.
    DIR instead of input files: every group (place and time) of a `salibi fetch` folder.
    PMTiles archives instead (the paper's released tiles): one chip per tile in every archive,
    each with its own ground GSD (see README "The paper's dataset").
    Example (Sen1Floods11, geographic inputs brought to UTM):
      salibi align --lores S2Hand.tif --sar S1Hand.tif --gsd lores=10 --gsd sar=10 \\
                   --tile-size-m 240 -o floods.h5
    """
    from salibi.align import align
    from salibi.align.pmtiles import archive_inputs

    inputs: dict[str, Any] = {m: list(files[m]) for m in MODALITIES}  # FILE arguments per modality
    if fetch_folder is None and archive_inputs(inputs):
        _import_archives(ctx, inputs, output, zoom, split_id_values, keep_sar_overflow, max_nodata, val_fraction,
                         seed, overwrite)  # fmt: skip
        return
    for name in ("zoom", "split_id_values", "keep_sar_overflow"):
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            option = "--split-ids" if name == "split_id_values" else f"--{name.replace('_', '-')}"
            raise click.UsageError(f"{option} applies to PMTiles archives only; these inputs are rasters")
    if fetch_folder is not None:
        if any(inputs.values()):
            raise click.UsageError("give a fetch folder DIR or input files (--hires/--lores/--sar), not both")
        from salibi.align.groups import align_fetch_folder

        align = partial(align_fetch_folder, fetch_folder)
    summary = align(
        **({} if fetch_folder is not None else inputs),
        output=output,
        tile_size_m=tile_size_m,
        gsd=parse_modality_values("--gsd", gsd_values, float),
        bands=parse_modality_values("--bands", band_values, _band_list),
        band_names=parse_modality_values("--band-names", band_name_values, lambda v: v.split(",")),
        crs=crs,
        max_nodata=max_nodata,
        val_fraction=val_fraction,
        overwrite=overwrite,
        seed=seed,
        progress=True,
    )
    click.echo(summary.format())


def _import_archives(
    ctx: click.Context,
    inputs: dict[str, Any],
    output: str,
    zoom: int | None,
    split_id_values: tuple[str, ...],
    keep_sar_overflow: bool,
    max_nodata: float,
    val_fraction: float,
    seed: int,
    overwrite: bool,
) -> None:
    from salibi.align.pmtiles import import_archives

    for name in ("tile_size_m", "gsd_values", "band_values", "band_name_values", "crs"):
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            option = {"gsd_values": "--gsd", "band_values": "--bands", "band_name_values": "--band-names"}.get(
                name, f"--{name.replace('_', '-')}"
            )
            raise click.UsageError(
                f"{option} applies to rasters; PMTiles archives are cut tile by tile, each chip at its own GSD"
            )
    splits: dict[str, str] = {}
    for item in split_id_values:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise click.BadParameter(
                f"{item!r}: expected SPLIT=FILE.npy, e.g. train=split_train.npy", param_hint="--split-ids"
            )
        splits[name.strip()] = path.strip()
    summary = import_archives(
        **{m: v[0] for m, v in inputs.items() if v},
        output=output,
        zoom=zoom,
        split_ids=splits,
        max_nodata=max_nodata,
        val_fraction=val_fraction,
        seed=seed,
        keep_sar_overflow=keep_sar_overflow,
        overwrite=overwrite,
        progress=True,
    )
    click.echo(summary.format())
