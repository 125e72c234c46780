"""``salibi embed`` on the command line: the summary, and one clear line for each user error."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from salibi.cli import cli
from salibi.embed import read_embeddings


def run(*args):
    return CliRunner().invoke(cli, ["embed", *map(str, args)])


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_summary_line_and_resume(resume_tiles, checkpoint, tmp_path):
    tiles, names = resume_tiles
    few = tmp_path / "tiles"
    for name in names[:6]:
        (few / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiles / name, few / name)
    out = tmp_path / "out.h5"
    result = run(few, "--checkpoint", checkpoint, "-o", out, "--batch-size", 4, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "embedded 6, skipped 0 (already in the output), failed 0 of 6 tiles" in result.output
    assert "tiles/s" in result.output and "(6 rows)" in result.output
    result = run(few, "--checkpoint", checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    assert "embedded 0, skipped 6" in result.output
    assert len(read_embeddings(out).path) == 6


def test_failed_tiles_are_listed_with_their_reason(mixed, mixed_run, checkpoint, tmp_path):
    folder, _ = mixed
    out = tmp_path / "out.h5"
    shutil.copy(mixed_run[0].output, out)  # everything but the failures is already there
    result = run(folder, "--checkpoint", checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    assert "embedded 0, skipped 9 (already in the output), failed 3 of 12 tiles" in result.output
    assert "failed: photos/plain.png: no georeference: pass --gsd" in result.output


def test_nothing_embeddable_is_exit_status_1(mixed, checkpoint, tmp_path):
    folder, _ = mixed
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    shutil.copy(folder / "photos" / "plain.png", tiles / "plain.png")
    result = run(tiles, "--checkpoint", checkpoint, "-o", tmp_path / "out.h5")
    assert result.exit_code == 1
    assert "none of the 1 tile(s) could be embedded" in error_line(result)
    assert read_embeddings(tmp_path / "out.h5").failed_path == ["plain.png"]


def test_user_errors_are_one_line_and_exit_status_1(resume_tiles, checkpoint, tmp_path):
    tiles, _ = resume_tiles
    out = tmp_path / "out.h5"

    result = run(tmp_path / "missing", "--checkpoint", checkpoint, "-o", out)
    assert result.exit_code == 1 and "no such file or folder" in error_line(result)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no tiles here")
    result = run(empty, "--checkpoint", checkpoint, "-o", out)
    assert result.exit_code == 1 and "no tiles found" in error_line(result)

    result = run(tiles, "--checkpoint", tmp_path / "no-checkpoint", "-o", out)
    assert result.exit_code == 1 and "no such checkpoint" in error_line(result)

    broken = tmp_path / "broken-ckpt"
    shutil.copytree(checkpoint, broken)
    (broken / "config.json").write_text("{ not json")
    result = run(tiles, "--checkpoint", broken, "-o", out)
    assert result.exit_code == 1 and "not valid JSON" in error_line(result)

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = run(tiles, "--checkpoint", checkpoint, "-o", a_file / "out.h5")
    assert result.exit_code == 1 and "cannot write there" in error_line(result)

    result = run(tiles, "--checkpoint", checkpoint, "-o", tmp_path)
    assert result.exit_code == 1 and "is a folder" in error_line(result)

    lacking = tmp_path / "sar-lores"
    from .make_tiles import make_checkpoint

    make_checkpoint(lacking, modalities=("sar", "lores"))
    result = run(tiles, "--checkpoint", lacking, "-o", out, "--modality", "hires")
    assert result.exit_code == 1 and "no hires encoder" in error_line(result)
    assert not out.exists() and not (tmp_path / "out.h5.parts").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu(resume_tiles, checkpoint, tmp_path):
    result = run(resume_tiles[0], "--checkpoint", checkpoint, "-o", tmp_path / "out.h5", "--device", "cuda")
    assert result.exit_code == 1 and "no CUDA GPU" in error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["--modality", "optical"],
        ["--gsd", "0"],
        ["--gsd", "-2"],
        ["--batch-size", "0"],
        ["--num-workers", "-1"],
        ["--device", "tpu"],
        [],
    ],
)
def test_usage_errors_are_exit_status_2(resume_tiles, checkpoint, tmp_path, args):
    base = [resume_tiles[0], "--checkpoint", checkpoint]
    if args:
        base += ["-o", tmp_path / "out.h5"]
    result = run(*base, *args)  # no -o at all in the last case
    assert result.exit_code == 2, result.output


def test_help_says_how_tiles_are_sized():
    result = CliRunner().invoke(cli, ["embed", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("zero-padded", "never cropped", "32x32 patches", "--gsd", "--num-workers", "Resumable"):
        assert words in text, words


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpus_without_a_gpu_and_ranks_of_two_kinds(resume_tiles, checkpoint, tmp_path):
    base = [resume_tiles[0], "--checkpoint", checkpoint, "-o", tmp_path / "out.h5"]
    result = run(*base, "--gpus", 2)
    assert result.exit_code == 1
    assert "--gpus 2: this machine has 0 usable CUDA GPU(s); run on CPU processes with --cpu-procs N" in error_line(
        result
    )
    result = run(*base, "--gpus", 2, "--cpu-procs", 2)
    assert result.exit_code == 1 and "give one of them" in error_line(result)
