"""``salibi embed``: one embedding per tile of a folder (library: salibi.embed)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.cli.options import batch_size_option, checkpoint_option, device_option, num_workers_option
from salibi.errors import InputError
from salibi.vocabulary import MODALITIES


@click.command("embed")
@click.argument("tiles_dir", type=click.Path(path_type=Path), metavar="TILES_DIR")
@checkpoint_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Embeddings file (HDF5, salibi-embeddings v1). If it exists, tiles already in it are skipped "
    "and new ones appended.",
)
@click.option(
    "--modality",
    type=click.Choice(["auto", *MODALITIES]),
    default="auto",
    show_default=True,
    help="Encoder for every tile; auto: SAR for complex, 2-band or dB tiles, else high-res optical "
    "below 5 m/px, else low-res optical.",
)
@click.option(
    "--gsd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="M",
    help="Metres per pixel of tiles without a georeference (e.g. plain PNG/JPEG); "
    "without it such tiles are listed as failed.",
)
@batch_size_option(32)
@device_option
@num_workers_option
def command(
    tiles_dir: Path,
    checkpoint: str,
    output: Path,
    modality: str,
    gsd: float | None,
    batch_size: int,
    device: str,
    num_workers: int,
) -> None:
    """Embed every GeoTIFF/COG/JPEG 2000/PNG/JPEG tile under TILES_DIR (recursively): one row
    per tile with its path, modality, GSD, bounds and CRS.

    \b
    - GSD comes from the georeference (geographic CRSs converted to metres), else --gsd.
    - Bands: the checkpoint's bands by name (B4 = B04 = red) when the tile names them, else
      red/green/blue by name, else the first bands; normalised with the checkpoint's statistics.
    - Any size: tiles are zero-padded (after normalisation: the band mean) at the bottom and
      right to a multiple of the patch size, never cropped; tiles over 32x32 patches are
      embedded in windows and the tokens of all windows averaged. Padding is left out of the mean.
    - Unreadable tiles, tiles without a georeference (and no --gsd) or with too few bands are
      listed in /failed_path and /failed_reason; the others are embedded.
    - Resumable: finished rows are saved as OUT.parts/ files while running; a killed run keeps
      them, and running the same command again embeds only what is missing.

    \b
    Example:
      salibi embed tiles/ --checkpoint runs/first -o embeddings.h5 --batch-size 64 --num-workers 4
    """
    from salibi.embed import embed_folder

    summary = embed_folder(
        tiles_dir,
        checkpoint,
        output,
        modality=modality,
        gsd=gsd,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=True,
    )
    click.echo(summary.format())
    if summary.failed and not summary.embedded and not summary.skipped:
        reason = summary.failures[0][1]
        raise InputError(
            f"none of the {summary.failed} tile(s) could be embedded (first: {summary.failures[0][0]}: {reason}); "
            f"their reasons are in {output} /failed_reason"
        )
