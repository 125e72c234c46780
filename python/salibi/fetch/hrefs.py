"""Which hrefs ``salibi fetch`` may open: the rules a hostile catalog meets before anything is read.

A STAC item names its files by href, and GDAL opens almost anything it is handed: local paths,
``file://`` URLs, ``/vsi...`` virtual file systems (``/vsizip/``, ``/vsisubfile/``, ...), and URLs
whose ``..`` segments climb out of where the catalog said. So every href is checked here, as
text, before it reaches GDAL or an HTTP client:

- only ``http://`` and ``https://`` URLs with a host, and ``s3://bucket/key`` when the user asked
  for it (``--allow-s3``);
- local paths, ``file://``, other schemes, GDAL ``/vsi`` prefixes and GDAL's ``DRIVER:`` syntax
  are refused;
- a path with a ``..`` segment (also percent-encoded, or behind a backslash) is refused;
- control characters and whitespace are refused.

Redirects are bounded where requests are made (:data:`MAX_REDIRECTS`; GDAL's own bound is 10 and
curl never follows one to ``file://``), as are the sizes of the catalog's answers (:mod:`.stac.catalog_search`).
"""

from __future__ import annotations

import re
import urllib.parse

from salibi.errors import InputError

#: Redirects followed for one request of the STAC API (GDAL's asset reads stop at 10).
MAX_REDIRECTS = 10
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class RefusedHrefError(InputError):
    """An href that salibi fetch will not open (see :mod:`salibi.fetch.hrefs`)."""


def check_href(href: object, where: str, allow_s3: bool = False) -> str:
    """``href`` when it may be opened, else :class:`RefusedHrefError` naming ``where`` (the item
    and asset it came from) and why."""
    if not isinstance(href, str) or not href:
        raise RefusedHrefError(f"{where}: href {href!r} is not a URL; the catalog's item is malformed")
    shown = href if len(href) <= 120 else href[:117] + "..."
    allowed = "only http(s) URLs" + (" and s3:// URLs" if allow_s3 else " (s3:// with --allow-s3)")

    def refuse(why: str) -> RefusedHrefError:
        return RefusedHrefError(f"{where}: href {shown!r} refused: {why}; {allowed} are fetched")

    if _CONTROL.search(href):
        raise refuse("it holds whitespace or control characters")
    if href.lower().lstrip("/").startswith("vsi"):
        raise refuse("a GDAL virtual file system path (/vsi...)")
    parts = urllib.parse.urlsplit(href)
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise refuse("a file:// URL names a file on this machine")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise refuse("the URL has no host")
    elif scheme == "s3":
        if not allow_s3:
            raise refuse("an s3:// URL (pass --allow-s3 to read from S3 with your AWS credentials)")
        if not parts.netloc:
            raise refuse("the s3:// URL has no bucket")
    elif not scheme or len(scheme) == 1:  # "C:\..." is a Windows path, not a scheme
        raise refuse("a local path")
    else:
        raise refuse(f"the {scheme}: scheme")
    if _climbs(parts.path):
        raise refuse("its path holds a '..' segment")
    return href


def _climbs(path: str) -> bool:
    """Whether a URL path has a ``..`` segment, as written or percent-decoded (twice)."""
    seen = path
    for _ in range(3):
        if any(segment == ".." for segment in re.split(r"[/\\]", seen)):
            return True
        decoded = urllib.parse.unquote(seen)
        if decoded == seen:
            return False
        seen = decoded
    return True  # still encoded after three rounds: nobody writes a real href like that


def resolve_href(href: object, base: str | None, where: str, allow_s3: bool = False) -> str:
    """An item's asset href made absolute against the item's own URL ``base`` (STAC allows relative
    hrefs) and checked; a relative href without an http(s) base is a local path, refused."""
    if isinstance(href, str) and href and not urllib.parse.urlsplit(href).scheme and base:
        if _CONTROL.search(href) or _climbs(href) or href.lstrip().startswith(("/", "\\")):
            return check_href(href, where, allow_s3)  # refused with the reason
        if urllib.parse.urlsplit(base).scheme.lower() in ("http", "https"):
            href = urllib.parse.urljoin(base, href)
    return check_href(href, where, allow_s3)


def gdal_path(href: str) -> str:
    """The GDAL path of a checked href: ``/vsicurl/URL`` or ``/vsis3/BUCKET/KEY``."""
    parts = urllib.parse.urlsplit(href)
    if parts.scheme.lower() == "s3":
        return f"/vsis3/{parts.netloc}{parts.path}"
    return f"/vsicurl/{href}"


def check_catalog_url(url: str, option: str = "--stac") -> str:
    """A STAC API URL given by the user: http(s) with a host, nothing else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or _CONTROL.search(url):
        raise InputError(
            f"{option} {url}: not a catalog name or an http(s) URL of a STAC API; use earth-search, "
            "planetary-computer or a URL such as https://example.com/stac/v1"
        )
    return url.rstrip("/")
