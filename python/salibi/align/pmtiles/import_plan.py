"""Which chips an import makes: the chip zoom, the tiles of every archive for each chip, the splits.

- Zoom: ``--zoom``, else the deepest zoom that every given sar/lores archive reaches.
- Chips: one per tile id of that zoom present in every given archive (for hires: the tile or any
  of its children). The hires archive, when it holds tiles of the next zoom, gives each chip its
  four children stitched (2x the pixels); a chip missing a child is dropped and counted, never
  filled. Without tiles of the next zoom a hires chip is its same-zoom tile.
- Splits: ``--split-ids NAME=FILE.npy`` (the authors' ``split_{train,val,test}.npy``: arrays of
  tile ids) label the chips (train 0, validation 1, test 2); chips in no file are dropped and
  counted, a chip in two files is an error. The files are read with ``allow_pickle=False``.
  Without them salibi's spatial split is made after the chips are read (:mod:`.convert`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salibi.align.pmtiles.archive import Archive, TileIndex
from salibi.align.pmtiles.web_mercator import MAX_ZOOM, tileid_to_zxy, zoom_of, zxy_to_tileid
from salibi.align.split import TEST, TRAIN, VAL
from salibi.errors import DataFormatError, InputError, MissingInputError
from salibi.vocabulary import MODALITIES

#: Split names --split-ids takes, and their labels.
SPLIT_NAMES = {"train": TRAIN, "validation": VAL, "val": VAL, "test": TEST}
#: Entries a split file may hold.
MAX_SPLIT_IDS = 2**26

__all__ = ["ChipPlan", "SPLIT_NAMES", "choose_zoom", "plan_chips", "read_split_ids"]


@dataclass
class ChipPlan:
    """The chips to read, in tile-id order, and where each modality's tiles are."""

    zoom: int
    ids: np.ndarray  # (n,) uint64 tile ids of the chips
    x: np.ndarray  # (n,) int64
    y: np.ndarray  # (n,) int64
    offsets: dict[str, np.ndarray]  # modality -> (n, T) uint64 absolute offsets in its archive
    lengths: dict[str, np.ndarray]  # modality -> (n, T) uint64
    sides: dict[str, int]  # modality -> tiles per chip side (hires stitched: 2)
    labels: np.ndarray | None = None  # (n,) split labels from files, or None (spatial split later)
    tiles_at_zoom: dict[str, int] = field(default_factory=dict)
    dropped_missing_child: int = 0
    dropped_no_split: int = 0

    def take(self, keep: np.ndarray) -> None:
        """Keep only the chips where ``keep`` is True."""
        self.ids, self.x, self.y = self.ids[keep], self.x[keep], self.y[keep]
        for m in self.offsets:
            self.offsets[m], self.lengths[m] = self.offsets[m][keep], self.lengths[m][keep]
        if self.labels is not None:
            self.labels = self.labels[keep]


def choose_zoom(archives: Mapping[str, Archive], zoom: int | None) -> int:
    """The chip zoom: ``zoom`` when given, else the deepest one every sar/lores archive reaches."""
    if zoom is not None:
        if not 0 <= zoom < MAX_ZOOM:
            raise InputError(f"--zoom {zoom}: must be between 0 and {MAX_ZOOM - 1}")
        return zoom
    coarse = [archives[m] for m in ("sar", "lores") if m in archives]
    deepest = [a.entries().deepest_zoom() for a in coarse]
    for archive, z in zip(coarse, deepest):
        if z < 0:
            raise DataFormatError(f"{archive.name}: the archive holds no tiles")
    return min(deepest)


def plan_chips(archives: Mapping[str, Archive], zoom: int) -> ChipPlan:
    """The chips of ``zoom`` present in every archive (see the module docstring)."""
    indexes = {m: archives[m].index(zoom) for m in archives}
    children = archives["hires"].index(zoom + 1) if "hires" in archives else None
    stitched = children is not None and len(children.ids) > 0
    tiles_at_zoom = {m: len(index.ids) for m, index in indexes.items()}
    ids: np.ndarray | None = None
    for m in MODALITIES:
        if m not in indexes:
            continue
        present = indexes[m].ids
        if m == "hires" and stitched:
            assert children is not None
            z, cx, cy = tileid_to_zxy(children.ids)
            present = np.union1d(present, zxy_to_tileid(zoom, cx // 2, cy // 2))
        ids = present if ids is None else np.intersect1d(ids, present, assume_unique=True)
    assert ids is not None
    if not len(ids):
        counts = ", ".join(f"{m}: {n}" for m, n in tiles_at_zoom.items())
        raise InputError(
            f"no tile of zoom {zoom} is in every archive (tiles at zoom {zoom}: {counts}); check that the archives "
            "cover the same places, or choose another --zoom"
        )
    _, x, y = tileid_to_zxy(ids)
    plan = ChipPlan(zoom, ids, x, y, {}, {}, {}, tiles_at_zoom=tiles_at_zoom)
    keep = np.ones(len(ids), bool)
    for m, index in indexes.items():
        if m == "hires" and stitched:
            assert children is not None
            quads = [zxy_to_tileid(zoom + 1, 2 * x + dx, 2 * y + dy) for dy in (0, 1) for dx in (0, 1)]
            wanted = np.stack(quads, axis=1)  # (n, 4): top-left, top-right, bottom-left, bottom-right
            found, position = children.find(wanted.reshape(-1))
            found, position = found.reshape(-1, 4), position.reshape(-1, 4)
            plan.dropped_missing_child = int((~found.all(axis=1)).sum())
            keep &= found.all(axis=1)
            plan.offsets[m], plan.lengths[m], plan.sides[m] = (
                _located(children, position),
                _lengths(children, position),
                2,
            )
        else:
            found, position = index.find(ids)
            assert found.all()
            plan.offsets[m] = _located(index, position[:, None])
            plan.lengths[m], plan.sides[m] = _lengths(index, position[:, None]), 1
    if not keep.any():
        raise InputError(
            f"all {len(ids)} chips of zoom {zoom} miss some of their four hires tiles of zoom {zoom + 1}; the hires "
            "archive does not hold the children of these tiles: choose another --zoom"
        )
    plan.take(keep)
    return plan


def _located(index: TileIndex, position: np.ndarray) -> np.ndarray:
    return index.offsets[position].astype(np.uint64)


def _lengths(index: TileIndex, position: np.ndarray) -> np.ndarray:
    return index.lengths[position].astype(np.uint64)


def read_split_ids(files: Mapping[str, str | os.PathLike[str]]) -> dict[int, np.ndarray]:
    """label -> uint64 tile ids, from ``--split-ids NAME=FILE.npy`` (plain integer arrays only)."""
    out: dict[int, np.ndarray] = {}
    for name, path in files.items():
        label = SPLIT_NAMES.get(name)
        flag = f"--split-ids {name}={path}"
        if label is None:
            raise InputError(f"{flag}: unknown split {name!r}; use train, validation (val) or test")
        if label in out:
            raise InputError(f"{flag}: the {name} split is given twice")
        out[label] = _load_ids(Path(path), flag)
    return out


def _load_ids(path: Path, flag: str) -> np.ndarray:
    """The ids of a ``.npy`` file: its header read first (dtype, shape), the array only when it is
    a 1-D integer array -- never a pickle."""
    if not path.is_file():
        raise MissingInputError(f"{flag}: no such file")
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{flag}: not a NumPy .npy file ({err})") from None
    if dtype.hasobject:
        raise DataFormatError(
            f"{flag}: holds Python objects (a pickle), which salibi never loads; save the ids as a plain integer "
            "array (np.save(path, ids.astype(np.uint64)))"
        )
    if dtype.kind not in "iu" or len(shape) != 1:
        raise DataFormatError(
            f"{flag}: holds a {dtype} array of shape {shape}; expected a 1-D array of integer tile ids"
        )
    if shape[0] > MAX_SPLIT_IDS:
        raise DataFormatError(f"{flag}: {shape[0]} ids, more than salibi reads ({MAX_SPLIT_IDS})")
    try:
        ids = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{flag}: not a readable NumPy .npy file ({err})") from None
    if dtype.kind == "i" and (ids < 0).any():
        raise DataFormatError(f"{flag}: holds negative numbers, which are not tile ids")
    return np.unique(ids.astype(np.uint64))


def label_from_files(plan: ChipPlan, splits: dict[int, np.ndarray]) -> None:
    """Label ``plan``'s chips from the split files and drop (counting) the chips in none."""
    labels = np.full(len(plan.ids), -1, np.int64)
    names = {label: name for name, label in SPLIT_NAMES.items() if name != "val"}
    for label, ids in splits.items():
        member = np.isin(plan.ids, ids, assume_unique=True)
        both = member & (labels >= 0)
        if both.any():
            z, x, y = (int(v[0]) for v in tileid_to_zxy(plan.ids[both][:1]))
            raise InputError(
                f"--split-ids: tile {z}/{x}/{y} (id {int(plan.ids[both][0])}) is in both the "
                f"{names[int(labels[both][0])]} and the {names[label]} files; give each tile to one split"
            )
        labels[member] = label
    if not (labels >= 0).any():
        zooms = sorted({int(z) for ids in splits.values() for z in np.unique(zoom_of(ids[:100_000]))})
        raise InputError(
            f"--split-ids: none of the split files' ids is a chip of zoom {plan.zoom} (their ids are of zoom(s) "
            f"{', '.join(map(str, zooms)) or 'none'}); give ids of the chips' tiles, or --zoom to match them"
        )
    plan.labels = labels.astype(np.int64)
    plan.dropped_no_split = int((labels < 0).sum())
    plan.take(labels >= 0)
