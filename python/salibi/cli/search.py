"""``salibi search``: nearest neighbours in an embeddings output (library: salibi.embed.search)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.cli.options import device_option
from salibi.vocabulary import NEIGHBOURS_K


@click.command("search")
@click.argument("output", type=click.Path(path_type=Path), metavar="OUT")
@click.option(
    "--query",
    required=True,
    metavar="PATH|ROW",
    help="A row of OUT (its path, e.g. scene.tif#r3c5, or its row number) or a raster file to embed "
    "first (needs --checkpoint).",
)
@click.option(
    "--k", "k", type=click.IntRange(min=1), default=NEIGHBOURS_K, show_default=True, help="Neighbours to list."
)
@click.option("--modality", default=None, metavar="M", help="Search rows of this modality only (e.g. joint, lores).")
@click.option(
    "--checkpoint",
    default=None,
    type=click.Path(path_type=str),
    help="The checkpoint that made OUT, to embed a --query file (checked by its sha256).",
)
@device_option
def command(output: Path, query: str, k: int, modality: str | None, checkpoint: str | None, device: str) -> None:
    """List the K rows of OUT (.h5 or .parquet from salibi embed) nearest to a query, by cosine
    similarity, with an exact faiss index (IndexFlatIP over L2-normalised embeddings). The
    query's own rows are left out.

    \b
    Examples:
      salibi search chips.parquet --query T31UDQ.tif#r12c40 --k 5
      salibi search tiles.h5 --query new_tile.tif --checkpoint runs/first
    """
    from salibi.embed.search import search

    click.echo(search(output, query, k=k, modality=modality, checkpoint=checkpoint, device=device).format())
