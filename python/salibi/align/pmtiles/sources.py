"""Where an archive's bytes come from: a local file (``pread``) or an http(s) URL (range requests).

A :class:`ByteSource` knows its size and reads ``length`` bytes at ``offset`` -- only after
checking that the span lies inside the file, and it refuses a short answer. Both kinds are safe
to read from several threads at once.

URLs: every read is one ``GET`` with ``Range: bytes=A-B``; the answer must be ``206 Partial
Content`` with a ``Content-Range`` whose total is the size the first answer gave (a server that
ignores ranges, or a file that changes under the reader, is refused). Redirects are followed, at
most :data:`MAX_REDIRECTS` in a row, as the released dataset's hosting answers with a 302 to a
signed URL; the final URL is then read directly, and asked again through the given one when it
stops answering (403/404/410: the signature expired). Transient failures (connection errors,
5xx) are retried :data:`RETRIES` times.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from salibi.errors import DataFormatError, InputError, MissingInputError

#: Redirects followed for one request.
MAX_REDIRECTS = 5
#: Tries of a request after the first that failed for a transient reason.
RETRIES = 3
#: Seconds before a silent server is given up.
TIMEOUT_S = 60.0
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")

__all__ = ["ByteSource", "HttpSource", "LocalSource", "is_url", "open_source"]


class ByteSource(Protocol):
    """Random access to an archive's bytes."""

    name: str  # how the user gave it, for messages: "--lores visual_tiles.pmtile"
    size: int

    def read(self, offset: int, length: int, what: str) -> bytes:
        """``length`` bytes at ``offset``; DataFormatError naming ``what`` when the span is not
        inside the file."""
        ...

    def close(self) -> None: ...


def is_url(spec: str) -> bool:
    return spec.lower().startswith(("http://", "https://"))


def open_source(spec: str, flag: str) -> ByteSource:
    """The source of ``spec`` (a path or an http(s) URL) given as ``flag`` (``--lores``)."""
    return HttpSource(spec, flag) if is_url(spec) else LocalSource(Path(spec), flag)


def check_span(name: str, size: int, offset: int, length: int, what: str) -> None:
    """DataFormatError unless ``offset .. offset + length`` lies inside a file of ``size`` bytes."""
    if offset < 0 or length < 0 or offset + length > size:
        raise DataFormatError(
            f"{name}: {what} at bytes {offset}..{offset + length} lies outside the file ({size} bytes): the archive "
            "is truncated or damaged; download it again"
        )


class LocalSource:
    """A local file read with ``os.pread``."""

    def __init__(self, path: Path, flag: str) -> None:
        self.name = f"{flag} {path}"
        if not path.exists():
            raise MissingInputError(f"{self.name}: no such file")
        if path.is_dir():
            raise InputError(f"{self.name}: is a directory, not a PMTiles archive")
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except PermissionError:
            raise InputError(f"{self.name}: permission denied; make the file readable") from None
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_span(self.name, self.size, offset, length, what)
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise DataFormatError(f"{self.name}: {what} was cut short (the file shrank while being read)")
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _BoundedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS


class HttpSource:
    """An http(s) URL read with range requests (see the module docstring)."""

    def __init__(self, url: str, flag: str, first_bytes: int = 16384) -> None:
        self.url = url
        self.name = f"{flag} {url}"
        self._opener = urllib.request.build_opener(_BoundedRedirects())
        self._resolved = url
        self._lock = threading.Lock()
        self.size = -1
        self.requests = 0
        # The first answer gives the size (Content-Range) and the header with the root directory.
        self._head = self._get(0, first_bytes - 1, "the archive's header")

    def read(self, offset: int, length: int, what: str) -> bytes:
        check_span(self.name, self.size, offset, length, what)
        if length == 0:
            return b""
        if offset + length <= len(self._head):
            return self._head[offset : offset + length]
        return self._get(offset, offset + length - 1, what)

    def close(self) -> None:
        pass

    def _get(self, first: int, last: int, what: str) -> bytes:
        tries = 0
        while True:
            with self._lock:
                url = self._resolved
            try:
                return self._request(url, first, last, what)
            except urllib.error.HTTPError as err:
                if url != self.url and err.code in (401, 403, 404, 410):
                    with self._lock:  # a signed URL that expired: ask the given URL again
                        self._resolved = self.url
                    continue
                if err.code >= 500 and tries < RETRIES:
                    tries += 1
                    time.sleep(0.5 * 2**tries)
                    continue
                raise self._http_error(err.code, err.reason) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if tries < RETRIES:
                    tries += 1
                    time.sleep(0.5 * 2**tries)
                    continue
                reason = getattr(err, "reason", err)
                raise InputError(f"{self.name}: cannot be read ({reason}); check the URL and the network") from None

    def _request(self, url: str, first: int, last: int, what: str) -> bytes:
        request = urllib.request.Request(url, headers={"Range": f"bytes={first}-{last}", "User-Agent": "salibi"})
        with self._opener.open(request, timeout=TIMEOUT_S) as answer:
            self.requests += 1
            if answer.status != 206:
                raise InputError(
                    f"{self.name}: the server answered {answer.status} to a range request (it does not serve byte "
                    "ranges); download the archive and give its local path"
                )
            found = _CONTENT_RANGE.match(answer.headers.get("Content-Range", "").strip())
            if not found:
                raise InputError(f"{self.name}: the server's answer has no usable Content-Range header")
            start, end, total = (int(v) for v in found.groups())
            final = answer.geturl()
            if self.size < 0:
                self.size = total
            elif total != self.size:
                raise DataFormatError(
                    f"{self.name}: the file changed while being read ({self.size} bytes, now {total}); start again"
                )
            expected = min(last, total - 1) - first + 1
            if start != first or end - start + 1 != expected:
                raise InputError(f"{self.name}: asked for bytes {first}-{last}, the server sent {start}-{end}")
            data = answer.read(expected + 1)
        if len(data) != expected:
            raise InputError(f"{self.name}: {what}: the server sent {len(data)} bytes of {expected}; try again")
        with self._lock:
            self._resolved = final
        return data

    def _http_error(self, code: int, reason: object) -> Exception:
        if code == 404:
            return MissingInputError(f"{self.name}: not found (HTTP 404); check the URL")
        if code in (401, 403):
            return InputError(
                f"{self.name}: access refused (HTTP {code}); the link may have expired: get a new one from the dataset's "
                "page"
            )
        if code == 416:
            return DataFormatError(f"{self.name}: the server refused a byte range (HTTP 416): the file is shorter than "
                                   "its header says; it may be truncated")  # fmt: skip
        return InputError(f"{self.name}: the server answered HTTP {code} ({reason}); try again later")
