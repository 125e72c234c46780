"""Defect 8: what salibi renames into place is on disk first, and the rename is flushed after.

``os.fsync``, ``os.replace`` and ``os.rename`` are wrapped (they still run) to record the order of
the system calls; the files are real. A power loss after a rename whose data were never flushed
leaves a renamed but empty file: the data's fsync must come before the rename, the folder's after.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from helpers import REPO
from salibi import fileio


@pytest.fixture
def syscalls(monkeypatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("rename", destination) in the order they happen."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        events.append(("rename", os.path.abspath(dst)))
        return real_replace(src, dst, **kwargs)

    def rename(src, dst, **kwargs):
        events.append(("rename", os.path.abspath(dst)))
        return real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    return events


def _flushed_before_renamed(events: list[tuple[str, str]], target: Path, contents: list[Path]) -> None:
    renames = [i for i, (kind, path) in enumerate(events) if kind == "rename" and path == str(target)]
    assert len(renames) == 1, events
    before, after = events[: renames[0]], events[renames[0] + 1 :]
    flushed = {Path(path).name for kind, path in before if kind == "fsync"}
    assert {p.name for p in contents} <= flushed, f"not flushed before the rename: {events}"
    assert ("fsync", str(target.parent)) in after, f"the folder was not flushed after the rename: {events}"


def test_write_atomic_flushes_the_data_then_renames_then_flushes_the_folder(tmp_path, syscalls):
    target = tmp_path / "results.json"
    fileio.write_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    staged = [Path(p) for kind, p in syscalls if kind == "fsync" and p != str(tmp_path)]
    assert len(staged) == 1 and staged[0].name.startswith(".results.json.")
    _flushed_before_renamed(syscalls, target, staged)


def test_a_checkpoint_folder_is_flushed_file_by_file_before_it_is_renamed(tmp_path, syscalls):
    import torch

    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    folder = save_checkpoint(build("tiny"), tmp_path / "ckpt")
    renames = [p for kind, p in syscalls if kind == "rename"]
    assert renames == [str(folder)]
    staging = [p for kind, p in syscalls if kind == "fsync" and Path(p).name.startswith(".ckpt.")]
    assert staging, syscalls  # the staging folder itself
    _flushed_before_renamed(syscalls, folder, [folder / "model.safetensors", folder / "config.json"])


def test_a_training_checkpoint_and_its_last_pointer_are_durable(tmp_path, syscalls):
    import torch

    from salibi.models import build
    from salibi.models.checkpoint import write_checkpoint
    from salibi.train.training_state import save_training_checkpoint

    torch.manual_seed(0)
    model = build("tiny")
    run = tmp_path / "run"
    folder = save_training_checkpoint(
        run, 3, lambda f: write_checkpoint(model, f), {"rng.cpu.rank0": torch.get_rng_state()}, {"step": 3}
    )
    names = ["model.safetensors", "config.json", "trainer.safetensors", "trainer.json"]
    _flushed_before_renamed(syscalls, folder, [folder / n for n in names])
    last = run / "checkpoints" / "last"
    assert last.read_text().strip() == folder.name
    assert syscalls.index(("rename", str(folder))) < syscalls.index(("rename", str(last)))  # pointer after data
    _flushed_before_renamed(syscalls, last, [Path(p) for k, p in syscalls if k == "fsync" and ".last." in p])


def test_an_aligned_set_is_flushed_before_it_is_renamed(tmp_path, samples, syscalls):
    from salibi.align import align

    sn6 = samples / "spacenet6_rotterdam"
    out = tmp_path / "set.h5"
    align(hires=sn6 / "pan1.tif", lores=sn6 / "ms1.tif", output=out, tile_size_m=60, progress=False)
    staged = [Path(p) for kind, p in syscalls if kind == "fsync" and Path(p).name.startswith(".set.h5.")]
    assert len(staged) == 1
    _flushed_before_renamed(syscalls, out, staged)


def test_a_bias_png_is_flushed_before_it_is_renamed(tmp_path, syscalls):
    from salibi.bias import parse_grid, render_bias_png

    out = render_bias_png(parse_grid("4x4@10"), parse_grid("8x8@5"), tmp_path / "bias.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    staged = [Path(p) for kind, p in syscalls if kind == "fsync" and Path(p).name.startswith(".bias.png.")]
    assert len(staged) == 1
    _flushed_before_renamed(syscalls, out, staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bias.png"]


#: Modules allowed to rename: the durable writer itself.
RENAMERS = {"python/salibi/fileio.py"}


def test_every_rename_in_the_library_goes_through_the_durable_writer():
    """No module but salibi.fileio calls os.replace, os.rename, shutil.move or Path.rename: every
    output is staged, flushed and renamed by fileio (its callers are checked above)."""
    offenders = []
    for path in sorted((REPO / "python" / "salibi").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in RENAMERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = node.func.attr
                module = owner.id if isinstance(owner, ast.Name) else None
                if (module == "os" and name in ("replace", "rename", "renames")) or (
                    module == "shutil" and name == "move"
                ):
                    offenders.append(f"{relative}:{node.lineno} {module}.{name}")
                elif name == "rename" and module != "os":
                    offenders.append(f"{relative}:{node.lineno} .rename")
    assert offenders == []
