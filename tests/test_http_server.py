"""The tests' HTTP server (tests/http_server.py): ranges, redirects and failures as real hosting
answers them, so the readers tested against it meet the real protocol."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest


def _get(url: str, byte_range: str | None = None, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers={"Range": byte_range} if byte_range else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read(), dict(answer.headers)


def test_ranges_redirects_and_failures(http_server) -> None:
    data = bytes(range(256)) * 4
    (http_server.root / "a.bin").write_bytes(data)

    assert _get(http_server.url("a.bin"))[:2] == (200, data)
    status, body, headers = _get(http_server.url("a.bin"), "bytes=10-19")
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], "bytes 10-19/1024")
    assert _get(http_server.url("a.bin"), "bytes=1000-")[1] == data[1000:]
    assert _get(http_server.url("a.bin"), "bytes=-5")[1] == data[-5:]
    assert _get(http_server.url("a.bin"), "bytes=1020-5000")[1] == data[1020:]
    status, body, headers = _get(http_server.url("a.bin"), method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "1024")
    with pytest.raises(urllib.error.HTTPError) as past_end:
        _get(http_server.url("a.bin"), "bytes=2000-2001")
    assert past_end.value.code == 416

    redirected = http_server.redirect("a.bin", hops=2)
    assert _get(redirected, "bytes=0-3")[:2] == (206, data[:4])
    assert [r.status for r in http_server.requests[-3:]] == [302, 302, 206]
    assert http_server.requests[-1].range == "bytes=0-3"

    http_server.fail["/a.bin"] = 403
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(http_server.url("a.bin"))
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(http_server.url("../etc/passwd"))
    assert missing.value.code == 404
