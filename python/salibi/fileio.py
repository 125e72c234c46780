"""Outputs written whole or not at all, and durable once renamed.

Everything salibi writes goes to a temporary name in the destination's folder, is flushed to
disk (``fsync``), renamed over the destination, and the folder's entry is flushed too, so a
crash or power loss leaves the old output or the new one, never a renamed but empty file.

A staging name says whose it is: ``.{name}.{pid}@{host}.{random}.tmp``. A writer that is killed
cannot remove its own; the next writer of the same output does (:func:`remove_stale_staging`),
and only when that process is gone -- never another live process's, nor one of another machine
sharing the folder. Finished files get the mode a plain ``open()`` would give them
(``0o666 & ~umask``), folders that of ``mkdir`` (``0o777 & ~umask``).

HDF5 cannot close a file whose flush failed (a full disk), and a second try -- or the one at
interpreter exit -- crashes the process; :func:`staging_hdf5` keeps such errors away from it
(:class:`HeldWritesFile`) and raises them from Python once the file is closed cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import h5py

__all__ = [
    "HeldWritesFile",
    "StagedHDF5",
    "file_digest",
    "fsync_dir",
    "fsync_tree",
    "remove_stale_staging",
    "replace_atomic",
    "staging_dir",
    "staging_file",
    "staging_hdf5",
    "write_atomic",
    "write_json",
]

#: This machine in staging names: the first label of the host name, in letters, digits and dashes.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", os.uname().nodename.split(".")[0])[:32] or "localhost"
#: What follows ``.{name}.`` and precedes ``.tmp`` in a staging name: pid, host, random part.
_OWNER = re.compile(r"(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]{8}")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def file_digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"bytes": size, "sha256": digest.hexdigest()}


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


# -- staging names, and what killed writers left -------------------------------------------------


def _staging_owner(target_name: str, name: str) -> tuple[int, str] | None:
    """(pid, host) of a staging name of ``target_name``; None for any other name."""
    prefix = f".{target_name}."
    if not (name.startswith(prefix) and name.endswith(".tmp")):
        return None
    found = _OWNER.fullmatch(name[len(prefix) : -len(".tmp")])
    return (int(found[1]), found[2]) if found else None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists (another user's counts; a reused pid too)."""
    if pid <= 0:
        return True  # not a process id we may probe: never treat it as gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the staging files and folders of ``target`` whose writer is gone (killed before it
    could remove them); what was removed. Those of live processes, of other machines and names
    of any other form are kept; what cannot be removed (not ours, gone already) is skipped."""
    target = Path(target)
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    removed = []
    for entry in entries:
        owner = _staging_owner(target.name, entry.name)
        if owner is None or owner[1] != _HOST or _alive(owner[0]):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _new_staging(target: Path, make: Callable[[Path], None]) -> Path:
    """A fresh staging path beside ``target``, made by ``make`` (which raises FileExistsError when
    the path is taken), after clearing what killed writers of ``target`` left."""
    remove_stale_staging(target)
    for _ in range(16):
        staging = target.parent / f".{target.name}.{os.getpid()}@{_HOST}.{os.urandom(4).hex()}.tmp"
        try:
            make(staging)
        except FileExistsError:
            continue
        return staging
    raise FileExistsError(errno.EEXIST, "no free staging name", str(target.parent))


def _make_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666))  # umask applies


def _make_dir(path: Path) -> None:
    os.mkdir(path, 0o777)  # umask applies


@contextlib.contextmanager
def staging_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``target`` (an empty file, mode ``0o666 & ~umask``); renamed onto it
    (durably) when the block succeeds, removed when it fails."""
    target = Path(target)
    staging = _new_staging(target, _make_file)
    try:
        yield staging
        replace_atomic(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staging_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``target`` (mode ``0o777 & ~umask``); renamed onto it (durably,
    replacing a folder there) when the block succeeds, removed when it fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_staging(target, _make_dir)
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


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], document: Any) -> Path:
    """:func:`write_atomic` of ``document`` as strict JSON (indent 1): NaN and infinities (a
    metric with nothing to measure) become null, which every JSON reader accepts."""
    return write_atomic(path, json.dumps(_finite_or_null(document), indent=1, allow_nan=False) + "\n")


# -- HDF5 --------------------------------------------------------------------------------------------


class HeldWritesFile:
    """A file for h5py's ``fileobj`` driver in which no call fails: the first error (a full disk,
    an I/O error, Ctrl-C) is kept in :attr:`error`, and from then on writes are held in memory
    (reads see them) instead of reaching the disk, so HDF5 can still flush and close the file.
    Whoever writes checks :attr:`error` between HDF5 calls and gives the file up.

    HDF5 sees an I/O error only in the middle of a flush, and cannot close a file after that
    (a second try, or the one at interpreter exit, crashes the process)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.error: BaseException | None = None
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)
        self._position = 0
        self._size = 0
        self._held: list[tuple[int, bytes]] = []

    def _keep(self, err: BaseException) -> None:
        if self.error is None:
            self.error = err

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        start, end = self._position, self._position + len(view)
        done = 0
        while done < len(view):
            try:
                count = os.preadv(self._fd, [view[done:]], start + done)
            except BaseException as err:  # nothing may fail inside HDF5: kept for check()
                self._keep(err)
                if isinstance(err, OSError):
                    break
                continue  # an interrupt: kept for later, read again
            if count == 0:
                break
            done += count
        view[done:] = bytes(len(view) - done)  # past the end: zeros, as HDF5's own driver reads
        for offset, data in self._held:  # what was written since the error, in order
            lo, hi = max(start, offset), min(end, offset + len(data))
            if lo < hi:
                view[lo - start : hi - start] = data[lo - offset : hi - offset]
        self._position = end
        return len(view)

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(max(0, self._size - self._position) if size < 0 else size)
        self.readinto(buffer)
        return bytes(buffer)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += os.pwrite(self._fd, view[done:], self._position + done)
            except BaseException as err:  # nothing may fail inside HDF5: kept for check()
                self._keep(err)
        if self.error is not None:
            self._held.append((self._position, bytes(view)))
        self._position += len(view)
        self._size = max(self._size, self._position)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except BaseException as err:  # nothing may fail inside HDF5: kept for check()
                self._keep(err)
        self._size = size
        return size

    def flush(self) -> None:
        """Nothing: the file is flushed to disk once, when it is renamed into place."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StagedHDF5:
    """What :func:`staging_hdf5` gives: the open :attr:`file`, and the checks of its writes."""

    def __init__(self, file: h5py.File, raw: HeldWritesFile) -> None:
        self.file = file
        self._raw = raw

    def check(self) -> None:
        """Raise the first write error (a full disk) or interrupt, if there was one: after each
        batch of writes, so that a failed file is given up at once."""
        if self._raw.error is not None:
            raise self._raw.error  # kept: later writes stay held until the file is closed

    def close(self) -> None:
        """Close the HDF5 file (it cannot fail on a write), then :meth:`check`."""
        if self.file.id.valid:
            self.file.close()
        self.check()


@contextlib.contextmanager
def staging_hdf5(target: str | os.PathLike[str], **options: Any) -> Iterator[StagedHDF5]:
    """An HDF5 file open for writing under a staging name beside ``target`` (``options`` go to
    ``h5py.File``): closed, flushed to disk and renamed onto ``target`` when the block succeeds,
    removed when it fails. A failed write never reaches HDF5: it is raised by
    :meth:`StagedHDF5.check` (call it after each batch of writes) or :meth:`StagedHDF5.close` (at
    the latest when the block ends), after which the file is removed and the process goes on."""
    import h5py

    with staging_file(target) as staging:
        raw = HeldWritesFile(staging)
        try:
            staged = StagedHDF5(h5py.File(raw, "w", **options), raw)
            try:
                yield staged
            except BaseException:
                if staged.file.id.valid:
                    staged.file.close()  # writes are held: this does not fail on a full disk
                raise
            staged.close()
        finally:
            raw.close()
