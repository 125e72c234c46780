"""``salibi map``: a picture of an embeddings output (library: salibi.embed.maps)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.vocabulary import MAP_COLOUR_COLUMNS, MAP_METHODS


@click.command("map")
@click.argument("output", type=click.Path(path_type=Path), metavar="OUT")
@click.option(
    "-o",
    "--image",
    required=True,
    type=click.Path(path_type=Path),
    help="The picture: .png (a 2-D projection, or a scene with --scene) or .tif (a scene's chips as a GeoTIFF).",
)
@click.option(
    "--method",
    type=click.Choice(MAP_METHODS),
    default="auto",
    show_default=True,
    help="2-D projection: UMAP (pip install 'salibi[umap]'), PCA, or auto (UMAP when installed).",
)
@click.option(
    "--color-by",
    "colour_by",
    type=click.Choice(MAP_COLOUR_COLUMNS),
    default="cluster",
    show_default=True,
    help="Colour of the points: a k-means cluster, or a column.",
)
@click.option("--clusters", type=click.IntRange(min=1), default=8, show_default=True, help="k of the k-means.")
@click.option("--modality", default=None, metavar="M", help="Rows of this modality only (e.g. joint).")
@click.option(
    "--scene",
    default=None,
    metavar="SOURCE",
    help="Draw this source's chips on their chip grid: three principal components as red, green, blue.",
)
def command(
    output: Path, image: Path, method: str, colour_by: str, clusters: int, modality: str | None, scene: str | None
) -> None:
    """Draw OUT (.h5 or .parquet from salibi embed): every row projected to 2-D and coloured by
    cluster or column (a PNG), or, for a scene (--scene SOURCE, or -o *.tif when OUT holds one
    source), a false-colour image of three principal components of its chip embeddings laid on
    the chip grid: a GeoTIFF, or a PNG with a world file.

    \b
    Examples:
      salibi map chips.parquet -o projection.png --color-by source
      salibi map chips.parquet -o pcs.tif --scene T31UDQ.tif
    """
    from salibi.embed.maps import projection_map, scene_map

    if scene is not None or image.suffix.lower() in (".tif", ".tiff"):
        summary = scene_map(output, image, source=scene, modality=modality)
    else:
        summary = projection_map(
            output, image, method=method, colour_by=colour_by, clusters=clusters, modality=modality
        )
    click.echo(summary.format())
