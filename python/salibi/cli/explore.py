"""``salibi explore``: an embeddings output as a web page (library: salibi.explore)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.vocabulary import NEIGHBOURS_K


@click.command("explore")
@click.argument("output", type=click.Path(path_type=Path), metavar="OUT")
@click.option(
    "-o",
    "--page",
    type=click.Path(path_type=Path),
    default=None,
    help="The page to write (.html; default: OUT's name with .html, beside it).",
)
@click.option(
    "--k", "k", type=click.IntRange(min=1), default=NEIGHBOURS_K, show_default=True, help="Neighbours listed per chip."
)
@click.option(
    "--basemap",
    default=None,
    metavar="URL|none",
    help="Raster tiles under the chips when online ({z}/{x}/{y} in the URL; default: OpenStreetMap), or none.",
)
def command(output: Path, page: Path | None, k: int, basemap: str | None) -> None:
    """Write OUT (.h5 or .parquet from salibi embed) as one HTML page that opens from disk with no
    network: every chip's footprint on a map, coloured by the first three principal components of
    its embedding; click a chip to see its K nearest neighbours (what salibi search answers for
    it); filter by modality and source.

    \b
    Examples:
      salibi explore chips.parquet -o chips.html
      salibi explore tiles.h5 --k 20 --basemap none
    """
    from salibi.explore import DEFAULT_BASEMAP, explore

    click.echo(explore(output, page, k=k, basemap=DEFAULT_BASEMAP if basemap is None else basemap).format())
