"""Searching a STAC API with pystac-client, through an HTTP layer a hostile catalog cannot steer.

:class:`GuardedStacIO` is pystac-client's own ``StacApiIO`` with three changes: it reads nothing
but ``http(s)`` URLs (pystac-client would open a ``next`` link that is a local path as a file),
every answer is read in pieces and refused past :data:`MAX_RESPONSE_BYTES`, and redirects stop
after :data:`salibi.fetch.hrefs.MAX_REDIRECTS`. 429 and 5xx answers are retried with backoff,
honouring ``Retry-After`` (urllib3's ``Retry``); every request has a timeout.

:func:`search_items` returns plain item dicts of one collection over one box and time range,
optical items over the cloud limit dropped (also asked of the server when it supports the query
extension) and SAR items of modes other than IW dropped (as the authors did).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from salibi.errors import DataFormatError, InputError
from salibi.fetch.hrefs import MAX_REDIRECTS
from salibi.fetch.stac.catalogs import Catalog

#: Largest answer read from the STAC API (one page of items, a collection, the landing page).
MAX_RESPONSE_BYTES = 64 * 2**20
#: Items read per collection and area; more means the query is too wide for one area.
MAX_ITEMS = 5000
#: Seconds to connect and to wait between bytes of an answer.
TIMEOUT_S = (10.0, 60.0)


class CatalogError(InputError):
    """The STAC API cannot be reached, or answered something that is not STAC."""


def _retry(tries: int) -> Any:
    from urllib3 import Retry

    return Retry(
        total=tries - 1,
        connect=tries - 1,
        read=tries - 1,
        redirect=MAX_REDIRECTS,
        status=tries - 1,
        backoff_factor=0.5,
        backoff_max=30,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _guarded_io(catalog: Catalog, tries: int) -> Any:
    """A pystac-client ``StacApiIO`` that only reads bounded http(s) answers (module docstring)."""
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from requests import Request

    class GuardedStacIO(StacApiIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            href = str(source.href if hasattr(source, "href") else source)
            if urllib.parse.urlsplit(href).scheme.lower() not in ("http", "https"):
                raise CatalogError(
                    f"--stac {catalog.name}: the catalog links to {href[:120]!r}, which is not an http(s) URL; refused"
                )
            return str(super().read_text(source, *args, **kwargs))

        def request(
            self,
            href: str,
            method: str | None = None,
            headers: dict[str, str] | None = None,
            parameters: dict[str, Any] | None = None,
        ) -> str:
            method = (method or "GET").upper()
            if method in ("POST", "PUT", "PATCH"):
                request = Request(method=method, url=href, headers=headers, json=parameters)
            else:
                request = Request(method=method, url=href, headers=headers, params=dict(parameters or {}))
            prepared = self.session.prepare_request(request)
            try:
                response = self.session.send(prepared, timeout=self.timeout, stream=True, allow_redirects=True)
            except Exception as err:  # requests' own errors: connection refused, timeouts, too many redirects
                raise APIError(_reason(err)) from None
            with response:
                body = bytearray()
                for piece in response.iter_content(1 << 16):
                    body += piece
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise CatalogError(
                            f"--stac {catalog.name}: an answer from {href[:120]} is larger than "
                            f"{MAX_RESPONSE_BYTES:,} bytes; refused (is this a STAC API?)"
                        )
                if not 200 <= response.status_code < 300:
                    error = APIError(f"HTTP {response.status_code} {response.reason} from {href[:120]}")
                    error.status_code = response.status_code
                    raise error
            return body.decode("utf-8", errors="replace")

    io = GuardedStacIO(timeout=TIMEOUT_S, max_retries=_retry(tries))
    io.session.max_redirects = MAX_REDIRECTS
    io.session.headers["User-Agent"] = "salibi-fetch"
    return io


def _reason(err: BaseException) -> str:
    """A short reason from a requests/urllib3 error (their messages nest the whole retry story)."""
    text = str(err)
    for known in ("Connection refused", "timed out", "Name or service not known", "Exceeded", "Max retries"):
        if known in text:
            if known == "Max retries" and "Connection refused" not in text:
                continue
            return "connection refused" if known == "Connection refused" else known.lower()
    return text.splitlines()[0][:200] if text else type(err).__name__


@dataclass
class StacClient:
    """An open STAC API: pystac-client's ``Client`` and the I/O it reads through."""

    catalog: Catalog
    client: Any
    io: Any

    def collection(self, collection_id: str) -> dict[str, Any]:
        """The collection's JSON (licence, providers); an error naming the collections there are."""
        from pystac_client.exceptions import APIError

        url = f"{self.catalog.url}/collections/{urllib.parse.quote(collection_id, safe='')}"
        try:
            document = self.io.read_json(url)
        except APIError as err:
            if getattr(err, "status_code", None) == 404:
                raise CatalogError(
                    f"collection {collection_id!r} is not in the STAC API at {self.catalog.url}"
                    f"{self._available()}; give another --lores/--sar/--hires"
                ) from None
            raise CatalogError(f"--stac {self.catalog.name}: collection {collection_id}: {err}") from None
        except json.JSONDecodeError:
            raise CatalogError(
                f"--stac {self.catalog.name}: collection {collection_id}: the answer is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise CatalogError(f"--stac {self.catalog.name}: collection {collection_id}: not a STAC collection")
        return document

    def _available(self) -> str:
        try:
            found = self.io.read_json(f"{self.catalog.url}/collections")
            names = sorted(str(c.get("id")) for c in found.get("collections", []) if isinstance(c, dict))
        except Exception:
            return ""
        return f" (it has {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})" if names else ""


def open_catalog(catalog: Catalog, tries: int = 5) -> StacClient:
    """Open the STAC API (its landing page is read), each request tried at most ``tries`` times;
    one clear error when it cannot be."""
    import warnings

    from pystac_client import Client
    from pystac_client.exceptions import APIError

    io = _guarded_io(catalog, tries)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no conformsTo": a static catalog is refused below anyway
            client = Client.open(catalog.url, stac_io=io, timeout=TIMEOUT_S)
    except CatalogError:
        raise
    except APIError as err:
        raise CatalogError(
            f"--stac {catalog.name}: cannot reach the STAC API at {catalog.url} ({err}); check the URL and the network"
        ) from None
    except (json.JSONDecodeError, ValueError, KeyError, TypeError) as err:
        raise CatalogError(
            f"--stac {catalog.name}: {catalog.url} did not answer with a STAC catalog ({type(err).__name__}); "
            "check the URL"
        ) from None
    return StacClient(catalog, client, io)


def search_items(
    stac: StacClient,
    collection: str,
    bbox: tuple[float, float, float, float],
    datetime: str,
    max_cloud: float | None,
    sar: bool,
) -> list[dict[str, Any]]:
    """Items of ``collection`` over ``bbox`` (lon/lat) in ``datetime``, filtered (module docstring)."""
    from pystac_client import ConformanceClasses
    from pystac_client.exceptions import APIError

    query = None
    if max_cloud is not None and not sar and stac.client.conforms_to(ConformanceClasses.QUERY):
        query = {"eo:cloud_cover": {"lte": max_cloud}}
    try:
        search = stac.client.search(
            collections=[collection],
            bbox=list(bbox),
            datetime=datetime,
            query=query,
            max_items=MAX_ITEMS + 1,
            limit=100,
        )
        items = list(search.items_as_dicts())
    except CatalogError:
        raise
    except NotImplementedError:
        raise CatalogError(
            f"--stac {stac.catalog.name}: {stac.catalog.url} is not a STAC API with item search; give the URL of one"
        ) from None
    except APIError as err:
        raise CatalogError(f"--stac {stac.catalog.name}: searching {collection} failed ({err})") from None
    except (json.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CatalogError(
            f"--stac {stac.catalog.name}: searching {collection}: the answer is not a STAC item collection "
            f"({type(err).__name__})"
        ) from None
    if len(items) > MAX_ITEMS:
        raise InputError(
            f"more than {MAX_ITEMS} {collection} items over one area; narrow --datetime or cut the area into --tiles"
        )
    return [item for item in items if _wanted(item, collection, max_cloud, sar)]


def _wanted(item: Any, collection: str, max_cloud: float | None, sar: bool) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("properties"), dict):
        raise DataFormatError(f"the STAC API returned a {collection} item that is not a STAC item (no properties)")
    properties = item["properties"]
    if sar:
        mode = properties.get("sar:instrument_mode")
        return mode is None or str(mode).upper() == "IW"
    cloud = properties.get("eo:cloud_cover")
    if max_cloud is None or cloud is None:
        return True
    try:
        return float(cloud) <= max_cloud
    except (TypeError, ValueError):
        return False
