"""``manifest.json`` of a fetch folder (format ``salibi-fetch`` v1) and its per-shard parts.

Each ``salibi fetch`` run (one shard, or the whole query) owns one part,
``DIR/manifests/shard-I-of-N.json``, written when its plan is made (``"complete": false``) and
again when every file is there. The part is also the plan a resumed run follows: the same command
on the same folder reads it back instead of searching again, so a killed fetch continues with
the same scenes. After each run the parts of the folder are merged, under a lock, into
``DIR/manifest.json``::

    {"format": "salibi-fetch", "format_version": 1, "created_by": "salibi X",
     "query": {"stac", "url", "bbox", "datetime", "collections": {modality: id}, "bands": {modality: [names]},
               "max_cloud", "max_days_apart", "tiles", "allow_s3"},
     "shards": N, "shards_done": [I, ...], "complete": bool,
     "collections": {id: {"title", "license", "providers", "attribution"}},
     "areas": [{"key", "bbox", "crs", "covered_share", "unpaired": [...],
                "groups": [{"id", "folder", "bbox", "share", "scenes": {modality: {"collection", "id", "datetime",
                            "cloud_cover"}},
                            "files": {modality: [{"path", "item", "asset", "href", "bands", "bytes",
                                                  "transferred", "asset_bytes"}]}}]}]}

Hrefs are stored as the catalog gave them (never signed). Paths are relative to the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.fileio import write_json
from salibi.vocabulary import FETCH_FORMAT, FETCH_FORMAT_VERSION, MODALITIES

MANIFEST = "manifest.json"
PARTS = "manifests"


def part_path(folder: Path, shard: tuple[int, int]) -> Path:
    return folder / PARTS / f"shard-{shard[0]}-of-{shard[1]}.json"


def _same_query(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a == b


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A manifest file, checked for format and version."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: not a readable {what} ({err}); remove it and run salibi fetch again") from None
    if not isinstance(document, dict) or document.get("format") != FETCH_FORMAT:
        raise DataFormatError(f"{path}: not a salibi fetch manifest (format {document.get('format')!r})"
                              if isinstance(document, dict) else f"{path}: not a salibi fetch manifest")  # fmt: skip
    if document.get("format_version") != FETCH_FORMAT_VERSION:
        raise DataFormatError(
            f"{path}: fetch manifest version {document.get('format_version')}; this salibi reads version "
            f"{FETCH_FORMAT_VERSION}"
        )
    return document


def read_part(folder: Path, shard: tuple[int, int], query: dict[str, Any]) -> dict[str, Any] | None:
    """This shard's part when the folder holds one of the same query; an error when it holds
    another query's (a folder is one query); None when there is none."""
    existing = _any_query(folder)
    if existing is not None and not _same_query(existing, query):
        raise InputError(
            f"-o {folder}: holds a fetch of another query ({_difference(existing, query)}); use another -o for this one"
        )
    path = part_path(folder, shard)
    return read_json(path, "fetch manifest") if path.exists() else None


def _any_query(folder: Path) -> dict[str, Any] | None:
    for path in sorted((folder / PARTS).glob("shard-*.json")) + [folder / MANIFEST]:
        if path.is_file():
            query = read_json(path, "fetch manifest").get("query")
            return query if isinstance(query, dict) else None
    return None


def _difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k} {json.dumps(a.get(k))} there, {json.dumps(b.get(k))} now" for k in keys[:3])


def new_document(query: dict[str, Any], shard: tuple[int, int]) -> dict[str, Any]:
    from salibi import __version__

    return {
        "format": FETCH_FORMAT,
        "format_version": FETCH_FORMAT_VERSION,
        "created_by": f"salibi {__version__}",
        "query": query,
        "shard": list(shard),
        "complete": False,
        "collections": {},
        "areas": [],
    }


def write_part(folder: Path, document: dict[str, Any]) -> Path:
    shard = tuple(document["shard"])
    return write_json(part_path(folder, (int(shard[0]), int(shard[1]))), document)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".manifest.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def merge(folder: Path) -> dict[str, Any]:
    """Merge every part of ``folder`` into ``manifest.json`` (under a lock: shards finish at once)."""
    with _locked(folder):
        parts = [read_json(p, "fetch manifest part") for p in sorted((folder / PARTS).glob("shard-*.json"))]
        if not parts:
            raise MissingInputError(f"{folder}: no fetch manifest parts in {PARTS}/")
        query = parts[0]["query"]
        counts = {int(p["shard"][1]) for p in parts}
        for p in parts[1:]:
            if not _same_query(p["query"], query):
                raise DataFormatError(f"{folder}/{PARTS}: parts of different queries; a folder holds one query")
        if len(counts) != 1:
            raise DataFormatError(
                f"{folder}/{PARTS}: parts of different shard counts ({sorted(counts)}); fetch with one --shard I/N"
            )
        shards = counts.pop()
        done = sorted(int(p["shard"][0]) for p in parts if p.get("complete"))
        areas: dict[str, dict[str, Any]] = {}
        collections: dict[str, Any] = {}
        for p in parts:
            collections.update(p.get("collections") or {})
            for area in p.get("areas") or []:
                areas[str(area.get("key"))] = area
        merged = {
            **new_document(query, (0, shards)),
            "shards": shards,
            "shards_done": done,
            "complete": done == list(range(shards)),
            "collections": dict(sorted(collections.items())),
            "areas": [areas[k] for k in sorted(areas)],
        }
        merged.pop("shard")
        write_json(folder / MANIFEST, merged)
        return merged


def fetch_groups(folder: str | os.PathLike[str]) -> list[dict[str, list[Path]]]:
    """The groups of a complete fetch folder as ``{modality: [files]}`` (the bands of a modality
    in order), for ``salibi align DIR``; errors naming what is missing and what to run."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise MissingInputError(
            f"{folder}: no {MANIFEST}; give a folder written by salibi fetch (or input files with --hires/--lores/--sar)"
        )
    document = read_json(path, "fetch manifest")
    if not document.get("complete"):
        shards = int(document.get("shards", 1))
        missing = sorted(set(range(shards)) - set(document.get("shards_done") or []))
        names = ", ".join(f"{i}/{shards}" for i in missing)
        raise InputError(
            f"{folder}: the fetch is not complete (shard {names} not done); run the same salibi fetch command "
            "again for it"
        )
    root = folder.resolve()
    groups = []
    for area in document.get("areas") or []:
        for group in area.get("groups") or []:
            files: dict[str, list[Path]] = {}
            for modality in MODALITIES:
                for entry in (group.get("files") or {}).get(modality) or []:
                    relative = str(entry.get("path", ""))
                    candidate = (root / relative).resolve()
                    if not relative or ".." in Path(relative).parts or not candidate.is_relative_to(root):
                        raise DataFormatError(
                            f"{path}: file {relative!r} is not inside the folder; the manifest was altered"
                        )
                    if not candidate.is_file():
                        raise MissingInputError(
                            f"{folder}: {relative} is missing; run the same salibi fetch command again to fetch it"
                        )
                    files.setdefault(modality, []).append(candidate)
            if files:
                groups.append(files)
    if not groups:
        raise InputError(f"{folder}: the fetch found no groups of scenes; widen --datetime or --max-days-apart")
    return groups
