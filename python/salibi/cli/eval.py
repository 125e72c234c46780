"""``salibi eval geobench``: frozen-encoder evaluation on GEO-Bench (library: salibi.eval)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.cli.options import batch_size_option, device_option, num_workers_option, overwrite_option
from salibi.vocabulary import PROTOCOLS


def _protocol_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in value.split(",") if p.strip())
    if not chosen or any(p not in PROTOCOLS for p in chosen):
        raise click.BadParameter(f"{value!r}: a comma-separated list of {', '.join(PROTOCOLS)}")
    return chosen


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group("eval")
def command() -> None:
    """Evaluate a checkpoint on a benchmark."""


@command.command("geobench")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=str),
    help="A checkpoint folder (model.safetensors + config.json) or a run folder (its newest checkpoint).",
)
@click.option(
    "--root",
    type=click.Path(path_type=str),
    default=None,
    help="GEO-Bench folder holding classification_v1.0/ and segmentation_v1.0/ "
    "[default: $GEO_BENCH_DIR, else ~/dataset/geobench].",
)
@click.option("--tasks", default=None, help="Comma-separated task names, e.g. m-eurosat,m-so2sat [default: all found].")
@click.option(
    "--partition",
    default="default",
    show_default=True,
    help="Partition file to use: default, 1.00x_train, 0.10x_train, ...",
)
@click.option(
    "--protocol",
    "protocols",
    default=",".join(PROTOCOLS),
    show_default=True,
    callback=_protocol_list,
    help="Comma-separated: knn (k=20 cosine), linear (logistic regression, C chosen on valid), "
    "seg (linear head on patch tokens), majority (chance reference: the most frequent "
    "training class). Each runs on the tasks it applies to.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Repeat seeded protocols this many times; metrics are mean and std.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=Path("results.json"),
    show_default=True,
    help="Results JSON; a PNG bar chart is written beside it.",
)
@overwrite_option
@batch_size_option(64)
@num_workers_option
@device_option
@click.option(
    "--compare",
    is_flag=True,
    help="Instead of evaluating, print one table comparing the results files given as arguments.",
)
@click.argument("results_files", nargs=-1, type=click.Path(path_type=str), metavar="[RESULTS.json ...]")
@click.pass_context
def geobench(
    ctx: click.Context,
    checkpoint: str | None,
    root: str | None,
    tasks: str | None,
    partition: str,
    protocols: tuple[str, ...],
    seeds: int,
    output: Path,
    overwrite: bool,
    batch_size: int,
    num_workers: int,
    device: str,
    compare: bool,
    results_files: tuple[str, ...],
) -> None:
    """Frozen-encoder evaluation on GEO-Bench tasks read from the official layout.

    \b
    kNN and linear probe for classification, a linear head for segmentation; each task's GSD
    feeds the Scale-ALiBi bias. Tasks whose bands match no modality of the checkpoint are
    skipped with the reason; a task that fails does not stop the others (exit status 1).

    \b
    Examples:
      salibi eval geobench --checkpoint runs/first --tasks m-eurosat,m-so2sat --seeds 3
      salibi eval geobench --compare scale-alibi.json alibi.json sincos.json
    """
    if compare:
        if not results_files:
            raise click.UsageError("--compare needs one or more results files, e.g. --compare a.json b.json")
        from salibi.eval.report import compare_table

        click.echo(compare_table(results_files), nl=False)
        return
    if results_files:
        raise click.UsageError(f"unexpected argument(s) {' '.join(results_files)}; did you mean --compare?")
    if not checkpoint:
        raise click.UsageError("--checkpoint is required (or use --compare A.json B.json ...)")

    from salibi.eval.report import markdown_table, results_paths, write_bar_chart, write_results
    from salibi.eval.run import evaluate_geobench

    output, chart = results_paths(output, overwrite)
    results = evaluate_geobench(
        checkpoint,
        root=root,
        tasks=tasks,
        partition=partition,
        protocols=protocols,
        seeds=seeds,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        log=_progress,
    )
    write_results(results, output)
    written = write_bar_chart(results, chart)
    click.echo(markdown_table(results), nl=False)
    click.echo(f"Results: {output}" + (f", chart: {written}" if written else ""), err=True)
    if results["failed"]:
        click.echo(f"Error: {len(results['failed'])} task(s) failed: {', '.join(sorted(results['failed']))}", err=True)
        ctx.exit(1)
