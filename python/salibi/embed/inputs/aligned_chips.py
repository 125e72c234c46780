"""Aligned sets: every chip of a ``salibi align`` output embedded with all its modalities at once
through the cross-modal encoder (``modality`` = ``joint``), plus one row per modality through its
own encoder when ``per_modality`` is asked.

- Modalities: those the set and the checkpoint share (at least two, in fusion order). Each
  modality's bands are matched to the checkpoint's by name, as ``--modality`` does for a raster
  (:func:`salibi.embed.inputs.routing.route_named`); unnamed ones (``FILE:1``) are taken in order with the
  assumption recorded.
- Pixels: the set stores raw values (NaN where invalid); they are normalised with the
  checkpoint's statistics (the model's), invalid pixels become 0, and chips are zero-padded to
  whole patches.
- Rows: ``path`` ``SET#INDEX`` (the set's file name and the chip's row in it), ``source`` the set,
  ``bounds`` its ``/bounds``, ``crs`` its CRS, ``chip`` -1 (not a raster window), ``datetime`` its
  ``/datetime`` (unknown in sets written without it); ``gsd`` the chip's own (sets of web tiles
  store one per chip), of a joint row its coarsest modality's, ``bands`` ``sar: VV,VH; lores:
  B04,B03,B02``.
- The joint row is :meth:`~salibi.models.ScaleAlibiModel.encode_joint`'s tokens averaged per
  modality, then over modalities; a per-modality row is the mean of that encoder's tokens
  (:meth:`~salibi.models.ScaleAlibiModel.encode`), as for a tile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salibi.embed.inputs.pixels import normalise, pad_to_patches, to_windows
from salibi.embed.inputs.routing import BandRefusal, BandRoute, route_named
from salibi.embed.records import JOINT, NO_WINDOW, Chip, ReadSettings, set_row_id
from salibi.errors import InputError
from salibi.rasters import gdal_reason
from salibi.vocabulary import MODALITIES

__all__ = ["AlignedPlan", "AlignedWork", "aligned_work", "is_aligned_set", "plan_aligned", "read_aligned_work"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_aligned_set(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file (the input is then read as an aligned set)."""
    try:
        with path.open("rb") as f:
            return f.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


@dataclass(frozen=True)
class AlignedPlan:
    """One aligned set and how its chips are read (picklable)."""

    rel: str
    path: str
    modalities: tuple[str, ...]
    routes: dict[str, BandRoute]  # indexes: 1-based channels of the set's data (0: filled)
    gsd: dict[str, float]
    crs: str
    count: int

    def rows_of(self, per_modality: bool, joint: bool = True) -> tuple[str, ...]:
        """The ``modality`` values each chip gets rows for; without ``joint`` (the shared space, where
        fused tokens have no projection) one per modality only."""
        if not joint:
            return self.modalities
        return (JOINT, *self.modalities) if per_modality else (JOINT,)


@dataclass(frozen=True)
class AlignedWork:
    """Chips ``indexes`` (increasing) of a set, with the row modalities each still lacks."""

    plan: AlignedPlan
    indexes: tuple[int, ...]
    missing: tuple[tuple[str, ...], ...]


def plan_aligned(path: Path, rel: str, settings: ReadSettings) -> AlignedPlan:
    """The modalities, band routes and size of an aligned set; :class:`InputError` when it cannot be
    embedded with this checkpoint (fewer than two shared modalities, a missing band)."""
    from salibi.data.aligned import open_aligned

    with open_aligned(path) as f:
        present = [m for m in MODALITIES if m in f]
        shared = [m for m in present if m in settings.specs]
        if len(shared) < 2:
            raise InputError(
                f"{path}: the cross-modal encoder needs two modalities that the set ({', '.join(present)}) and the "
                f"checkpoint ({', '.join(settings.specs)}) share; embed the set's rasters as tiles instead"
            )
        routes, gsd = {}, {}
        for m in shared:
            names = [b.decode() if isinstance(b, bytes) else str(b) for b in f[m].attrs["bands"]]
            try:
                routes[m] = route_named(names, m, settings.specs[m], settings.fill_missing, f"{path} /{m}")
            except BandRefusal as err:
                raise InputError(str(err)) from None
            gsd[m] = float(f[m].attrs["gsd"])
        crs = f.attrs["crs"]
        return AlignedPlan(
            rel=rel,
            path=str(path),
            modalities=tuple(shared),
            routes=routes,
            gsd=gsd,
            crs=crs.decode() if isinstance(crs, bytes) else str(crs),
            count=int(f["bounds"].shape[0]),
        )


def aligned_work(
    plan: AlignedPlan, done: dict[str, set[str]], per_modality: bool, batch_size: int, joint: bool = True
) -> list[AlignedWork]:
    """Work items of up to ``batch_size`` chips that still lack a row (``done``: path -> modalities)."""
    wanted = plan.rows_of(per_modality, joint)
    todo: list[tuple[int, tuple[str, ...]]] = []
    for i in range(plan.count):
        have = done.get(set_row_id(plan.rel, i), set())
        missing = tuple(m for m in wanted if m not in have)
        if missing:
            todo.append((i, missing))
    return [
        AlignedWork(plan, tuple(i for i, _ in todo[k : k + batch_size]), tuple(m for _, m in todo[k : k + batch_size]))
        for k in range(0, len(todo), batch_size)
    ]


# Sets open in this thread (a reader thread, a DataLoader worker): a file is read by one thread at a time.
_THREAD = threading.local()


def _open(path: str) -> Any:
    import h5py

    if not hasattr(_THREAD, "open"):
        _THREAD.open = OrderedDict()
    opened: OrderedDict[str, Any] = _THREAD.open
    if path not in opened:
        opened[path] = h5py.File(path, "r")
        while len(opened) > 4:
            opened.popitem(last=False)[1].close()
    return opened[path]


def read_aligned_work(work: AlignedWork, settings: ReadSettings) -> list[Chip]:
    """The rows-to-be of ``work``: a joint chip per index (when it lacks one) and per-modality chips."""
    from salibi.data.aligned import chip_times
    from salibi.data.chips import ChipReader

    plan = work.plan
    try:
        f = _open(plan.path)
        rows = list(work.indexes)
        bounds = f["bounds"][rows]
        readers = {m: ChipReader(f[m], f"{plan.path}: /{m}") for m in plan.modalities}
        pixels = {m: _channels(readers[m].read_rows(rows), plan.routes[m]) for m in plan.modalities}
        chip_gsd = {m: readers[m].gsd(rows) for m in plan.modalities}
        times = chip_times(f, rows, plan.path)
    except Exception as err:
        reason = f"cannot read: {gdal_reason(err)}; the file may be truncated or corrupt"
        return [Chip(path=set_row_id(plan.rel, i), source=plan.rel, failure=reason) for i in work.indexes]
    chips = []
    for k, (index, missing) in enumerate(zip(work.indexes, work.missing)):
        images, per_image = {}, False
        for m in plan.modalities:
            values = pixels[m][k]
            invalid = ~np.isfinite(values)
            images[m], normalised_per_image = normalise(values, invalid, settings.specs[m], plan.routes[m].filled)
            per_image = per_image or normalised_per_image
        common = dict(
            path=set_row_id(plan.rel, index),
            source=plan.rel,
            bounds=tuple(float(v) for v in bounds[k]),
            crs=plan.crs,
            window=NO_WINDOW,
            per_tile_normalised=per_image,
            datetime=times[k],
        )
        gsd = {m: float(chip_gsd[m][k]) for m in plan.modalities}
        for modality in missing:
            chips.append(
                _joint(plan, images, gsd, settings, common)
                if modality == JOINT
                else _single(plan, modality, images, gsd, settings, common)
            )
    return chips


def _channels(data: np.ndarray, route: BandRoute) -> np.ndarray:
    """(n, C_set, H, W) -> (n, C_encoder, H, W) float32 in the encoder's band order (filled bands 0)."""
    out = np.zeros((data.shape[0], len(route.indexes), *data.shape[2:]), np.float32)
    for k, i in enumerate(route.indexes):
        if i > 0:
            out[:, k] = data[:, i - 1]
    return out


def _joint(
    plan: AlignedPlan,
    images: dict[str, np.ndarray],
    gsd: dict[str, float],
    settings: ReadSettings,
    common: dict[str, Any],
) -> Chip:
    padded = {m: pad_to_patches(x, settings.patch_size) for m, x in images.items()}
    return Chip(
        modality=JOINT,
        bands="; ".join(f"{m}: {plan.routes[m].label}" for m in plan.modalities),
        gsd=max(gsd.values()),
        images={m: p[0] for m, p in padded.items()},
        image_masks={m: p[1] for m, p in padded.items()},
        gsds=dict(gsd),
        assumption=_assumptions(plan.routes[m] for m in plan.modalities),
        **common,
    )


def _single(
    plan: AlignedPlan,
    modality: str,
    images: dict[str, np.ndarray],
    gsd: dict[str, float],
    settings: ReadSettings,
    common: dict[str, Any],
) -> Chip:
    windows, masks = to_windows(images[modality], settings.patch_size, settings.window_patches)
    route = plan.routes[modality]
    return Chip(
        modality=modality,
        bands=route.label,
        gsd=gsd[modality],
        windows=windows,
        token_masks=masks,
        assumption=route.assumption,
        same_ground=True,
        **common,
    )


def _assumptions(routes: Iterable[BandRoute]) -> str | None:
    said = [r.assumption for r in routes if r.assumption]
    return "; ".join(said) if said else None
