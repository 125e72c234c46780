from __future__ import annotations

from click.testing import CliRunner
from PIL import Image

from salibi.cli import cli


def test_bias_renders_a_png(tmp_path):
    out = tmp_path / "bias.png"
    result = CliRunner().invoke(cli, ["bias", "--query", "16x16@10", "--key", "32x32@5", "--head", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "256 x 1024 table, head 2 of 8" in result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.width > 600 and image.height > 300


def test_bad_grid_spec_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(cli, ["bias", "--query", "16by16", "--key", "4x4@1", "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: grid '16by16': expected ROWSxCOLS@GSD in patches and metres per pixel, e.g. 16x16@10"
    ]
    assert not (tmp_path / "b.png").exists()


def test_head_out_of_range_and_zero_gsd(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli, ["bias", "--query", "4x4@1", "--key", "4x4@1", "--head", "9", "-o", str(tmp_path / "b.png")]
    )
    assert result.exit_code == 1 and "--head 9" in result.output
    result = runner.invoke(cli, ["bias", "--query", "4x4@0", "--key", "4x4@1", "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 1 and "gsd" in result.output


def test_an_output_that_cannot_be_written_is_one_line(tmp_path):
    out = tmp_path / "no" / "b.png"
    result = CliRunner().invoke(cli, ["bias", "--query", "4x4@1", "--key", "4x4@1", "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {out}: could not be written (No such file or directory); choose another output path"
    ]
