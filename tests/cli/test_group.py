"""The command group: help is instant and heavy libraries load only inside commands."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from salibi.cli import cli


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from salibi.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='salibi')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'rasterio', 'h5py', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout, result.stdout


def test_every_subcommand_help_is_light_too():
    for name in sorted(cli.commands):
        code = (
            "import sys; from salibi.cli import cli\n"
            f"try:\n    cli([{name!r}, '--help'], prog_name='salibi')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'rasterio', 'h5py', 'sklearn') if m in sys.modules])\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert "HEAVY []" in result.stdout, (name, result.stdout)


def test_version_and_unknown_command():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("salibi, version")
    result = runner.invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
