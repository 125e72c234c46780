"""The spatial train/validation split, decided strip by strip while chips are cut.

The chip grid is cut into square blocks of ``block`` x ``block`` chips. Whole blocks go to
validation until ``val_fraction`` of the kept chips is reached; training chips that touch a
validation chip (8-neighbourhood, corners included) are dropped as a buffer, so no training
chip is adjacent to a validation chip. Chips of a strip are held in memory until the strip
after it is decided, which bounds the block size (:func:`split_block_size`).

:func:`sparse_spatial_split` makes the same split for chips scattered over a huge grid (web
tiles of an archive: a few thousand places among billions of tiles), from their positions alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from salibi.align.grid import ChipGrid

# Bytes of finished chips held back while the split of the next rows is decided.
HOLD_BYTES = 1024 * 2**20
# Largest split block, in chips a side.
MAX_BLOCK = 8

TRAIN, VAL, TEST = 0, 1, 2  # the labels stored in /split (align's own split makes no TEST chips)
#: Label of a training chip dropped as the buffer beside a validation chip (never stored).
BUFFER = -1


def split_block_size(rows: int, cols: int, val_fraction: float, bytes_per_row: float) -> int:
    """Chips a side of a split block: as large as possible (fewer buffer chips per validation
    chip) while leaving about two validation blocks or more, and small enough that the chip rows
    held back until their neighbours' split is known fit in memory."""
    block = 1
    for candidate in range(1, MAX_BLOCK + 1):
        if rows * cols * val_fraction / candidate**2 >= 2:
            block = candidate
    fits = max(1, int(HOLD_BYTES // max(bytes_per_row, 1.0)) - 1)
    return max(1, min(block, fits))


class ChipSplit(Protocol):
    """What :func:`salibi.align.strips.cut_in_strips` asks of a split: strips of ``block`` rows,
    ``decide`` told which chips of each strip were kept, then ``label`` of each kept chip (None: buffer)."""

    block: int
    kept: np.ndarray

    def decide(self, row0: int, kept_rows: np.ndarray) -> None: ...

    def label(self, row: int, col: int) -> int | None: ...


class SpatialSplit:
    """Decides, one strip of ``block`` chip rows at a time, which blocks go to validation.

    Blocks are visited in a seeded random order and taken while the validation share of the
    kept chips seen so far is below ``val_fraction`` (with a random threshold, so choices
    spread over the scene). A training chip is labelled only once the rows on both sides of
    it are decided: those touching a validation chip become buffer (dropped)."""

    def __init__(self, rows: int, cols: int, block: int, val_fraction: float, seed: int) -> None:
        self.block, self.val_fraction = block, val_fraction
        self.kept = np.zeros((rows, cols), bool)
        self.val = np.zeros((rows, cols), bool)
        self.rng = np.random.default_rng(seed)
        self.total_kept = 0
        self.total_val = 0

    def decide(self, row0: int, kept_rows: np.ndarray) -> None:
        """Record which chips of the strip starting at ``row0`` are kept, and pick its
        validation blocks."""
        row1 = row0 + kept_rows.shape[0]
        self.kept[row0:row1] = kept_rows
        self.total_kept += int(kept_rows.sum())
        if self.val_fraction <= 0:
            return
        target = self.val_fraction * self.total_kept
        n_blocks = -(-kept_rows.shape[1] // self.block)
        for b in self.rng.permutation(n_blocks):
            c0, c1 = b * self.block, (b + 1) * self.block
            count = int(kept_rows[:, c0:c1].sum())
            if count and self.total_val + count * self.rng.random() <= target:
                self.val[row0:row1, c0:c1] = kept_rows[:, c0:c1]
                self.total_val += count

    def label(self, row: int, col: int) -> int | None:
        """TRAIN, VAL, or None for a buffer chip; rows ``row - 1 .. row + 1`` must be decided."""
        if self.val[row, col]:
            return VAL
        if self.val[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2].any():
            return None
        return TRAIN


def sparse_spatial_split(col: np.ndarray, row: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """(labels, block) of chips at grid positions ``col``, ``row`` (distinct): TRAIN, VAL or BUFFER,
    by the rule of :class:`SpatialSplit` -- square blocks of ``block`` chips a side (the largest up
    to :data:`MAX_BLOCK` that leaves two validation blocks or more) taken whole for validation in a
    seeded random order while below ``val_fraction`` of the chips, and training chips that touch a
    validation chip (8-neighbourhood) as buffer."""
    labels = np.full(len(col), TRAIN, np.int64)
    if val_fraction <= 0 or not len(col):
        return labels, 1
    col, row = np.asarray(col, np.int64), np.asarray(row, np.int64)
    block = 1
    for candidate in range(1, MAX_BLOCK + 1):
        blocks = len(np.unique(np.stack([col // candidate, row // candidate], axis=1), axis=0))
        if blocks * val_fraction >= 2:
            block = candidate
    keys, block_of, counts = np.unique(
        np.stack([col // block, row // block], axis=1), axis=0, return_inverse=True, return_counts=True
    )
    rng = np.random.default_rng(seed)
    target, taken = val_fraction * len(col), 0
    chosen = np.zeros(len(keys), bool)
    for b in rng.permutation(len(keys)):
        if taken + counts[b] * rng.random() <= target:
            chosen[b] = True
            taken += int(counts[b])
    labels[chosen[block_of.reshape(-1)]] = VAL
    val = labels == VAL
    # A training chip beside a validation chip: look its 8 neighbours up among the validation chips.
    width = int(col.max()) + 3
    encoded = np.sort((row[val] + 1) * width + (col[val] + 1))
    near = np.zeros(len(col), bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            probe = (row + 1 + dr) * width + (col + 1 + dc)
            found = np.searchsorted(encoded, probe)
            near |= (found < len(encoded)) & (encoded[np.minimum(found, len(encoded) - 1)] == probe)
    labels[near & ~val] = BUFFER
    return labels, block


class GroundSplit:
    """The split of several chip grids over one ground (the groups of a ``salibi fetch`` folder,
    which may overlap: the same place at other times), decided from the ground alone so that the
    same ground has the same label in every grid.

    Square ground blocks of ``block`` chips a side, on one lattice anchored at the top-left corner
    of all grids, go whole to validation in a seeded random order while below ``val_fraction`` of
    all the grids' chips (the rule of :class:`SpatialSplit`, with the largest block up to
    :data:`MAX_BLOCK` that leaves two validation blocks or more); a chip belongs to the block of
    its centre. A training chip closer than one chip side to a validation block is buffer, so no
    training chip of any grid touches the ground of a validation chip of any other.
    """

    def __init__(self, grids: Sequence[ChipGrid], val_fraction: float, seed: int) -> None:
        self.chip = float(grids[0].chip_size)
        self.x0 = min(float(g.left) for g in grids)
        self.y0 = max(float(g.top) for g in grids)
        centres = np.concatenate([_centres(g) for g in grids])
        self.block, self.val_blocks = 1, np.zeros((0, 2), np.int64)
        if val_fraction <= 0 or not len(centres):
            return
        for candidate in range(1, MAX_BLOCK + 1):
            if len(np.unique(self._blocks(centres, candidate), axis=0)) * val_fraction >= 2:
                self.block = candidate
        keys, block_of, counts = np.unique(
            self._blocks(centres, self.block), axis=0, return_inverse=True, return_counts=True
        )
        rng = np.random.default_rng(seed)
        target, taken, chosen = val_fraction * len(centres), 0, []
        for b in rng.permutation(len(keys)):
            if taken + counts[b] * rng.random() <= target:
                chosen.append(b)
                taken += int(counts[b])
        self.val_blocks = keys[np.sort(np.array(chosen, np.int64))]

    def _blocks(self, centres: np.ndarray, block: int) -> np.ndarray:
        side = block * self.chip
        return np.floor(np.stack([centres[:, 0] - self.x0, self.y0 - centres[:, 1]], axis=1) / side).astype(np.int64)

    def labels(self, grid: ChipGrid) -> np.ndarray:
        """TRAIN, VAL or BUFFER of every chip of ``grid`` (row-major)."""
        labels = np.full(len(grid), TRAIN, np.int64)
        if not len(self.val_blocks):
            return labels
        centres = _centres(grid)
        val = {tuple(b) for b in self.val_blocks.tolist()}
        in_val = np.array([tuple(b) in val for b in self._blocks(centres, self.block).tolist()])
        labels[in_val] = VAL
        # Buffer: a chip grown by one chip side (less a hair: chips one side away do not touch)
        # overlaps a validation block.
        side, grow = self.block * self.chip, self.chip * (1.5 - 1e-9)
        x_lo = np.floor((centres[:, 0] - grow - self.x0) / side).astype(np.int64)
        x_hi = np.floor((centres[:, 0] + grow - self.x0) / side).astype(np.int64)
        y_lo = np.floor((self.y0 - centres[:, 1] - grow) / side).astype(np.int64)
        y_hi = np.floor((self.y0 - centres[:, 1] + grow) / side).astype(np.int64)
        for i in np.flatnonzero(~in_val):
            if any((bx, by) in val for bx in range(x_lo[i], x_hi[i] + 1) for by in range(y_lo[i], y_hi[i] + 1)):
                labels[i] = BUFFER
        return labels

    def for_grid(self, grid: ChipGrid, strip_rows: int) -> GridLabels:
        """The labels of ``grid`` in the protocol :func:`salibi.align.strips.cut_in_strips` uses."""
        return GridLabels(self.labels(grid).reshape(grid.rows, grid.cols), strip_rows)


class GridLabels:
    """Labels decided beforehand, handed out as :class:`SpatialSplit` does (``block`` rows a strip)."""

    def __init__(self, labels: np.ndarray, block: int) -> None:
        self.labels, self.block = labels, block
        self.kept = np.zeros(labels.shape, bool)

    def decide(self, row0: int, kept_rows: np.ndarray) -> None:
        self.kept[row0 : row0 + kept_rows.shape[0]] = kept_rows

    def label(self, row: int, col: int) -> int | None:
        found = int(self.labels[row, col])
        return None if found == BUFFER else found


def _centres(grid: ChipGrid) -> np.ndarray:
    bounds = grid.bounds()
    return np.stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2], axis=1)
