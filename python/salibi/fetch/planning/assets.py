"""Which files of a STAC item hold the bands asked for, read from the item's band metadata.

Asset keys differ between catalogs (Earth Search ``red``, the Planetary Computer ``B04``, NAIP one
``image`` of four bands), so assets are chosen by what their metadata says they hold, matched
through :mod:`salibi.bands`:

- optical: ``eo:bands`` (STAC 1.0) or ``bands`` (1.1) entries, by ``name`` or common name
  (``B04`` = ``red``, ``B08`` = ``nir``), else by centre wavelength (Earth Search's ``nir08`` is
  ``B8A``, ``rededge1`` ``B05``), a weaker match;
- SAR: the asset's ``sar:polarizations`` when it names one, else its band names, else the one
  polarisation its title or key states (``vv``, ``VV: vertical transmit, vertical receive``).

Among assets holding a band, a single-band data asset beats a multi-band one (Sentinel-2's 8-bit
``visual`` also has red), a cloud-optimised GeoTIFF beats another GeoTIFF beats JPEG 2000, then
keys sort. Thumbnails, overviews and metadata never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salibi.bands import BandIdentity, band_label, identify, match_strength, polarisation
from salibi.errors import InputError
from salibi.fetch.hrefs import resolve_href

_SKIPPED_ROLES = {"thumbnail", "overview", "metadata", "visual-jpeg"}


@dataclass(frozen=True)
class AssetRead:
    """One asset to read and which of its bands, in the order they are written."""

    key: str
    href: str  # absolute and checked (hrefs.py); unsigned
    indexes: tuple[int, ...]  # 1-based band numbers in the asset
    bands: tuple[str, ...]  # the names written as band descriptions


def wanted_identities(modality: str, names: list[str]) -> list[tuple[str, BandIdentity]]:
    """``(label, identity)`` of each band asked for, or an error naming one salibi cannot identify."""
    found = []
    for name in names:
        identity = identify(name, sar=modality == "sar")
        label = band_label(identity)
        if label is None:
            kind = (
                "a polarisation such as VV or VH"
                if modality == "sar"
                else "a Sentinel-2 band or colour (B04, red, nir)"
            )
            raise InputError(f"--bands {modality}={','.join(names)}: {name!r} is not {kind}")
        found.append((label, identity))
    return found


def _asset_bands(key: str, asset: dict[str, Any], sar: bool) -> list[BandIdentity]:
    """The identity of each band of an asset (unknown bands as identities without a primary)."""
    entries = asset.get("eo:bands") or asset.get("bands") or []
    if sar:
        pols = asset.get("sar:polarizations")
        if isinstance(pols, list) and len(pols) == 1 and isinstance(pols[0], str):
            return [identify(pols[0], sar=True)]
        if isinstance(entries, list) and entries:
            return [identify(str(e.get("name", "")) if isinstance(e, dict) else "", sar=True) for e in entries]
        for text in (asset.get("title"), key):
            if isinstance(text, str) and polarisation(text.split(":")[0]):
                return [identify(text.split(":")[0], sar=True)]
        return []
    identities = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            identities.append(BandIdentity(None))
            continue
        best = BandIdentity(None)
        for field_name in ("name", "common_name", "eo:common_name"):
            value = entry.get(field_name)
            if isinstance(value, str) and value:
                candidate = identify(value)
                if candidate.primary is not None and (best.primary is None or candidate.primary.startswith("s2:")):
                    best = candidate
        centre = entry.get("center_wavelength", entry.get("eo:center_wavelength"))
        if best.wavelength is None and isinstance(centre, (int, float)) and centre > 0:
            best = BandIdentity(best.primary, best.aliases, float(centre))  # Earth Search's "nir08", "rededge1"
        identities.append(best)
    return identities


def _preference(key: str, asset: dict[str, Any], count: int) -> tuple[int, int, int, str]:
    media = str(asset.get("type") or "").lower()
    roles = asset.get("roles") or []
    data = 0 if isinstance(roles, list) and "data" in roles else 1
    kind = 0 if "cloud-optimized" in media else 1 if "tiff" in media else 2 if "jp2" in media else 3
    return (0 if count == 1 else 1, data, kind, key)


def choose_assets(
    item: dict[str, Any], modality: str, wanted: list[tuple[str, BandIdentity]], allow_s3: bool
) -> list[AssetRead]:
    """The assets of ``item`` to read for the ``wanted`` bands, one :class:`AssetRead` per asset in
    the order of the first band each gives; :class:`LookupError` names a band no asset holds."""
    assets = item.get("assets")
    item_id = str(item.get("id"))
    if not isinstance(assets, dict):
        raise LookupError(f"item {item_id} has no assets")
    candidates: list[tuple[tuple[int, int, int, str], str, dict[str, Any], list[BandIdentity]]] = []
    for key, asset in assets.items():
        if not isinstance(asset, dict) or not isinstance(key, str):
            continue
        roles = asset.get("roles") or []
        if isinstance(roles, list) and _SKIPPED_ROLES & set(map(str, roles)) and "data" not in roles:
            continue
        identities = _asset_bands(key, asset, modality == "sar")
        if identities:
            candidates.append((_preference(key, asset, len(identities)), key, asset, identities))
    candidates.sort(key=lambda c: c[0])

    picked: dict[str, tuple[str, dict[str, Any], list[int], list[str]]] = {}
    for label, want in wanted:
        best: tuple[tuple[int, float], tuple[int, int, int, str], str, dict[str, Any], int] | None = None
        for preference, key, asset, identities in candidates:
            for index, have in enumerate(identities, 1):
                strength = match_strength(want, have)  # same band, shared alias, or centre wavelength
                if strength is None:
                    continue
                option = (strength, preference, key, asset, index)
                if best is None or option[:2] < best[:2]:
                    best = option
        if best is None:
            raise LookupError(f"item {item_id} has no asset with band {label}")
        _, _, key, asset, index = best
        entry = picked.setdefault(key, (key, asset, [], []))
        entry[2].append(index)
        entry[3].append(label)
    base = _self_href(item)
    return [
        AssetRead(
            key=key,
            href=resolve_href(asset.get("href"), base, f"item {item_id} asset {key}", allow_s3),
            indexes=tuple(indexes),
            bands=tuple(labels),
        )
        for key, asset, indexes, labels in picked.values()
    ]


def _self_href(item: dict[str, Any]) -> str | None:
    for link in item.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None
