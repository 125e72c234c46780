"""``salibi explore``: an embeddings output as one page (see :mod:`salibi.explore`)."""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.output.embeddings import Embeddings, read_embeddings
from salibi.errors import InputError, OutputExistsError
from salibi.explore.footprints import footprints, mercator
from salibi.explore.neighbours import SHARED, embedding_space, neighbours, search_command
from salibi.explore.page import DEFAULT_ATTRIBUTION, DEFAULT_BASEMAP, PAGE_FORMAT, packed, render_page
from salibi.fileio import write_atomic
from salibi.vocabulary import NEIGHBOURS_K

__all__ = ["ExploreSummary", "explore", "page_payload"]


#: Version of the page's data document (the page's script reads this one).
PAYLOAD_VERSION = 1


@dataclass
class ExploreSummary:
    output: Path
    rows: int  # rows in the embeddings file
    drawn: int  # chips with a footprint on the map
    k: int
    space: str
    space_stated: bool
    bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        space = self.space if self.space_stated else f"{self.space} (the file states none)"
        lines = [
            f"wrote {self.output}: {self.drawn} of {self.rows} rows drawn, {self.k} nearest neighbours each, "
            f"{space} space, {self.bytes / 2**20:.1f} MiB; open it in a browser (no network needed)"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    names, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return names.tolist(), codes.astype(np.uint32)


def page_payload(
    table: Embeddings, name: str, k: int = NEIGHBOURS_K, basemap: str | None = DEFAULT_BASEMAP
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's data document for ``table`` (the output named ``name``) and what it found: drawn
    rows, space, timings."""
    from salibi.embed.maps import principal_colours

    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    space, stated = embedding_space(table.attrs)
    place = footprints(table.bounds, table.crs)
    world = mercator(place.corners)  # (N, 4, 2), NaN where not drawn
    origin = world[place.drawn].reshape(-1, 2).mean(axis=0) if place.drawn.any() else np.array([0.5, 0.5])
    seconds["footprints"] = time.perf_counter() - clock

    clock = time.perf_counter()
    colours, explained = principal_colours(table.embedding)
    seconds["colours"] = time.perf_counter() - clock

    clock = time.perf_counter()
    near = neighbours(table, k, space)
    seconds["neighbours"] = time.perf_counter() - clock

    modality_names, modality_codes = _codes(table.modality)
    source_names, source_codes = _codes(table.source)
    low, median, high = near.reference
    payload = {
        "format": PAGE_FORMAT,
        "version": PAYLOAD_VERSION,
        "name": name,
        "rows": len(table),
        "drawn": int(place.drawn.sum()),
        "dims": int(table.embedding.shape[1]),
        "k": k,
        "space": space,
        "spaceStated": stated,
        "command": search_command(shlex.quote(name), k, space, len(modality_names) > 1),
        "origin": [float(v) for v in origin],
        "bounds": list(place.lonlat_bounds()),
        "corners": packed(np.where(np.isfinite(world), world - origin, np.nan).reshape(-1), "f4"),
        "colour": packed(colours.reshape(-1), "u1"),
        "explained": [float(v) for v in explained],
        "modality": {"names": modality_names, "codes": packed(modality_codes, "u4")},
        "source": {"names": source_names, "codes": packed(source_codes, "u4")},
        "path": [str(p) for p in table.path],
        "neighbours": packed(near.rows.reshape(-1), "i4"),
        "similarity": packed(near.similarity.reshape(-1), "f4"),
        "reference": {"low": low, "median": median, "high": high, "pairs": near.reference_pairs},
        "basemap": None
        if not basemap or basemap == "none"
        else {"tiles": basemap, "attribution": DEFAULT_ATTRIBUTION if basemap == DEFAULT_BASEMAP else ""},
    }
    found = {"drawn": int(place.drawn.sum()), "space": space, "stated": stated, "seconds": seconds}
    return payload, found


def _check_output(source: Path, page: Path) -> None:
    if page.resolve() == source.resolve():
        raise InputError(f"-o {page}: is the embeddings file itself; give a page name such as {page.stem}.html")
    if page.is_dir():
        raise InputError(f"-o {page}: is a folder; give a file name such as {page / 'explore.html'}")
    if page.exists():
        with page.open("rb") as f:
            head = f.read(4096)
        if PAGE_FORMAT.encode() not in head:
            raise OutputExistsError(
                f"-o {page}: exists and is not a salibi explore page; choose another -o (or delete it)"
            )


def explore(
    output: str | os.PathLike[str],
    page: str | os.PathLike[str] | None = None,
    k: int = NEIGHBOURS_K,
    basemap: str | None = DEFAULT_BASEMAP,
) -> ExploreSummary:
    """Write the explorer page of the embeddings file ``output`` (``.parquet`` or ``.h5`` from
    ``salibi embed``) to ``page`` (default: beside it, named ``<stem>.html``)."""
    if k < 1:
        raise InputError(f"--k {k}: ask for at least one neighbour")
    if basemap and basemap != "none" and not all(f"{{{key}}}" in basemap for key in "zxy"):
        raise InputError(f"--basemap {basemap}: a tile URL with {{z}}, {{x}} and {{y}} in it, or none")
    source = Path(output)
    target = Path(page) if page is not None else source.with_suffix(".html")
    _check_output(source, target)
    clock = time.perf_counter()
    table = read_embeddings(source)
    if not len(table):
        raise InputError(f"{source}: holds no rows to draw; embed something first (salibi embed)")
    read_seconds = time.perf_counter() - clock
    payload, found = page_payload(table, source.name, k=k, basemap=basemap)
    clock = time.perf_counter()
    text = render_page(payload, f"{source.name} - salibi explore")
    write_atomic(target, text)
    seconds = {"read": read_seconds, **found["seconds"], "page": time.perf_counter() - clock}
    notes = []
    if found["drawn"] < len(table):
        notes.append(f"{len(table) - found['drawn']} rows have no georeference: listed as neighbours, not drawn")
    if not found["stated"]:
        notes.append(
            "the file does not say which embedding space it holds: taken as encoder space (neighbours within "
            "each modality); salibi embed --space shared writes rows comparable across modalities"
        )
    elif found["space"] == SHARED:
        notes.append("shared space: a chip's neighbours may be of any modality (cross-modal)")
    return ExploreSummary(
        output=target,
        rows=len(table),
        drawn=found["drawn"],
        k=k,
        space=found["space"],
        space_stated=found["stated"],
        bytes=len(text.encode("utf-8")),
        seconds=seconds,
        notes=notes,
    )
