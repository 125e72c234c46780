"""The plan of a fetch: for each area, the groups of scenes the cover chose and their files.

:func:`plan_area` searches each modality's collection over the area (:mod:`salibi.fetch.stac.catalog_search`), turns the
items into scenes with the assets of the bands asked for (:mod:`.assets`; every href is checked
here, before anything is opened), pairs and covers them (:mod:`.cover`), and returns the area's
manifest entry. :func:`file_jobs` turns manifest entries into the files to write, so a resumed
run follows the plan its part recorded.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from salibi.errors import InputError
from salibi.fetch.planning.areas import Area
from salibi.fetch.planning.assets import AssetRead, choose_assets, wanted_identities
from salibi.fetch.planning.cover import (
    AreaPlan,
    Scene,
    area_geometry,
    greedy_cover,
    item_datetime,
    metric_crs,
    pair,
    parse_utc,
    project,
)
from salibi.fetch.reading.transfer import FileJob
from salibi.fetch.stac.catalog_search import StacClient, search_items


def safe_name(text: str) -> str:
    """An item id as a folder name: letters, digits, ``.``, ``_``, ``-``; never hidden, never empty."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "item"
    return name[:100]


def collection_record(document: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of a collection: title, licence, providers, attribution."""
    providers = [str(p.get("name")) for p in document.get("providers") or [] if isinstance(p, dict) and p.get("name")]
    licence_links = [
        str(link.get("href"))
        for link in document.get("links") or []
        if isinstance(link, dict) and link.get("rel") == "license"
    ]
    record: dict[str, Any] = {
        "title": document.get("title"),
        "license": document.get("license"),
        "providers": providers,
    }
    if licence_links:
        record["license_links"] = licence_links
    citation = document.get("sci:citation") or document.get("attribution")
    if isinstance(citation, str):
        record["attribution"] = citation
    elif providers:
        record["attribution"] = ", ".join(providers)
    return record


def _scenes(
    stac: StacClient, area: Area, crs: str, modality: str, collection: str, bands: list[str], query: dict[str, Any]
) -> tuple[list[Scene], list[dict[str, str]]]:
    wanted = wanted_identities(modality, bands)
    items = search_items(stac, collection, area.bbox, query["datetime"], query["max_cloud"], sar=modality == "sar")
    scenes, skipped = [], []
    for item in items:
        item_id = str(item.get("id"))
        try:
            assets = choose_assets(item, modality, wanted, query["allow_s3"])
        except LookupError as err:
            skipped.append({"modality": modality, "id": item_id, "reason": str(err)})
            continue
        try:
            moment = item_datetime(item)
            footprint = project(item["geometry"], crs)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            skipped.append({"modality": modality, "id": item_id, "reason": f"no usable datetime or geometry ({err})"})
            continue
        cloud = item["properties"].get("eo:cloud_cover")
        scenes.append(
            Scene(
                modality,
                collection,
                item_id,
                moment,
                footprint,
                float(cloud) if isinstance(cloud, (int, float)) else None,
                tuple(assets),
            )
        )
    return scenes, skipped


def plan_area(stac: StacClient, area: Area, query: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of one area: the groups chosen, with their files (not yet fetched)."""
    from rasterio.warp import transform_geom
    from shapely.geometry import shape

    crs = metric_crs(area)
    ground = area_geometry(area, crs)
    modalities = list(query["collections"])
    found: dict[str, list[Scene]] = {}
    skipped: list[dict[str, str]] = []
    for modality in modalities:
        found[modality], left_out = _scenes(
            stac, area, crs, modality, query["collections"][modality], query["bands"][modality], query
        )
        skipped += left_out
    anchors, others = found[modalities[0]], {m: found[m] for m in modalities[1:]}
    candidates, unpaired = pair(anchors, others, ground, float(query["max_days_apart"]))
    chosen, share = greedy_cover(candidates, ground)
    plan = AreaPlan(area, crs, chosen, share, unpaired)
    groups = []
    for index, group in enumerate(plan.groups):
        group_id = f"{index:03d}-{safe_name(group.anchor.id)}"
        folder = f"{area.key}/{group_id}"
        lonlat = shape(transform_geom(crs, "EPSG:4326", group.footprint.__geo_interface__))
        files = {
            modality: [_file_entry(folder, scene, asset) for asset in scene.assets]
            for modality, scene in group.scenes.items()
        }
        groups.append(
            {
                "id": group_id,
                "folder": folder,
                "bbox": [round(v, 9) for v in lonlat.bounds],
                "share": round(group.gain, 6),
                "scenes": {modality: scene.record() for modality, scene in group.scenes.items()},
                "files": files,
            }
        )
    return {
        "key": area.key,
        "bbox": list(area.bbox),
        "crs": crs,
        "covered_share": round(share, 6),
        "found": {m: len(s) for m, s in found.items()},
        "unpaired": plan.unpaired,
        "skipped": skipped,
        "groups": groups,
    }


def _file_entry(folder: str, scene: Scene, asset: AssetRead) -> dict[str, Any]:
    return {
        "path": f"{folder}/{scene.modality}-{'-'.join(asset.bands)}.tif",
        "collection": scene.collection,
        "item": scene.id,
        "asset": asset.key,
        "href": asset.href,
        "indexes": list(asset.indexes),
        "bands": list(asset.bands),
        "bytes": None,
        "transferred": None,
        "asset_bytes": None,
    }


def file_jobs(folder: Path, areas: list[dict[str, Any]], allow_s3: bool) -> list[FileJob]:
    """Every file of the planned areas, as jobs (hrefs checked again: a part file may be old)."""
    from salibi.fetch.hrefs import check_href

    jobs = []
    for area in areas:
        for group in area["groups"]:
            for modality, entries in group["files"].items():
                for entry in entries:
                    relative = str(entry["path"])
                    if ".." in Path(relative).parts or relative.startswith("/"):
                        raise InputError(
                            f"{folder}: the plan names {relative!r}, outside the folder; remove manifests/"
                        )
                    where = f"{entry['collection']} item {entry['item']} asset {entry['asset']}"
                    asset = AssetRead(
                        str(entry["asset"]),
                        check_href(entry["href"], where, allow_s3),
                        tuple(int(i) for i in entry["indexes"]),
                        tuple(str(b) for b in entry["bands"]),
                    )
                    jobs.append(
                        FileJob(
                            folder / relative,
                            relative,
                            modality,
                            str(entry["collection"]),
                            str(entry["item"]),
                            asset,
                            tuple(float(v) for v in group["bbox"]),  # type: ignore[arg-type]
                            _scene_time(group, modality, str(entry["item"])),
                        )
                    )
    return jobs


def _scene_time(group: dict[str, Any], modality: str, item: str) -> datetime | None:
    """The recorded ``datetime`` of the group's ``modality`` scene when it is ``item`` (None when
    the plan does not say, or says something that does not parse: never guessed)."""
    scene = (group.get("scenes") or {}).get(modality) or {}
    if scene.get("id") != item:
        return None
    try:
        return parse_utc(scene.get("datetime"))
    except ValueError:
        return None
