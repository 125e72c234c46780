"""Defect 9: ``salibi embed`` on a tiles folder holding a symbolic-link loop must end, each tile once."""

from __future__ import annotations

import subprocess

import h5py
import pytest

from helpers import COMMAND_ENV, REPO, SALIBI


@pytest.mark.slow
def test_a_symlink_loop_in_the_tiles_folder_ends_with_each_tile_once(tmp_path):
    import rasterio
    import torch
    from rasterio.windows import Window

    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build("tiny"), tmp_path / "ckpt", gsd={"sar": 10.0, "lores": 10.0, "hires": 2.0})
    tiles = tmp_path / "tiles"
    (tiles / "a").mkdir(parents=True)
    with rasterio.open(REPO / "data" / "samples" / "spacenet6_rotterdam" / "ms1.tif") as source:
        window = Window(0, 0, 32, 32)
        profile = {**source.profile, "width": 32, "height": 32, "transform": source.window_transform(window)}
        with rasterio.open(tiles / "a" / "tile.tif", "w", **profile) as out:
            out.write(source.read(window=window))
    # Two links back up: a walk that follows them visits 2^k copies at depth k.
    (tiles / "a" / "up").symlink_to("..", target_is_directory=True)
    (tiles / "a" / "again").symlink_to("..", target_is_directory=True)
    output = tmp_path / "out.h5"
    try:
        result = subprocess.run(
            [SALIBI, "embed", str(tiles), "--checkpoint", str(checkpoint), "-o", str(output)],
            capture_output=True,
            text=True,
            env=COMMAND_ENV,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("salibi embed did not end within 20 s on a folder with a symbolic-link loop")
    assert result.returncode == 0, result.stderr
    with h5py.File(output) as f:
        assert [p.decode() if isinstance(p, bytes) else p for p in f["path"][:]] == ["a/tile.tif"]
