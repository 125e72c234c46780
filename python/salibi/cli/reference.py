"""Render the command reference (every command's ``--help``) as Markdown.

``cli/REFERENCE.md`` is this output; a test keeps the two equal. Regenerate with
``make reference`` after changing a command's options or help text.
"""

from __future__ import annotations

import click

from salibi.cli import cli

WIDTH = 100


def _walk(ctx: click.Context):
    """Every command under ``ctx`` with the context click would give it (help options,
    width and parent names are inherited as on the command line)."""
    yield ctx
    command = ctx.command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _walk(click.Context(command.commands[name], info_name=name, parent=ctx))


def render_reference() -> str:
    sections = [
        "# salibi command reference\n",
        "Generated from `--help` by `make reference`; a test keeps this file equal to the commands.\n",
    ]
    root = click.Context(cli, info_name="salibi", terminal_width=WIDTH, **cli.context_settings)
    for ctx in _walk(root):
        sections.append(f"## `{ctx.command_path}`\n\n```text\n{ctx.command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(sections)


if __name__ == "__main__":
    click.echo(render_reference(), nl=False)
