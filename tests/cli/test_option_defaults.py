"""Each command's option defaults are its settings dataclass's field defaults (one owner): an
option of a field must default to the field's default, unless listed here with the reason."""

from __future__ import annotations

import dataclasses

import pytest

#: (command module, settings class, fields whose option means something else when not given)
COMMANDS = {
    "pretrain": (
        "salibi.cli.pretrain",
        "salibi.train.config:PretrainConfig",
        {"cpu_procs": "not given: one process, or --gpus (choose_devices)", "log": "a tuple of choices"},
    ),
    "ablate": ("salibi.cli.ablate", "salibi.ablate.study_plan:AblationSettings", {"pretrain_args": "a quoted string"}),
    "eval retrieval": ("salibi.cli.eval_retrieval", "salibi.eval.retrieval.settings:RetrievalSettings", {}),
    "embed": ("salibi.cli.embed", "salibi.embed.settings:EmbedJob", {}),
    "align": ("salibi.cli.align", "salibi.align.settings:AlignSettings", {}),
}


def _settings(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _default(param):
    """What the option gives when not given (a flag without a default: False)."""
    import click

    if isinstance(param, click.Option) and param.is_flag and param.default is getattr(click.core, "UNSET", None):
        return False
    return param.default


@pytest.mark.parametrize("name", list(COMMANDS))
def test_option_defaults_are_the_settings_defaults(name):
    import importlib

    module, settings_spec, exceptions = COMMANDS[name]
    command = importlib.import_module(module).command
    settings = _settings(settings_spec)
    options = {p.name: _default(p) for p in command.params}
    checked = []
    for field in dataclasses.fields(settings):
        if field.name not in options or field.name in exceptions:
            continue
        if field.default is dataclasses.MISSING:  # required, or a factory
            continue
        default = options[field.name]
        if isinstance(field.default, tuple) and isinstance(default, str):
            default = tuple(default.split(","))
        assert default == field.default, (name, field.name, default, field.default)
        checked.append(field.name)
    assert len(checked) >= 4, checked  # the test looks at the options it means to
