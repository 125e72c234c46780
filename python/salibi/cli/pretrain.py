"""``salibi pretrain``: Scale-ALiBi pretraining on one or more aligned sets."""

from __future__ import annotations

import shlex
import sys

import click
from click.core import ParameterSource

from salibi.cli.options import attention_option, num_workers_option
from salibi.train.config import PretrainConfig
from salibi.vocabulary import SIZES, VARIANTS

#: The options' defaults are the settings' (one owner).
_DEFAULT = PretrainConfig(data=[], out="")


@click.command("pretrain")
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (runs/NAME).")
@click.option("--model", type=click.Choice(SIZES), default=_DEFAULT.model, show_default=True, help="Model size.")
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default=_DEFAULT.variant,
    show_default=True,
    help="Position information: Scale-ALiBi, plain 2-D ALiBi, sin-cos embeddings or none (ablations).",
)
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    default=None,
    help="DDP ranks over NCCL on this node's GPUs [default: 1 if CUDA is available, else 0 (CPU)].",
)
@click.option(
    "--cpu-procs",
    type=click.IntRange(min=1),
    default=None,
    help="Ranks over gloo on the CPU, also on a machine with GPUs (which then stay unused) [default: 1 "
    "when there is no GPU].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULT.batch_size,
    show_default=True,
    help="Global batch per optimizer step, split over ranks and --accumulate.",
)
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Optimizer steps to train.")
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Epochs to train (when --max-steps is not given) [default: 100].",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULT.lr,
    show_default=True,
    help="Peak learning rate for a global batch of 256, scaled linearly to --batch-size.",
)
@click.option(
    "--warmup-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Linear warm-up before cosine decay [default: 5% of the steps, at most 2000].",
)
@click.option(
    "--mask-ratio",
    type=click.FloatRange(0, 1, max_open=True),
    default=_DEFAULT.mask_ratio,
    show_default=True,
    help="Fraction of each modality's patches hidden from the encoders.",
)
@click.option(
    "--accumulate",
    type=click.IntRange(min=1),
    default=_DEFAULT.accumulate,
    show_default=True,
    help="Micro-batches per optimizer step (gradient accumulation).",
)
@click.option(
    "--seed", type=int, default=_DEFAULT.seed, show_default=True, help="Seed of weights, data order and masks."
)
@num_workers_option
@attention_option
@click.option("--amp/--no-amp", default=None, help="bf16 autocast [default: on with CUDA, off on CPU].")
@click.option(
    "--save-every",
    type=click.IntRange(min=1),
    default=_DEFAULT.save_every,
    show_default=True,
    help="Checkpoint every this many steps (and at the end, and when stopped).",
)
@click.option(
    "--keep", type=click.IntRange(min=1), default=_DEFAULT.keep, show_default=True, help="Checkpoints to keep."
)
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=_DEFAULT.log_every,
    show_default=True,
    help="Write metrics every this many steps.",
)
@click.option("--log", "log", type=click.Choice(["tensorboard"]), multiple=True, help="Also log to TensorBoard.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its newest complete checkpoint.")
@click.option(
    "--stop-grace",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULT.stop_grace,
    show_default=True,
    help="Seconds the ranks get after Ctrl-C or SIGTERM to finish their step and save before they are killed "
    "(a large checkpoint on a network filesystem needs longer; under torchrun use its --shutdown-timeout).",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def command(
    ctx: click.Context,
    data: tuple[str, ...],
    out: str,
    model: str,
    variant: str,
    gpus: int | None,
    cpu_procs: int | None,
    batch_size: int,
    max_steps: int | None,
    epochs: float | None,
    lr: float,
    warmup_steps: int | None,
    mask_ratio: float,
    accumulate: int,
    seed: int,
    num_workers: int,
    attention: str,
    amp: bool | None,
    save_every: int,
    keep: int,
    log_every: int,
    log: tuple[str, ...],
    resume: bool,
    stop_grace: float,
    quiet: bool,
) -> None:
    """Pretrain Scale-ALiBi encoders on aligned sets (DDP on N GPUs, gloo on CPU, or under torchrun).

    \b
    Resumes exactly with --resume (same data order, masks, RNG and schedule). SIGTERM or
    Ctrl-C (once) finishes the current step, saves a checkpoint, checks it on disk and exits
    with status 0, naming it and printing the command that continues (status 1 and the newest
    complete checkpoint when it could not be saved); a second Ctrl-C stops at once (the newest
    saved checkpoint stays). DataLoader workers leave the stop to their rank.
    """
    if max_steps is not None and epochs is not None:
        raise click.UsageError("give --max-steps or --epochs, not both")
    if gpus and cpu_procs is not None:
        raise click.UsageError("--gpus and --cpu-procs choose different devices: give one of them")
    import torch

    from salibi.train import pretrain
    from salibi.train.config import choose_devices

    gpus, cpu_procs = choose_devices(gpus, cpu_procs, torch.cuda.device_count() if torch.cuda.is_available() else 0)

    config = PretrainConfig(
        data=list(data),
        out=out,
        model=model,
        variant=variant,
        batch_size=batch_size,
        max_steps=max_steps,
        epochs=epochs,
        lr=lr,
        warmup_steps=warmup_steps,
        mask_ratio=mask_ratio,
        seed=seed,
        accumulate=accumulate,
        num_workers=num_workers,
        attention=attention,
        amp=amp,
        save_every=save_every,
        keep=keep,
        log_every=log_every,
        log=list(log),
        resume=resume,
        gpus=gpus,
        cpu_procs=cpu_procs,
        progress=not quiet,
        stop_grace=stop_grace,
    )
    explicit = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    summary = pretrain(config, explicit=explicit)
    if summary.get("rank", 0) != 0:  # a rank of a torchrun job: rank 0 reports
        return
    if summary.get("already_complete"):
        click.echo(
            f"{out}: already trained {summary['step']} of {summary['total_steps']} steps; "
            "raise --max-steps/--epochs to train further"
        )
        return
    last = summary.get("last") or {}
    loss = f", loss {last['loss']:.4f}" if "loss" in last else ""
    where = f"; checkpoint {summary['checkpoint']}" if summary.get("checkpoint") else ""
    if summary.get("stopped_by"):
        again = shlex.join(
            ["salibi", *sys.argv[1:]] if "--resume" in sys.argv else ["salibi", *sys.argv[1:], "--resume"]
        )
        click.echo(
            f"stopped by {summary['stopped_by']} after step {summary['step']}{loss}{where}\ncontinue with: {again}"
        )
        return
    click.echo(f"trained {summary['step']}/{summary['total_steps']} steps{loss}{where}")
