"""``salibi fetch`` from start to end: check the query, plan (or read the plan back), transfer, record.

1. The query is checked before anything is read: the box, the dates, the catalog, the
   collections and bands per modality (two modalities at least), the tiles and the shard.
2. This shard's plan is read back from ``DIR/manifests/`` when a run of the same query made one
   (resume: no search, same scenes); else each of its areas is searched and covered
   (:mod:`.planning.area_plan`) and the plan is written before any file is fetched.
3. The files missing are fetched, ``jobs`` at a time (:mod:`.reading.transfer`); progress shows MB, MB/s
   and scenes. On the first failure no new file is started, the ones under way finish, and the
   error is raised: what was fetched is kept for the next run.
4. The part is written complete, with bytes, and the folder's parts are merged into
   ``DIR/manifest.json`` (:mod:`.manifest`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salibi.bands import DEFAULT_BANDS
from salibi.errors import InputError
from salibi.fetch import manifest
from salibi.fetch.planning.areas import check_datetime, parse_bbox, parse_shard, plan_areas, shard_areas
from salibi.fetch.planning.assets import wanted_identities
from salibi.fetch.reading.transfer import FileJob, FileResult, transfer
from salibi.fetch.stac.catalogs import Catalog, resolve_catalog
from salibi.progress import RateProgress
from salibi.vocabulary import MODALITIES

#: Order in which modalities anchor the groups (the first one asked for does).
ANCHOR_ORDER = ("lores", "hires", "sar")


@dataclass
class FetchSummary:
    """What one ``salibi fetch`` run did."""

    folder: Path
    areas: int
    groups: int
    files: int
    fetched: int  # files written by this run
    present: int  # files that were there already
    transferred: int | None  # bytes downloaded by this run (None: not counted)
    written: int  # bytes of the files written by this run
    seconds: float
    covered: list[float]
    unpaired: int
    planned: bool  # this run searched the catalog (False: it followed the recorded plan)
    complete: bool  # every shard of the folder is done

    def format(self) -> str:
        mb = (self.transferred if self.transferred is not None else self.written) / 1e6
        rate = mb / self.seconds if self.seconds > 0 else 0.0
        what = "downloaded" if self.transferred is not None else "written"
        cover = ", ".join(f"{c:.1%}" for c in self.covered[:6]) + (", ..." if len(self.covered) > 6 else "")
        lines = [
            f"fetched {self.fetched} of {self.files} files ({self.present} there already) of {self.groups} group(s) "
            f"in {self.areas} area(s) into {self.folder}: {mb:.1f} MB {what} in {self.seconds:.1f} s ({rate:.1f} MB/s)",
            f"  area covered: {cover or 'nothing'}; {self.unpaired} scene(s) without a partner within --max-days-apart; "
            f"plan {'searched now' if self.planned else 'read back from manifests/'}",
        ]
        if self.complete:
            lines.append(f"  {self.folder / manifest.MANIFEST} is complete: salibi align {self.folder} -o set.h5")
        else:
            lines.append(f"  {self.folder / manifest.MANIFEST}: other shards are not done yet")
        return "\n".join(lines)


def build_query(
    catalog: Catalog,
    bbox: str | None,
    datetime: str,
    collections: Mapping[str, str | None],
    bands: Mapping[str, Sequence[str]],
    max_cloud: float | None,
    max_days_apart: float,
    tiles: Sequence[str],
    allow_s3: bool,
) -> dict[str, Any]:
    """The query as the manifest records it (everything that decides what is fetched)."""
    chosen: dict[str, str] = {}
    for modality in ANCHOR_ORDER:
        value = collections.get(modality)
        value = catalog.collections.get(modality) if value is None else value
        if value and value.lower() != "none":
            chosen[modality] = value
    if len(chosen) < 2:
        defaults = "" if catalog.collections else f" ({catalog.name} has no default collections)"
        raise InputError(
            f"need collections for two modalities at least (--lores, --sar, --hires), got "
            f"{', '.join(f'--{m} {c}' for m, c in chosen.items()) or 'none'}{defaults}; add another"
        )
    for modality in bands:
        if modality not in MODALITIES:
            raise InputError(f"--bands {modality}=...: unknown modality; use one of {', '.join(MODALITIES)}")
        if modality not in chosen:
            raise InputError(f"--bands {modality}=... is given but no --{modality} collection is fetched")
        if not [b for b in bands[modality] if b.strip()]:
            raise InputError(f"--bands {modality}=: give at least one band name")
        wanted_identities(modality, [b.strip() for b in bands[modality] if b.strip()])  # names salibi knows
    if max_cloud is not None and not (0 <= max_cloud <= 100):
        raise InputError(f"--max-cloud {max_cloud:g}: a percentage from 0 to 100")
    if not (math.isfinite(max_days_apart) and max_days_apart >= 0):
        raise InputError(f"--max-days-apart {max_days_apart:g}: a number of days >= 0")
    box = parse_bbox(bbox) if bbox is not None else None
    plan_areas(box, list(tiles))  # checks the tiles
    return {
        "stac": catalog.name,
        "url": catalog.url,
        "bbox": list(box) if box else None,
        "datetime": check_datetime(datetime),
        "collections": chosen,
        "bands": {m: [b.strip() for b in bands.get(m, DEFAULT_BANDS[m]) if b.strip()] for m in chosen},
        "max_cloud": max_cloud,
        "max_days_apart": max_days_apart,
        "tiles": sorted(tiles) or None,
        "allow_s3": allow_s3,
    }


def check_folder(folder: Path) -> None:
    """Refuse an output folder that cannot be written, before anything is searched (it is made
    only once there is a plan: a fetch refused early leaves nothing behind)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder}: is a file; give a folder for the fetched scenes")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"-o {folder}: {existing} is not a writable folder; choose another -o")


def fetch(
    *,
    output: str | os.PathLike[str],
    datetime: str,
    bbox: str | None = None,
    stac: str = "earth-search",
    collections: Mapping[str, str | None] | None = None,
    bands: Mapping[str, Sequence[str]] | None = None,
    max_cloud: float | None = 10.0,
    max_days_apart: float = 12.0,
    tiles: Sequence[str] = (),
    shard: str | None = None,
    jobs: int = 4,
    tries: int = 5,
    backoff_s: float = 1.0,
    allow_s3: bool = False,
    progress: bool = True,
) -> FetchSummary:
    """Fetch the scenes of an area and dates into ``output`` (see the module docstring)."""
    started = time.perf_counter()
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: at least 1")
    if tries < 1:
        raise InputError(f"--tries {tries}: at least 1")
    catalog = resolve_catalog(stac)
    query = build_query(
        catalog, bbox, datetime, collections or {}, bands or {}, max_cloud, max_days_apart, tiles, allow_s3
    )
    which = parse_shard(shard)
    box = tuple(query["bbox"]) if query["bbox"] else None
    areas = shard_areas(plan_areas(box, list(tiles)), which)
    folder = Path(output)
    check_folder(folder)

    document = manifest.read_part(folder, which, query) if folder.is_dir() else None
    planned = document is None
    if document is None:
        document = _plan(catalog, query, areas, which, tries)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(
                f"-o {folder}: cannot create the folder ({err.strerror or err}); choose another -o"
            ) from None
        manifest.write_part(folder, document)
    jobs_list = _jobs(folder, document, allow_s3)
    results = _transfer_all(jobs_list, catalog, jobs, tries, backoff_s, allow_s3, progress, document, folder)
    _record(document, results)
    document["complete"] = True
    manifest.write_part(folder, document)
    merged = manifest.merge(folder)

    done = [r for r in results.values() if not r.skipped]
    counted = [r.transferred for r in done]
    return FetchSummary(
        folder=folder,
        areas=len(document["areas"]),
        groups=sum(len(a["groups"]) for a in document["areas"]),
        files=len(jobs_list),
        fetched=len(done),
        present=len(results) - len(done),
        transferred=None if any(c is None for c in counted) else sum(c or 0 for c in counted),
        written=sum(r.bytes for r in done),
        seconds=time.perf_counter() - started,
        covered=[float(a["covered_share"]) for a in document["areas"]],
        unpaired=sum(len(a.get("unpaired") or []) for a in document["areas"]),
        planned=planned,
        complete=bool(merged["complete"]),
    )


def _plan(
    catalog: Catalog, query: dict[str, Any], areas: list[Any], which: tuple[int, int], tries: int
) -> dict[str, Any]:
    from salibi.fetch.planning.area_plan import collection_record, plan_area
    from salibi.fetch.stac.catalog_search import open_catalog

    document = manifest.new_document(query, which)
    if not areas:
        return document
    stac = open_catalog(catalog, tries)
    for collection in sorted(set(query["collections"].values())):
        document["collections"][collection] = collection_record(stac.collection(collection))
    document["areas"] = [plan_area(stac, area, query) for area in areas]
    return document


def _jobs(folder: Path, document: dict[str, Any], allow_s3: bool) -> list[FileJob]:
    from salibi.fetch.planning.area_plan import file_jobs

    return file_jobs(folder, document["areas"], allow_s3)


def _transfer_all(
    jobs: list[FileJob],
    catalog: Catalog,
    workers: int,
    tries: int,
    backoff_s: float,
    allow_s3: bool,
    progress: bool,
    document: dict[str, Any],
    folder: Path,
) -> dict[str, FileResult]:
    """Every job's result; on the first failure the part is written as it stands and it is raised."""
    results: dict[str, FileResult] = {}
    scenes = {(j.collection, j.item) for j in jobs}
    done_scenes: set[tuple[str, str]] = set()
    moved = 0.0
    started = time.perf_counter()
    with (
        RateProgress("fetching", "files", len(jobs), progress, plain_every=10.0, transient=True) as bar,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="salibi-fetch") as pool,
    ):
        futures = {pool.submit(transfer, job, catalog, tries, allow_s3, backoff_s): job for job in jobs}
        pending = set(futures)
        failure: BaseException | None = None
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = futures[future]
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                result = future.result()
                results[job.relative] = result
                moved += (result.transferred if result.transferred is not None else result.bytes) / 1e6
                done_scenes.add((job.collection, job.item))
                if bar.bar is None:  # no terminal: a plain line now and then
                    bar.advance(1)
                    continue
                rate = moved / max(time.perf_counter() - started, 1e-9)
                bar.advance(1, status=f"{moved:.1f} MB, {rate:.1f} MB/s, {len(done_scenes)}/{len(scenes)} scenes")
            if failure is not None:
                for future in pending:
                    future.cancel()
                wait(pending)
                _record(document, results)
                manifest.write_part(folder, document)
                raise failure
    return results


def _record(document: dict[str, Any], results: dict[str, FileResult]) -> None:
    """Sizes and bytes downloaded of the files done, into the plan's entries."""
    for area in document["areas"]:
        for group in area["groups"]:
            for entries in group["files"].values():
                for entry in entries:
                    result = results.get(entry["path"])
                    if result is None:
                        continue
                    entry["bytes"] = result.bytes
                    if not result.skipped:
                        entry["transferred"] = result.transferred
                        entry["asset_bytes"] = result.asset_bytes
