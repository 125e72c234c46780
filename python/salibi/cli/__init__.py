"""The ``salibi`` command group.

Commands are thin: parse options, call the library, turn library errors into one line on
stderr. Nothing heavy (torch, rasterio, h5py) is imported here or at the top of a command
module, so ``salibi --help`` stays instant.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from salibi import __version__
from salibi.errors import SalibiError


class SalibiGroup(click.Group):
    """A click group that reports user errors as one line and exit status 1 (usage errors: 2)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except SalibiError as err:
            _fail(ctx, str(err))
        except OSError as err:
            # Library code names files in its own errors; this is the net for the rest
            # (permission denied, disk full, ...), which carry a filename themselves.
            _fail(ctx, _os_error(err))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            # A usage error is one line too (click's own adds the usage and a hint), exit status 2.
            where = err.ctx.command_path if err.ctx is not None else ctx.command_path
            click.echo(f"Error: {err.format_message()} (see '{where} --help')", err=True)
            ctx.exit(2)


def _fail(ctx: click.Context, message: str) -> NoReturn:
    click.echo(f"Error: {' '.join(message.split())}", err=True)  # one line, whatever the message holds
    ctx.exit(1)


def _os_error(err: OSError) -> str:
    """The system's words and the file: HDF5's many-line reports ("Unable to synchronously create
    file (file write failed: time = ..., filename = '...', errno = 28, ...)") become
    "No space left on device: FILE"."""
    import os
    import re

    filename = err.filename
    if filename is None:
        found = re.search(r"filename = '([^']*)'", str(err))
        filename = found.group(1) if found else None
    if err.errno and (err.strerror is None or "\n" in str(err) or "errno = " in str(err)):
        reason = os.strerror(err.errno)
    else:
        reason = err.strerror or str(err)
    return f"{reason}: {filename}" if filename else reason


@click.group(cls=SalibiGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="salibi")
def cli() -> None:
    """Scale-ALiBi for remote sensing: one transformer for optical, Sentinel-2 and Sentinel-1
    imagery at any ground resolution.

    \b
    Typical journey:
      salibi align --hires naip.tif --lores s2_b04.tif --lores s2_b03.tif --sar s1.tif -o set.h5
      salibi pretrain set.h5 --out runs/first --gpus 4
      salibi eval geobench --checkpoint runs/first
      salibi embed tiles/ --checkpoint runs/first -o embeddings.h5
    """


def _register() -> None:
    from salibi.cli import ablate, align, bias, demo, embed, eval, explore, fetch, info, map, pretrain, search

    for module in (info, bias, fetch, align, pretrain, eval, ablate, embed, search, map, explore, demo):
        cli.add_command(module.command)


_register()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    # Warnings from salibi are meant for users: one line, no source location.
    click.echo(f"Warning: {message}", err=True)


def main() -> None:
    """Console-script entry point."""
    import warnings

    warnings.showwarning = _show_warning
    cli(prog_name="salibi")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
