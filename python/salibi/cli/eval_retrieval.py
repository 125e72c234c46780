"""``salibi eval retrieval``: cross-modal retrieval on aligned sets (library: salibi.eval.retrieval)."""

from __future__ import annotations

from pathlib import Path

import click

from salibi.cli.options import attention_option, batch_size_option, checkpoint_option, device_option
from salibi.eval.retrieval.settings import RETRIEVAL_SPLITS, RetrievalSettings
from salibi.vocabulary import RANDOM_INIT

#: The options' defaults are the settings' (one owner).
_DEFAULT = RetrievalSettings()


@click.command("retrieval")
@click.argument("sets", nargs=-1, required=True, type=click.Path(path_type=str), metavar="SET.h5 [SET.h5 ...]")
@checkpoint_option
@click.option(
    "--split",
    type=click.Choice(RETRIEVAL_SPLITS),
    default=_DEFAULT.split,
    show_default=True,
    help="The chips queried: a split of the aligned sets, or all of them (pretraining saw the train split).",
)
@click.option(
    "--baseline",
    type=click.Choice([RANDOM_INIT]),
    default=_DEFAULT.baseline,
    help="Also rank with the same model untrained (its run's initial weights) and give each difference with "
    "its paired 95 % interval over the same queries.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the results as JSON (format salibi-retrieval, version 1) to this file.",
)
@batch_size_option(_DEFAULT.batch_size)
@device_option
@attention_option
def command(
    sets: tuple[str, ...],
    checkpoint: str,
    split: str,
    baseline: str | None,
    output: Path | None,
    batch_size: int,
    device: str,
    attention: str,
) -> None:
    """Cross-modal retrieval: for every ordered pair of the modalities the SETs and the checkpoint
    share, chip i in the first modality queries all chips of the second for chip i.

    \b
    Recall@1, @5, @10 and the median rank by cosine similarity in the shared contrastive space
    (the projections the InfoNCE loss compares; a tie counts against the query), each with its
    95 % bootstrap interval over queries and chance beside it; with --baseline random-init the
    untrained model beside them, each difference with its paired interval. Prints a Markdown table.

    \b
    Examples:
      salibi eval retrieval floods.h5 --checkpoint runs/first --baseline random-init
      salibi eval retrieval a.h5 b.h5 --checkpoint runs/first --split all --output retrieval.json
    """
    if output is not None and output.is_dir():
        raise click.BadParameter(f"{output} is a folder; give a .json file name", param_hint="--output")
    from salibi.eval.retrieval.evaluate import evaluate_retrieval
    from salibi.eval.retrieval.report import markdown_table, write_retrieval

    settings = RetrievalSettings(
        split=split, baseline=baseline, batch_size=batch_size, device=device, attention=attention
    )
    document = evaluate_retrieval(list(sets), checkpoint, settings, log=lambda message: click.echo(message, err=True))
    if output is not None:
        write_retrieval(document, output)
    click.echo(markdown_table(document, label="checkpoint"), nl=False)
    if output is not None:
        click.echo(f"Results: {output}", err=True)
