"""``salibi fetch``: the scenes of an area and dates from a STAC archive, ready for ``salibi align DIR``.

Thin: parses the options, calls :func:`salibi.fetch.fetch` and prints its summary.
"""

from __future__ import annotations

import click

from salibi.cli.options import parse_modality_values
from salibi.fetch.stac.catalogs import CATALOGS

_DEFAULTS = "; ".join(
    f"{name}: " + ", ".join(f"--{m} {c}" for m, c in catalog.collections.items()) for name, catalog in CATALOGS.items()
)


@click.command("fetch")
@click.option("--bbox", metavar="W,S,E,N", help="The area, in degrees of longitude and latitude.")
@click.option(
    "--datetime", "datetime_range", required=True, metavar="START/END", help="Dates, e.g. 2023-06-01/2023-08-31."
)
@click.option(
    "--stac",
    default=next(iter(CATALOGS)),
    show_default=True,
    metavar="NAME|URL",
    help=f"The STAC API: {', '.join(CATALOGS)} or the http(s) URL of any STAC API.",
)
@click.option("--lores", metavar="COLLECTION", help="Low-res optical collection ('none' to leave it out).")
@click.option("--sar", metavar="COLLECTION", help="SAR collection ('none' to leave it out).")
@click.option("--hires", metavar="COLLECTION", help=f"High-res optical collection (e.g. naip). Defaults: {_DEFAULTS}.")
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=10.0,
    show_default=True,
    metavar="PCT",
    help="Drop optical scenes with more cloud cover (eo:cloud_cover, percent).",
)
@click.option(
    "--max-days-apart",
    type=click.FloatRange(min=0),
    default=12.0,
    show_default=True,
    metavar="D",
    help="Pair an optical scene only with SAR/high-res scenes this close in time.",
)
@click.option(
    "--bands",
    "band_values",
    multiple=True,
    metavar="MODALITY=NAME,...",
    help="Bands to fetch, by name (Sentinel-2 B04 or red, nir, ...; VV, VH), e.g. --bands lores=B04,B03,B02,B08 "
    "(default: what a default model takes: sar VV,VH; lores B04,B03,B02; hires red,green,blue).",
)
@click.option(
    "--tiles",
    multiple=True,
    metavar="Z/X/Y|Z",
    help="Fetch web-mercator tiles as separate areas (repeatable); a zoom Z alone: every tile of --bbox at Z.",
)
@click.option(
    "--shard",
    metavar="I/N",
    help="Fetch every N-th area from the I-th (0-based), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; "
    "all shards write into one -o and their manifests merge.",
)
@click.option("--jobs", type=click.IntRange(min=1), default=4, show_default=True, help="Files read at once.")
@click.option(
    "--tries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Tries per file on 429/5xx, timeouts and dropped connections (backoff doubles; Retry-After honoured).",
)
@click.option(
    "--allow-s3",
    is_flag=True,
    help="Also read s3:// asset hrefs, with your AWS credentials (requester-pays buckets bill your account).",
)
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="Folder to fetch into.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def command(
    bbox: str | None,
    datetime_range: str,
    stac: str,
    lores: str | None,
    sar: str | None,
    hires: str | None,
    max_cloud: float,
    max_days_apart: float,
    band_values: tuple[str, ...],
    tiles: tuple[str, ...],
    shard: str | None,
    jobs: int,
    tries: int,
    allow_s3: bool,
    output: str,
    quiet: bool,
) -> None:
    """Search a STAC archive for the scenes of an area and dates, pair optical with SAR (and
    high-res) scenes by date, choose them by a greedy cover of the area, and fetch only the area's
    window of each file into one folder with a manifest.json; resumable, shardable.

    \b
    Examples:
      salibi fetch --bbox -0.78,38.08,-0.74,38.13 --datetime 2023-06-01/2023-08-31 -o spain
      salibi align spain -o spain.h5
      salibi fetch --stac planetary-computer --hires naip --bbox ... --datetime ... -o dir
      salibi fetch --bbox ... --datetime ... --tiles 12 --shard $I/$N -o dir   # one rank of N
    """
    from salibi.fetch import fetch

    summary = fetch(
        output=output,
        datetime=datetime_range,
        bbox=bbox,
        stac=stac,
        collections={"lores": lores, "sar": sar, "hires": hires},
        bands=parse_modality_values("--bands", band_values, lambda v: v.split(",")),
        max_cloud=max_cloud,
        max_days_apart=max_days_apart,
        tiles=tiles,
        shard=shard,
        jobs=jobs,
        tries=tries,
        allow_s3=allow_s3,
        progress=not quiet,
    )
    click.echo(summary.format())
