"""A real HTTP file server for tests: byte ranges, redirects and injected faults.

:class:`FileServer` serves the files under a folder from ``127.0.0.1`` on a free port, one thread
per connection (``http.server.ThreadingHTTPServer``). It answers ``GET`` and ``HEAD`` with single
byte ranges (``Range: bytes=A-B``, ``A-``, ``-N``: 206 with ``Content-Range``; 416 outside the
file), counts the bytes of body it sent per path, and logs every request. Faults are queued per
path and consumed one request at a time::

    server.fail("/a.tif", Fault(status=503, headers={"Retry-After": "1"}))   # the next GET: 503
    server.fail("/a.tif", Fault(truncate_to=100))   # full headers, then the body cut at 100 bytes
    server.redirect("/old.tif", "/a.tif")           # every request: 302 to /a.tif
    server.stop()                                   # down: connections refused from now on

Use :func:`serve` (a context manager) or the ``http_server`` fixture of ``tests/conftest.py``.
Loopback only; nothing here talks to another machine.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of the file: an error ``status`` (with ``headers`` and a small
    body) or, with ``truncate_to``, the file's headers and only that many bytes of its body."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int  # bytes of body sent
    at: float  # time.monotonic() when it arrived


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the tests read server.requests instead

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        arrived = time.monotonic()
        path = urllib.parse.urlsplit(self.path).path
        wanted = self.headers.get("Range")
        status, sent = self._respond(path, wanted, body)
        self.server.record(Request(self.command, path, wanted, status, sent, arrived))

    def _respond(self, path: str, wanted: str | None, body: bool) -> tuple[int, int]:
        fault = self.server.next_fault(path)
        if fault is not None and fault.status is not None:
            return self._plain(fault.status, f"injected {fault.status}\n", fault.headers, body), 0
        location = self.server.redirects.get(path)
        if location is not None:
            return self._plain(302, "moved\n", {"Location": location}, body), 0
        file = self.server.file_of(path)
        if file is None:
            return self._plain(404, "not found\n", {}, body), 0
        size = file.stat().st_size
        start, end = 0, size - 1
        status = 200
        if wanted:
            found = _RANGE.match(wanted.strip())
            if not found or (not found[1] and not found[2]):
                return self._plain(416, "bad range\n", {"Content-Range": f"bytes */{size}"}, body), 0
            if found[1]:
                start = int(found[1])
                end = min(int(found[2]), size - 1) if found[2] else size - 1
            else:
                start = max(0, size - int(found[2]))
            if start >= size or start > end:
                return self._plain(416, "bad range\n", {"Content-Range": f"bytes */{size}"}, body), 0
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff" if path.endswith((".tif", ".tiff")) else "application/json")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return status, 0
        with open(file, "rb") as f:
            f.seek(start)
            data = f.read(length)
        if fault is not None and fault.truncate_to is not None:
            data = data[: fault.truncate_to]
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True  # the client sees the body end early
            self.server.count(path, len(data))
            return status, len(data)
        self.wfile.write(data)
        self.server.count(path, len(data))
        return status, len(data)

    def _plain(self, status: int, text: str, headers: dict[str, str], body: bool) -> int:
        data = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
        return status


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1 (see the module docstring); :attr:`url` is its base URL."""

    daemon_threads = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.redirects: dict[str, str] = {}
        self.requests: list[Request] = []
        self.sent: dict[str, int] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FileServer:
        self._thread = threading.Thread(target=self.serve_forever, name="test-file-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket: new connections are refused."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def file_of(self, path: str) -> Path | None:
        """The file a URL path names inside the root (never outside it), or None."""
        relative = urllib.parse.unquote(path).lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def fail(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests of ``path`` (a URL path such as ``/a.tif``)."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    def redirect(self, path: str, location: str) -> None:
        self.redirects[path] = location

    def next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            return queue.pop(0) if queue else None

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, path: str, n: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + n

    def reset(self) -> None:
        """Forget the requests, counts, faults and redirects so far."""
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self._faults.clear()
            self.redirects.clear()

    def bytes_sent(self, prefix: str = "/") -> int:
        """Bytes of body sent for paths starting with ``prefix``."""
        with self._lock:
            return sum(n for path, n in self.sent.items() if path.startswith(prefix))


@contextmanager
def serve(root: str | os.PathLike[str]) -> Iterator[FileServer]:
    """A started :class:`FileServer` of ``root``, stopped afterwards."""
    server = FileServer(root).start()
    try:
        yield server
    finally:
        server.stop()
