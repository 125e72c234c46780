"""Which scenes to fetch for an area: pairs by date, then a deterministic greedy cover.

Footprints are compared in metres, on the UTM zone of the area's centre.

1. **Pairing.** The scenes of the first modality asked for (``lores``, else ``hires``, else ``sar``)
   anchor the groups. Each anchor is paired, per other modality, with the scene of the same
   ground nearest in time within ``max_days_apart``: among the scenes covering at least half of
   the anchor's part of the area (else, when none does, the one covering most of it), the nearest
   in time, then the one covering more, then the smaller id. An anchor without a partner for every
   modality is *unpaired* (recorded with the reason, not fetched). A group's footprint is what
   all its scenes and the area have in common.
2. **Cover.** Groups are taken one at a time: each step takes the group that adds the most ground
   not yet covered (the first: the largest covered share of the area); ties go to the earlier
   anchor, then the smaller anchor id. It stops when the area is covered or no group adds more
   than :data:`MIN_GAIN` of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from salibi.fetch.planning.areas import Area
from salibi.fetch.planning.assets import AssetRead
from salibi.rasters import iso_utc, parse_iso_utc

#: A group that adds less than this share of the area is not taken.
MIN_GAIN = 0.005
#: Share of the anchor's part of the area a partner should cover to be preferred by date alone.
PARTNER_SHARE = 0.5


@dataclass(frozen=True)
class Scene:
    """A STAC item usable for one modality: when, where (metres on the area's CRS), which assets."""

    modality: str
    collection: str
    id: str
    datetime: datetime
    footprint: Any  # shapely geometry on the area's metric CRS
    cloud_cover: float | None
    assets: tuple[AssetRead, ...]

    def record(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "id": self.id,
            "datetime": iso_utc(self.datetime),
            "cloud_cover": self.cloud_cover,
        }


@dataclass
class Group:
    """An anchor scene and its partners: one scene per modality, of the same ground and time."""

    scenes: dict[str, Scene]  # modality -> scene, the anchor first
    footprint: Any  # shapely geometry: what they and the area have in common
    gain: float = 0.0  # share of the area it added to the cover

    @property
    def anchor(self) -> Scene:
        return next(iter(self.scenes.values()))


@dataclass
class AreaPlan:
    """What the cover chose for one area."""

    area: Area
    crs: str  # the metric CRS footprints were compared in
    groups: list[Group] = field(default_factory=list)
    covered_share: float = 0.0
    unpaired: list[dict[str, str]] = field(default_factory=list)


def item_datetime(item: dict[str, Any]) -> datetime:
    """The item's ``datetime`` (else the middle of ``start_datetime``/``end_datetime``), in UTC."""
    properties = item.get("properties") or {}
    text = properties.get("datetime")
    if not text and properties.get("start_datetime") and properties.get("end_datetime"):
        start, end = (parse_utc(properties[k]) for k in ("start_datetime", "end_datetime"))
        return start + (end - start) / 2
    return parse_utc(text)


def parse_utc(text: Any) -> datetime:
    """An RFC 3339 time of a STAC item or a manifest (``Z`` or an offset; none: UTC), in UTC."""
    if not isinstance(text, str):
        raise ValueError("no datetime")
    return parse_iso_utc(text)


def metric_crs(area: Area) -> str:
    """The UTM zone (EPSG code) of the area's centre."""
    lon, lat = (area.bbox[0] + area.bbox[2]) / 2, (area.bbox[1] + area.bbox[3]) / 2
    zone = int((lon + 180) // 6) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def project(geometry: dict[str, Any], crs: str) -> Any:
    """A GeoJSON geometry in lon/lat as a shapely geometry on ``crs`` (repaired when invalid)."""
    from rasterio.warp import transform_geom
    from shapely.geometry import shape

    projected = shape(transform_geom("EPSG:4326", crs, geometry))
    return projected if projected.is_valid else projected.buffer(0)


def area_geometry(area: Area, crs: str) -> Any:
    """The area's box on ``crs`` (its edges densified, so they bend as they should there)."""
    west, south, east, north = area.bbox
    steps = [i / 20 for i in range(21)]
    ring = (
        [(west + (east - west) * t, south) for t in steps]
        + [(east, south + (north - south) * t) for t in steps[1:]]
        + [(east - (east - west) * t, north) for t in steps[1:]]
        + [(west, north - (north - south) * t) for t in steps[1:]]
    )
    return project({"type": "Polygon", "coordinates": [ring]}, crs)


def _days(a: Scene, b: Scene) -> float:
    return abs((a.datetime - b.datetime).total_seconds()) / 86400


def pair(
    anchors: list[Scene], others: dict[str, list[Scene]], ground: Any, max_days_apart: float
) -> tuple[list[Group], list[dict[str, str]]]:
    """Candidate groups, and the anchors left unpaired with why (module docstring, step 1)."""
    groups, unpaired = [], []
    for anchor in sorted(anchors, key=lambda s: (s.datetime, s.id)):
        part = anchor.footprint.intersection(ground)
        if part.is_empty or part.area <= 0:
            continue
        scenes, footprint, missing = {anchor.modality: anchor}, part, None
        for modality, candidates in others.items():
            near = [s for s in candidates if _days(anchor, s) <= max_days_apart]
            overlaps = [(s, s.footprint.intersection(part).area / part.area) for s in near]
            overlaps = [(s, share) for s, share in overlaps if share > 0]
            if not overlaps:
                missing = f"no {modality} scene of the same ground within {max_days_apart:g} days"
                break
            enough = [(s, share) for s, share in overlaps if share >= PARTNER_SHARE]
            pool = enough or [max(overlaps, key=lambda o: (o[1], -o[0].datetime.timestamp()))]
            chosen = min(pool, key=lambda o: (_days(anchor, o[0]), -o[1], o[0].id))[0]
            scenes[modality] = chosen
            footprint = footprint.intersection(chosen.footprint)
        if missing is not None:
            unpaired.append({"modality": anchor.modality, "id": anchor.id, "reason": missing})
            continue
        if footprint.is_empty or footprint.area <= 0:
            unpaired.append(
                {"modality": anchor.modality, "id": anchor.id, "reason": "its partners share no ground with it"}
            )
            continue
        groups.append(Group(scenes, footprint))
    return groups, unpaired


def greedy_cover(candidates: list[Group], ground: Any) -> tuple[list[Group], float]:
    """The groups chosen and the share of ``ground`` they cover (module docstring, step 2)."""
    total = ground.area
    chosen: list[Group] = []
    covered = None
    left = sorted(candidates, key=lambda g: (g.anchor.datetime, g.anchor.id))
    while left:
        gains = [(g.footprint if covered is None else g.footprint.difference(covered)).area for g in left]
        best = max(range(len(left)), key=lambda i: (round(gains[i] / total, 9), -i))
        if gains[best] / total < MIN_GAIN:
            break
        group = left.pop(best)
        group.gain = gains[best] / total
        chosen.append(group)
        covered = group.footprint if covered is None else covered.union(group.footprint)
        if covered.area >= total * (1 - 1e-9):
            break
    share = 0.0 if covered is None else covered.intersection(ground).area / total
    return chosen, share
