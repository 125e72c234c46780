"""``salibi embed``: tiles, scene chips or aligned chips to embeddings (library: salibi.embed)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.cli.options import (
    attention_option,
    batch_size_option,
    checkpoint_option,
    device_option,
    num_workers_option,
)
from salibi.embed.settings import DEFAULTS as EMBED_DEFAULTS
from salibi.embed.settings import FILL_CHOICES
from salibi.errors import InputError
from salibi.vocabulary import EMBEDDING_SPACES, MODALITIES


@click.command("embed")
@click.argument("source", type=click.Path(path_type=Path), metavar="INPUT")
@checkpoint_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output, its format by extension: .h5 (HDF5, salibi-embeddings v2) or .parquet (GeoParquet 1.1, "
    "chip footprints as geometry). If it exists, rows already in it are skipped and new ones added.",
)
@click.option(
    "--chip-size-m",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="M",
    help="Cut each raster into a grid of M-metre chips (one row per chip), read window by window in "
    "bounded memory. Without it every file is one tile (one row).",
)
@click.option(
    "--stride-m",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Step between chips (default: the chip size; smaller overlaps them).",
)
@click.option(
    "--max-nodata",
    type=click.FloatRange(0, 1),
    default=EMBED_DEFAULTS.max_nodata,
    show_default=True,
    metavar="F",
    help="Skip chips with more than this share of invalid pixels (recorded in skipped_path/skipped_reason).",
)
@click.option(
    "--modality",
    type=click.Choice(["auto", *MODALITIES]),
    default=EMBED_DEFAULTS.modality,
    show_default=True,
    help="Encoder for every raster; auto: the encoder whose bands the raster has, the GSD breaking ties.",
)
@click.option(
    "--gsd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="M",
    help="Metres per pixel of rasters without a georeference (e.g. plain PNG/JPEG); "
    "without it such tiles are listed as failed.",
)
@click.option(
    "--band-names",
    default=None,
    metavar="A,B,...",
    help="Names of bands 1, 2, ... of every raster, e.g. B04,B03,B02 or VV,VH (overrides what files say).",
)
@click.option(
    "--fill-missing",
    type=click.Choice(FILL_CHOICES),
    default=EMBED_DEFAULTS.fill_missing,
    show_default=True,
    help="A raster lacking a band of its encoder: refuse it (none) or fill the band with its mean (recorded).",
)
@click.option(
    "--per-modality",
    is_flag=True,
    help="Aligned set: also one row per modality through its own encoder, beside the joint row.",
)
@click.option(
    "--space",
    type=click.Choice(EMBEDDING_SPACES),
    default=EMBED_DEFAULTS.space,
    show_default=True,
    help="encoder: each modality's pooled encoder tokens (its own space; what probes and maps take). shared: "
    "those projected into the contrastive space where the modalities meet (search across sensors); an aligned "
    "set then gets one row per modality and no joint row. Recorded in the output as its space.",
)
@click.option(
    "--crs",
    default=None,
    metavar="CRS",
    help="GeoParquet: reproject every footprint to this CRS (e.g. EPSG:4326) and write one file; "
    "without it an output on several CRSs is one file per CRS.",
)
@batch_size_option(EMBED_DEFAULTS.batch_size)
@device_option
@attention_option
@num_workers_option
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    default=EMBED_DEFAULTS.gpus,
    metavar="N",
    help="Embed on N local GPUs (one rank each).",
)
@click.option(
    "--cpu-procs",
    type=click.IntRange(min=0),
    default=EMBED_DEFAULTS.cpu_procs,
    metavar="N",
    help="Embed in N CPU processes (gloo ranks).",
)
def command(
    source: Path,
    checkpoint: str,
    output: Path,
    chip_size_m: float | None,
    stride_m: float | None,
    max_nodata: float,
    modality: str,
    gsd: float | None,
    band_names: str | None,
    fill_missing: str,
    per_modality: bool,
    space: str,
    crs: str | None,
    batch_size: int,
    device: str,
    attention: str,
    num_workers: int,
    gpus: int,
    cpu_procs: int,
) -> None:
    """Embed INPUT: a folder of tiles (every GeoTIFF/COG/JPEG 2000/PNG/JPEG under it, one row
    each), scenes cut into a chip grid (--chip-size-m: a raster or a folder of them, one row per
    chip with its footprint), or an aligned set from salibi align (one row per chip with all its
    modalities through the cross-modal encoder: modality joint).

    \b
    - GSD comes from the georeference (geographic CRSs converted to metres), else --gsd. Scenes
      on a geographic or rotated CRS are reprojected on the fly to the UTM zone of their centre.
    - Bands: auto picks the encoder whose bands the raster has (by name: B4 = B04 = red, Landsat
      numbering, VV/VH, colour interpretation; a PNG/JPEG is RGB); unnamed bands are taken in
      order with a warning; every row records its bands (B04,B03,B02 or 1,2,3 (assumed)).
    - Every row records when its raster was acquired (datetime, UTC) when its tags say so
      (ACQUISITION_DATETIME, as salibi fetch writes it, else the TIFF DateTime tag); else unknown.
    - Any size: images are zero-padded (after normalisation: the band mean) at the bottom and
      right to a multiple of the patch size, never cropped; images over 32x32 patches are
      embedded in windows and the tokens of all windows averaged. Padding is left out of the mean.
    - Unreadable rasters, rasters without a georeference (and no --gsd) or without their
      encoder's bands are listed in failed_path and failed_reason; the others are embedded.
    - Resumable: finished rows are saved as OUT.parts/ files while running; a killed run keeps
      them, and running the same command again (on any number of ranks) embeds only what is missing.
    - Under torchrun, or with --gpus/--cpu-procs, ranks embed disjoint shards; rank 0 merges.

    \b
    Examples:
      salibi embed tiles/ --checkpoint runs/first -o embeddings.h5 --batch-size 64 --num-workers 4
      salibi embed T31UDQ.tif --checkpoint runs/first -o chips.parquet --chip-size-m 320 --gpus 4
      salibi embed floods.h5 --checkpoint runs/first -o joint.parquet --per-modality
      salibi embed floods.h5 --checkpoint runs/first -o shared.h5 --space shared   # then search across sensors
    """
    from salibi.embed import embed

    names = tuple(n.strip() for n in band_names.split(",")) if band_names else None
    if names is not None and not all(names):
        raise click.BadParameter(
            f"{band_names!r}: give one non-empty name per band, comma-separated", param_hint="--band-names"
        )
    summary = embed(
        source,
        checkpoint,
        output,
        chip_size_m=chip_size_m,
        stride_m=stride_m,
        max_nodata=max_nodata,
        modality=modality,
        gsd=gsd,
        band_names=names,
        fill_missing=fill_missing,
        per_modality=per_modality,
        space=space,
        crs=crs,
        batch_size=batch_size,
        device=device,
        attention=attention,
        num_workers=num_workers,
        gpus=gpus,
        cpu_procs=cpu_procs,
        progress=True,
    )
    if summary.rank != 0:
        return
    click.echo(summary.format())
    if summary.failed and not summary.embedded and not summary.skipped:
        first, reason = summary.failures[0]
        what = (
            f"none of the {summary.failed} tile(s)" if summary.unit == "tiles" else f"nothing ({summary.failed} failed)"
        )
        raise InputError(
            f"{what} could be embedded (first: {first}: {reason}); their reasons are in {output} failed_reason"
        )
