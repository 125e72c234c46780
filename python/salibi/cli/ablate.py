"""``salibi ablate``: the position-information ablation (library: salibi.ablate)."""

from __future__ import annotations

import shlex

import click

from salibi.ablate.study_plan import REFERENCE, AblationSettings
from salibi.eval.retrieval.settings import RETRIEVAL_SPLITS
from salibi.vocabulary import EVALUATIONS, PROTOCOLS, SIZES, VARIANTS

#: The options' defaults are the settings' (one owner).
_DEFAULT = AblationSettings(data=[], out="")


def _variants(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in VARIANTS]
    if not chosen or unknown:
        raise click.BadParameter(f"{value!r}: a comma-separated list of {', '.join(VARIANTS)}")
    if REFERENCE not in chosen:
        raise click.BadParameter(f"{value!r}: include {REFERENCE}, the reference every difference is taken against")
    return tuple(dict.fromkeys(chosen))


def _evals(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(e.strip() for e in value.split(",") if e.strip())
    if not chosen or any(e not in EVALUATIONS for e in chosen):
        raise click.BadParameter(f"{value!r}: a comma-separated list of {', '.join(EVALUATIONS)}")
    return tuple(dict.fromkeys(chosen))


def _protocols(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in value.split(",") if p.strip())
    if not chosen or any(p not in PROTOCOLS for p in chosen):
        raise click.BadParameter(f"{value!r}: a comma-separated list of {', '.join(PROTOCOLS)}")
    return tuple(dict.fromkeys(chosen))


@click.command("ablate")
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Study folder (studies/NAME).")
@click.option(
    "--variants",
    default=",".join(_DEFAULT.variants),
    show_default=True,
    callback=_variants,
    help="Comma-separated position-information variants to train; scale-alibi is the reference.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=_DEFAULT.seeds,
    show_default=True,
    help="Pretraining seeds per variant (0 .. N-1); seed s of every variant starts alike.",
)
@click.option("--model", type=click.Choice(SIZES), default=_DEFAULT.model, show_default=True, help="Model size.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Optimizer steps per run.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, help="Epochs per run.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULT.batch_size,
    show_default=True,
    help="Global batch per step.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULT.lr,
    show_default=True,
    help="Peak learning rate for a global batch of 256 (salibi pretrain --lr).",
)
@click.option(
    "--pretrain-args",
    default="",
    help='Further salibi pretrain options for every run, quoted: e.g. "--mask-ratio 0.75 --save-every 100".',
)
@click.option("--gpus", type=click.IntRange(min=0), default=None, help="salibi pretrain --gpus N for every run.")
@click.option(
    "--cpu-procs", type=click.IntRange(min=1), default=None, help="salibi pretrain --cpu-procs N for every run."
)
@click.option(
    "--evals",
    default=",".join(_DEFAULT.evals),
    show_default=True,
    callback=_evals,
    help="What each checkpoint is evaluated with: geobench (probes on --root's tasks), retrieval (cross-modal "
    "retrieval on the study's DATA, salibi eval retrieval).",
)
@click.option(
    "--retrieval-split",
    type=click.Choice(RETRIEVAL_SPLITS),
    default=_DEFAULT.retrieval_split,
    show_default=True,
    help="The chips of DATA that retrieval queries (all: every chip, also those the runs trained on). Data "
    "without chips of the split skip retrieval with the reason.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="GEO-Bench folder to evaluate on [default: the Raleigh land-cover tasks shipped with salibi].",
)
@click.option("--tasks", default=None, help="Comma-separated task names [default: all found].")
@click.option(
    "--protocol",
    "protocols",
    default=",".join(_DEFAULT.protocols),
    show_default=True,
    callback=_protocols,
    help="Evaluation protocols (salibi eval geobench --protocol); the majority class is always added as chance.",
)
@click.option(
    "--eval-batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULT.eval_batch_size,
    show_default=True,
    help="Evaluation batch.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=_DEFAULT.device,
    show_default=True,
    help="Where evaluations run.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the pretraining commands and stop (e.g. to run them under torchrun)."
)
def command(
    data: tuple[str, ...],
    out: str,
    variants: tuple[str, ...],
    seeds: int,
    model: str,
    max_steps: int | None,
    epochs: float | None,
    batch_size: int,
    lr: float,
    pretrain_args: str,
    gpus: int | None,
    cpu_procs: int | None,
    evals: tuple[str, ...],
    retrieval_split: str,
    root: str | None,
    tasks: str | None,
    protocols: tuple[str, ...],
    eval_batch_size: int,
    device: str,
    dry_run: bool,
) -> None:
    """Train every position-information variant alike, evaluate each, and compare them with intervals.

    \b
    DATA: aligned sets (salibi align), or folders of them (e.g. the demo's OUT/aligned).
    For each variant and seed one salibi pretrain run, identical but for --variant (same data
    order, masks, schedule and initial weights: checked before training); salibi eval geobench and
    salibi eval retrieval (on DATA's --retrieval-split chips) of its final checkpoint; the same
    model untrained (random-init) as the reference. Writes OUT/ablation.json, OUT/ablation.md (a
    table per evaluation; differences from scale-alibi with paired 95 % intervals over the same
    test samples or queries) and OUT/ablation.png. Resumable: finished runs and evaluations are
    kept, an interrupted run resumes (salibi pretrain --resume).

    \b
    Examples:
      salibi demo --only align --out demo-out
      salibi ablate demo-out/aligned --out studies/demo --variants scale-alibi,alibi --max-steps 300 \\
          --batch-size 16 --lr 5e-3 --retrieval-split all
      salibi ablate data/*.h5 --out studies/base --model base --gpus 8 --epochs 100 --seeds 3 \\
          --root $GEO_BENCH_DIR --tasks m-eurosat,m-bigearthnet
    """
    if max_steps is not None and epochs is not None:
        raise click.UsageError("give --max-steps or --epochs, not both")
    if gpus and cpu_procs is not None:
        raise click.UsageError("--gpus and --cpu-procs choose different devices: give one of them")
    from salibi.ablate import AblationSettings, run_ablation

    settings = AblationSettings(
        data=list(data),
        out=out,
        variants=variants,
        seeds=seeds,
        model=model,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        pretrain_args=shlex.split(pretrain_args),
        gpus=gpus,
        cpu_procs=cpu_procs,
        evals=evals,
        retrieval_split=retrieval_split,
        root=root,
        tasks=tasks,
        protocols=protocols,
        eval_batch_size=eval_batch_size,
        device=device,
    )
    study = run_ablation(settings, log=click.echo, dry_run=dry_run)
    if dry_run:
        click.echo("\n".join(study.document["commands"]))
        return
    from salibi.ablate.report import summary_text

    click.echo("")
    click.echo(summary_text(study.document), nl=False)
    trained = ", ".join(study.trained) or "none (all finished earlier)"
    click.echo(f"\ntrained: {trained}; evaluated: {', '.join(study.evaluated) or 'none (all finished earlier)'}")
    click.echo("wrote " + ", ".join(str(p) for p in study.files))
    if study.failed:
        raise SystemExit(1)
