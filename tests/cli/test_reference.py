"""cli/ holds the command reference and completion scripts; they must match the commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import SALIBI
from salibi.cli.reference import render_reference

CLI_DIR = Path(__file__).resolve().parents[2] / "cli"
STALE = "out of date: run `make reference` and commit the result"
# The console script installed beside this interpreter (make install puts it there).


def test_reference_equals_help():
    assert (CLI_DIR / "REFERENCE.md").read_text() == render_reference(), f"cli/REFERENCE.md is {STALE}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell):
    env = {**os.environ, "_SALIBI_COMPLETE": f"{shell}_source"}
    generated = subprocess.run([SALIBI], env=env, capture_output=True, text=True, check=True).stdout
    assert (CLI_DIR / "completions" / f"salibi.{shell}").read_text() == generated, f"completion script {STALE}"


def test_bash_completion_lists_commands():
    env = {**os.environ, "_SALIBI_COMPLETE": "bash_complete", "COMP_WORDS": "salibi ", "COMP_CWORD": "1"}
    out = subprocess.run([SALIBI], env=env, capture_output=True, text=True, check=True).stdout
    assert "plain,info" in out and "plain,bias" in out
