"""Option decorators and parsers shared by several commands (one spelling everywhere)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from salibi.vocabulary import ATTENTION_BACKENDS, MODALITIES

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


def device_option(f: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="Where to run the model; auto picks CUDA when available.",
    )(f)


def attention_option(f: F) -> F:
    return click.option(
        "--attention",
        type=click.Choice(ATTENTION_BACKENDS),
        default="auto",
        show_default=True,
        help="Attention kernel: flex computes the Scale-ALiBi bias inside a FlexAttention kernel (no bias "
        "tensors; CUDA for training), sdpa adds materialised biases; auto: flex on CUDA, sdpa elsewhere. "
        "Same results.",
    )(f)


def checkpoint_option(f: F) -> F:
    return click.option(
        "--checkpoint",
        "checkpoint",
        required=True,
        type=click.Path(path_type=str),
        help="A checkpoint folder (model.safetensors + config.json) or a run folder (its newest checkpoint).",
    )(f)


def batch_size_option(default: int) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        return click.option(
            "--batch-size", type=click.IntRange(min=1), default=default, show_default=True, help="Samples per batch."
        )(f)

    return decorate


def num_workers_option(f: F) -> F:
    return click.option(
        "--num-workers",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Data-loading worker processes (0 = load in the main process).",
    )(f)


def overwrite_option(f: F) -> F:
    return click.option("--overwrite", is_flag=True, help="Replace an existing output instead of refusing.")(f)


def parse_modality_values(option: str, values: tuple[str, ...], convert: Callable[[str], T]) -> dict[str, T]:
    """``("hires=2.5", "lores=10")`` -> ``{"hires": 2.5, "lores": 10.0}``, with a usage
    error naming the option for anything else."""
    result: dict[str, T] = {}
    for item in values:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in MODALITIES:
            raise click.BadParameter(
                f"{item!r}: expected MODALITY=VALUE with MODALITY one of {', '.join(MODALITIES)}", param_hint=option
            )
        try:
            result[name] = convert(value.strip())
        except ValueError as err:
            raise click.BadParameter(f"{item!r}: {err}", param_hint=option) from None
    return result
