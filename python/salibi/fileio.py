"""Outputs written whole or not at all, and durable once renamed.

Everything salibi writes goes to a temporary name in the destination's folder, is flushed to
disk (``fsync``), renamed over the destination, and the folder's entry is flushed too, so a
crash or power loss leaves the old output or the new one, never a renamed but empty file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fsync_dir", "fsync_tree", "replace_atomic", "staging_dir", "staging_file", "write_atomic"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike[str]) -> None:
    """Flush a file, or every file and folder under a folder, to disk."""
    path = Path(path)
    if path.is_file():
        _fsync_file(path)
        return
    for folder, _, files in os.walk(path):
        for name in files:
            _fsync_file(Path(folder) / name)
        fsync_dir(folder)


def replace_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Make the finished file or folder ``source`` durable, then rename it to ``target`` (a folder
    already at ``target`` is removed first: readers see the old one or the new one)."""
    source, target = Path(source), Path(target)
    fsync_tree(source)
    if source.is_dir() and target.is_dir() and not target.is_symlink():
        # os.replace cannot put a folder over a non-empty one: move the old one aside first.
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def staging_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``target``; renamed onto it (durably) when the block succeeds,
    removed when it fails."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        replace_atomic(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staging_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``target``; renamed onto it (durably, replacing a folder there)
    when the block succeeds, removed when it fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        replace_atomic(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staging_file(path) as staging:
        staging.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
