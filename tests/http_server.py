"""A real HTTP file server for tests: byte ranges, redirects and injected faults.

:class:`FileServer` serves the files under a folder from ``127.0.0.1`` on a free port, one thread
per connection (``http.server.ThreadingHTTPServer``). It answers ``GET`` and ``HEAD`` with single
byte ranges (``Range: bytes=A-B``, ``A-``, ``-N``: 206 with ``Content-Range``; 416 outside the
file), counts the bytes of body it sent per path, and logs every request. Faults are queued per
path and consumed one request at a time::

    with FileServer(root) as server:               # started; stopped when the block ends
        server.url("a.tif")                         # http://127.0.0.1:PORT/a.tif
        server.redirect("a.tif", hops=2)            # a URL that answers 302 twice, then serves a.tif
        server.fail["/a.tif"] = 403                 # every request of /a.tif: 403 (until removed)
        server.inject("/a.tif", Fault(status=503, headers={"Retry-After": "1"}))  # the next one: 503
        server.inject("/a.tif", Fault(truncate_to=100))  # full headers, then the body cut at 100 bytes
        server.inject("/a.tif", Fault(hold=go, arrived=came))  # came.set() on arrival, answered once go is set
        server.stop()                               # down: connections refused from now on

The ``http_server`` fixture of ``tests/conftest.py`` gives one serving a fresh folder.
Loopback only; nothing here talks to another machine.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_HOP = re.compile(r"^/_redirect/(\d+)/(.+)$")


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of the file: an error ``status`` (with ``headers`` and a small
    body) or, with ``truncate_to``, the file's headers and only that many bytes of its body. With
    ``hold``, the answer waits until that event is set (``arrived`` is set when the request comes):
    a transfer caught in the middle, for kill tests."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncate_to: int | None = None
    hold: threading.Event | None = None
    arrived: threading.Event | None = None


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

    def log_message(self, format: str, *args: object) -> None:
        pass  # the tests read server.requests instead

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        arrived = time.monotonic()
        path = urllib.parse.urlsplit(self.path).path
        wanted = self.headers.get("Range")
        status, headers, data, cut = self._prepare(path, wanted)
        sent = len(data) if body else 0
        # Recorded before the client can see the answer: a test that asserts on the log right
        # after its request returns never misses the last one.
        self.server.record(Request(self.command, path, wanted, status, sent, arrived))
        if sent and status < 300:
            self.server.count(path, sent)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)
        if cut:
            self.wfile.flush()
            self.close_connection = True  # the client sees the body end before Content-Length

    def _prepare(self, path: str, wanted: str | None) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, cut short) of the answer to ``path``."""
        hop = _HOP.match(path)
        if hop is not None:  # /_redirect/N/NAME: 302 to /_redirect/N-1/NAME, the last to /NAME
            left, name = int(hop[1]), hop[2]
            location = f"/_redirect/{left - 1}/{name}" if left > 1 else f"/{name}"
            return _plain(302, "moved\n", {"Location": location})
        if path in self.server.fail:
            status = self.server.fail[path]
            return _plain(status, f"failing with {status}\n", {})
        fault = self.server.next_fault(path)
        if fault is not None and fault.arrived is not None:
            fault.arrived.set()
        if fault is not None and fault.hold is not None:
            fault.hold.wait(120)
        if fault is not None and fault.status is not None:
            return _plain(fault.status, f"injected {fault.status}\n", fault.headers)
        file = self.server.file_of(path)
        if file is None:
            return _plain(404, "not found\n", {})
        size = file.stat().st_size
        start, end = 0, size - 1
        status = 200
        if wanted:
            found = _RANGE.match(wanted.strip())
            if not found or (not found[1] and not found[2]):
                return _plain(416, "bad range\n", {"Content-Range": f"bytes */{size}"})
            if found[1]:
                start = int(found[1])
                end = min(int(found[2]), size - 1) if found[2] else size - 1
            else:
                start = max(0, size - int(found[2]))
            if start >= size or start > end:
                return _plain(416, "bad range\n", {"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1
        headers = {
            "Content-Type": "image/tiff" if path.endswith((".tif", ".tiff")) else "application/json",
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        with open(file, "rb") as f:
            f.seek(start)
            data = f.read(length)
        if fault is not None and fault.truncate_to is not None:
            return status, headers, data[: fault.truncate_to], True
        return status, headers, data, False


def _plain(status: int, text: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
    data = text.encode()
    return status, {**headers, "Content-Type": "text/plain", "Content-Length": str(len(data))}, data, False


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1 (see the module docstring); :attr:`url` is its base URL."""

    daemon_threads = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        #: URL path -> the status every request of it gets (until removed)
        self.fail: dict[str, int] = {}
        self.requests: list[Request] = []
        self.sent: dict[str, int] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        """The URL of file ``name`` (a path relative to the root)."""
        return f"{self.base_url}/{name.lstrip('/')}"

    def redirect(self, name: str, hops: int = 1) -> str:
        """A URL that answers ``302`` ``hops`` times before the file ``name`` is served."""
        return f"{self.base_url}/_redirect/{hops}/{name.lstrip('/')}"

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that read what it wanted and hung up (a one-byte probe, a cut transfer)
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def file_of(self, path: str) -> Path | None:
        """The file a URL path names inside the root (never outside it), or None."""
        relative = urllib.parse.unquote(path).lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate

    def inject(self, path: str, *faults: Fault) -> None:
        """Queue faults for the next requests of ``path`` (a URL path such as ``/a.tif``), one each."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

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
        """Forget the requests, counts and faults so far."""
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self._faults.clear()
            self.fail.clear()

    def bytes_sent(self, prefix: str = "/") -> int:
        """Bytes of body sent for paths starting with ``prefix``."""
        with self._lock:
            return sum(n for path, n in self.sent.items() if path.startswith(prefix))
