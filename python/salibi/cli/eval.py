"""``salibi eval``: the group, and ``geobench``: frozen-encoder evaluation on GEO-Bench (library:
salibi.eval); ``retrieval`` is in :mod:`salibi.cli.eval_retrieval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from salibi.cli.options import attention_option, batch_size_option, device_option, num_workers_option
from salibi.eval.protocols.knn import KNN_METRICS
from salibi.eval.settings import GeoBenchSettings
from salibi.vocabulary import (
    BENCHMARKS,
    EVAL_FEATURES,
    PROTOCOL_ALIASES,
    PROTOCOLS,
    RANDOM_INIT,
    TRAIN_SIZE_PARTITIONS,
)

#: The options' defaults are the settings' (one owner).
_DEFAULT = GeoBenchSettings()


def _protocol_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(PROTOCOL_ALIASES.get(p.strip(), p.strip()) for p in value.split(",") if p.strip())
    if not chosen or any(p not in PROTOCOLS for p in chosen):
        raise click.BadParameter(f"{value!r}: a comma-separated list of {', '.join(PROTOCOLS)}")
    return tuple(dict.fromkeys(chosen))


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group("eval")
def command() -> None:
    """Evaluate a checkpoint: GEO-Bench probes (geobench), cross-modal retrieval (retrieval)."""


@command.command("geobench")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=str),
    help="A checkpoint folder (model.safetensors + config.json) or a run folder (its newest checkpoint).",
)
@click.option(
    "--root",
    type=click.Path(path_type=str),
    default=_DEFAULT.root,
    help="GEO-Bench folder holding classification_v1.0/ and segmentation_v1.0/, or a GEO-Bench-2 folder of "
    "<dataset>/geobench_<dataset>.tortilla [default: $GEO_BENCH_DIR, else ~/dataset/geobench]. With --aggregate: "
    "where normalizer.json is looked for.",
)
@click.option(
    "--benchmark",
    type=click.Choice(BENCHMARKS),
    default=_DEFAULT.benchmark,
    show_default=True,
    help="Which layout --root holds; auto: GEO-Bench-2 when it holds .tortilla files.",
)
@click.option(
    "--features",
    type=click.Choice(EVAL_FEATURES),
    default=_DEFAULT.features,
    show_default=True,
    help="GEO-Bench-2: joint (the cross-modal encoder's pooled tokens of every matching encoder), or one encoder; "
    "auto: joint when two or more of the task's modalities match the checkpoint, else the one.",
)
@click.option(
    "--tasks",
    default=_DEFAULT.tasks,
    help="Comma-separated task names, e.g. m-eurosat,m-so2sat [default: all found].",
)
@click.option(
    "--partition",
    default=_DEFAULT.partition,
    show_default=True,
    help="Partition whose train split is used (validation and test: the default partition's): default, "
    f"{TRAIN_SIZE_PARTITIONS[0]} ... {TRAIN_SIZE_PARTITIONS[-1]}.",
)
@click.option(
    "--partitions",
    default=_DEFAULT.partitions,
    help="Several partitions (comma-separated), or 'all' for every train-size partition: the data-efficiency "
    "curve (a table and OUTPUT.partitions.png). The largest is the headline partition.",
)
@click.option(
    "--protocol",
    "protocols",
    default=",".join(_DEFAULT.protocols),
    show_default=True,
    callback=_protocol_list,
    help="Comma-separated: knn (k nearest training features vote), linear (logistic regression, C swept on "
    "validation, refitted on train + validation), seg-linear (linear head on last-block tokens), seg-fpn (FPN "
    "head on four encoder blocks), majority (chance reference). Each runs on the tasks it applies to; 'seg' "
    "means seg-linear.",
)
@click.option(
    "--knn-k", type=click.IntRange(min=1), default=_DEFAULT.knn_k, show_default=True, help="Neighbours of knn."
)
@click.option(
    "--knn-metric",
    type=click.Choice(KNN_METRICS),
    default=_DEFAULT.knn_metric,
    show_default=True,
    help="Distance of knn.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=_DEFAULT.seeds,
    show_default=True,
    help="Runs of the seeded protocols (the segmentation heads): mean, std and IQM over seeds. "
    "knn, linear and majority are deterministic and run once.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=Path("results.json"),
    show_default=True,
    help="Results JSON; a PNG chart and a CSV (torchgeo-bench's columns) are written beside it. An existing "
    "results file is resumed: finished (task, protocol, partition, seed) runs are kept.",
)
@click.option("--overwrite", is_flag=True, help="Start the results afresh instead of resuming an existing --output.")
@click.option(
    "--save-features",
    type=click.Path(path_type=Path),
    default=_DEFAULT.save_features,
    help="Folder for each task's frozen features: DIR/TASK/SPLIT.h5 with features, labels and ids.",
)
@batch_size_option(_DEFAULT.batch_size)
@num_workers_option
@device_option
@attention_option
@click.option(
    "--baseline",
    type=click.Choice([RANDOM_INIT]),
    default=None,
    help="Also evaluate the same model untrained (its run's initial weights, same bands and statistics) and "
    "print both, each difference with its paired 95 % interval; its results go to OUTPUT.random-init.json.",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Instead of evaluating, print one table comparing the results files given as arguments.",
)
@click.option(
    "--aggregate",
    is_flag=True,
    help="With --compare: per protocol, the interquartile mean over tasks and seeds (normalised with the "
    "root's normalizer.json when present) and its stratified bootstrap interval, as GEO-Bench aggregates.",
)
@click.argument("results_files", nargs=-1, type=click.Path(path_type=str), metavar="[RESULTS.json ...]")
@click.pass_context
def geobench(
    ctx: click.Context,
    checkpoint: str | None,
    output: Path,
    overwrite: bool,
    baseline: str | None,
    compare: bool,
    aggregate: bool,
    results_files: tuple[str, ...],
    **options: Any,
) -> None:
    """Frozen-encoder evaluation on GEO-Bench tasks read from the official layout.

    \b
    kNN and linear probe for classification, linear and FPN heads for segmentation; each
    task's GSD feeds the Scale-ALiBi bias. GEO-Bench-2 roots (tortilla files) are detected:
    each modality feeds its encoder at its own GSD, jointly when two or more match. Every
    metric comes with its 95 % bootstrap interval over test samples and the majority-class
    reference. Tasks whose bands match no modality of the checkpoint are skipped with the
    reason; a task that fails does not stop the others (exit status 1).

    \b
    Examples:
      salibi eval geobench --checkpoint runs/first --tasks m-eurosat,m-so2sat --seeds 3
      salibi eval geobench --checkpoint runs/first --partitions all --output curve.json
      salibi eval geobench --checkpoint runs/first --root geobench2/ --features joint
      salibi eval geobench --compare scale-alibi.json alibi.json sincos.json --aggregate
    """
    if compare:
        if not results_files:
            raise click.UsageError("--compare needs one or more results files, e.g. --compare a.json b.json")
        if aggregate:
            from salibi.eval.geobench.tasks import default_root
            from salibi.eval.output.report import aggregate_table

            root = options["root"]
            click.echo(aggregate_table(results_files, root if root is not None else default_root()), nl=False)
            return
        from salibi.eval.output.report import compare_table

        click.echo(compare_table(results_files), nl=False)
        return
    if aggregate:
        raise click.UsageError("--aggregate goes with --compare A.json B.json ...")
    if results_files:
        raise click.UsageError(f"unexpected argument(s) {' '.join(results_files)}; did you mean --compare?")
    if not checkpoint:
        raise click.UsageError("--checkpoint is required (or use --compare A.json B.json ...)")
    if options["partitions"] and options["partition"] != _DEFAULT.partition:
        raise click.UsageError("give --partition or --partitions, not both")
    from salibi.eval.command import add_random_init, evaluate_to_files

    settings = GeoBenchSettings(**options)
    evaluation = evaluate_to_files(checkpoint, settings, output, overwrite, log=_progress)
    click.echo(evaluation.report, nl=False)
    if baseline == RANDOM_INIT:
        click.echo(add_random_init(evaluation, checkpoint, settings, overwrite, log=_progress), nl=False)
    click.echo("Results: " + ", ".join(str(p) for p in evaluation.written), err=True)
    if evaluation.failed:
        click.echo(f"Error: {len(evaluation.failed)} task(s) failed: {', '.join(sorted(evaluation.failed))}", err=True)
        ctx.exit(1)


def _register() -> None:
    from salibi.cli import eval_retrieval

    command.add_command(eval_retrieval.command)


_register()
