"""The STAC catalogs ``salibi fetch`` knows by name, and how their asset hrefs are opened.

- ``earth-search``: Element 84's Earth Search v1, the catalog the Scale-ALiBi authors searched
  (``sentinel-2-l2a`` and ``sentinel-1-grd``; the latter's files are in a requester-pays S3
  bucket: ``--allow-s3`` with AWS credentials).
- ``planetary-computer``: Microsoft's Planetary Computer (``sentinel-2-l2a``, ``sentinel-1-rtc``,
  ``naip``); its asset URLs need a short-lived signature, which its own package
  (``planetary-computer``) adds just before each file is read. Hrefs are stored unsigned.
- any other ``http(s)`` URL of a STAC API: no default collections (give ``--lores``/``--sar``/
  ``--hires``), hrefs used as they are.

Importing this module imports nothing heavy (the command line builds its help from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from salibi.errors import InputError
from salibi.fetch.hrefs import check_catalog_url


@dataclass(frozen=True)
class Catalog:
    """A STAC API: its name, URL, default collection per modality and whether hrefs are signed."""

    name: str
    url: str
    collections: dict[str, str] = field(default_factory=dict)
    signed: bool = False


EARTH_SEARCH = Catalog(
    "earth-search",
    "https://earth-search.aws.element84.com/v1",
    {"lores": "sentinel-2-l2a", "sar": "sentinel-1-grd"},
)
PLANETARY_COMPUTER = Catalog(
    "planetary-computer",
    "https://planetarycomputer.microsoft.com/api/stac/v1",
    {"lores": "sentinel-2-l2a", "sar": "sentinel-1-rtc"},
    signed=True,
)
#: The catalogs known by name; the first is the default (the authors').
CATALOGS: dict[str, Catalog] = {c.name: c for c in (EARTH_SEARCH, PLANETARY_COMPUTER)}


def resolve_catalog(value: str) -> Catalog:
    """The catalog ``--stac`` names: a known name or an http(s) URL of a STAC API."""
    known = CATALOGS.get(value.strip().lower())
    if known is not None:
        return known
    url = check_catalog_url(value.strip())
    for catalog in CATALOGS.values():  # a known catalog given by its URL keeps its defaults
        if url == catalog.url:
            return catalog
    return Catalog(url, url)


def sign_href(catalog: Catalog, href: str) -> str:
    """The URL to read ``href`` from now: signed for the Planetary Computer, else ``href`` itself.
    Signed URLs are secrets for a while: they are never written anywhere."""
    if not catalog.signed or not href.lower().startswith(("http://", "https://")):
        return href
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its pydantic models, not the user's business
            import planetary_computer  # type: ignore[import-untyped]
    except ImportError:
        raise InputError(
            "--stac planetary-computer needs the planetary-computer package; pip install 'salibi[fetch]'"
        ) from None
    return str(planetary_computer.sign(href))
