"""``salibi bias``: draw a Scale-ALiBi bias table as a PNG."""

from __future__ import annotations

import click


def _origin(value: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected X,Y in metres, e.g. 40,-40") from None
    return x, y


@click.command("bias")
@click.option(
    "--query",
    "query_spec",
    required=True,
    metavar="ROWSxCOLS@GSD",
    help="Query grid in patches and metres per pixel, e.g. 16x16@10.",
)
@click.option(
    "--key",
    "key_spec",
    required=True,
    metavar="ROWSxCOLS@GSD",
    help="Key grid, e.g. 32x32@5 (same top-left corner unless --key-offset).",
)
@click.option("--patch", type=click.IntRange(min=1), default=16, show_default=True, help="Patch size in pixels.")
@click.option("--heads", type=click.IntRange(min=1), default=8, show_default=True, help="Attention heads.")
@click.option("--head", type=click.IntRange(min=0), default=0, show_default=True, help="Which head to draw.")
@click.option(
    "--key-offset",
    default="0,0",
    show_default=True,
    metavar="X,Y",
    help="Key grid's top-left corner relative to the query's, metres.",
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True), help="PNG to write.")
def command(query_spec: str, key_spec: str, patch: int, heads: int, head: int, key_offset: str, output: str) -> None:
    """Render the bias between two patch grids as a PNG (like Figure 2 of the paper)."""
    from salibi.bias import parse_grid, render_bias_png

    query = parse_grid(query_spec, patch)
    key = parse_grid(key_spec, patch, origin=_origin(key_offset))
    path = render_bias_png(query, key, output, heads=heads, head=head)
    click.echo(f"wrote {path} ({query.num_patches} x {key.num_patches} table, head {head} of {heads})")
