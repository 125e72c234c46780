"""``salibi demo``: align, pretrain, embed and evaluate on the sample data shipped in the repo."""

from __future__ import annotations

import click


@click.command("demo")
@click.option(
    "--out",
    default="demo-out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for aligned/, run/, embeddings.h5 and eval.json (its demo outputs are replaced).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Pretraining steps (fewer for a quicker smoke test).",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=16, show_default=True, help="Chips per step.")
@click.option(
    "--samples",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="The sample-data folder [default: the samples shipped with salibi].",
)
@click.option(
    "--only",
    type=click.Choice(["align"]),
    default=None,
    help="Run this step alone: 'align' writes OUT/aligned/*.h5 only (e.g. for salibi ablate OUT/aligned).",
)
def command(out: str, steps: int, batch_size: int, samples: str | None, only: str | None) -> None:
    """The main job end to end on real data: align six Sentinel-1/2 pairs, pretrain the tiny model
    on the CPU, embed tiles of three sensors and GSDs, evaluate on Landsat-7 land cover at 28.5 m
    and by cross-modal retrieval (Sentinel-1 <-> Sentinel-2), each beside the same model untrained
    (random init) and chance.

    \b
    About 30 s on 2 CPU cores. Output layout:
      OUT/aligned/*.h5  OUT/run/  OUT/embeddings.h5  OUT/eval.json  OUT/eval.random-init.json
      OUT/retrieval.json
      (+ eval.png, tiles/, geobench/)
    """
    from salibi.demo import run_demo
    from salibi.eval.baseline import comparison_rows, comparison_table
    from salibi.eval.retrieval.report import markdown_table

    summary = run_demo(out, steps=steps, batch_size=batch_size, samples=samples, log=click.echo, only=only)
    kept, train, val = summary.chips
    if only == "align":
        click.echo(
            f"aligned     {summary.out / 'aligned'}: {len(summary.aligned)} files, {kept} chips "
            f"({train} train, {val} validation)"
        )
        return
    embedded = summary.embedded
    click.echo("")
    click.echo(summary.baseline_description)
    click.echo("")
    click.echo(comparison_table(comparison_rows(summary.results, summary.baseline)).rstrip())
    click.echo("")
    click.echo(
        f"Cross-modal retrieval on the {summary.retrieval['n_queries']} chips the model trained on (what the "
        "contrastive objective fit; no chip is held out at this size):"
    )
    click.echo("")
    click.echo(markdown_table(summary.retrieval).rstrip())
    click.echo("")
    click.echo(
        f"aligned     {summary.out / 'aligned'}: {len(summary.aligned)} files, {kept} chips "
        f"({train} train, {val} validation)"
    )
    click.echo(
        f"pretrained  {summary.checkpoint}: {summary.steps} steps, loss {summary.first_loss:.3f} -> "
        f"{summary.last_loss:.3f}"
    )
    click.echo(
        f"embedded    {embedded.output}: {embedded.rows} rows ({embedded.failed} failed), "
        f"{embedded.tiles_per_second:.1f} tiles/s"
    )
    click.echo(
        f"evaluated   {summary.out / 'eval.json'} (chart: {summary.out / 'eval.png'}), untrained reference "
        f"{summary.out / 'eval.random-init.json'}, retrieval {summary.out / 'retrieval.json'}"
    )
    timing = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in summary.seconds.items())
    click.echo(f"time        {timing}")
    if summary.results.get("failed"):
        raise SystemExit(1)
