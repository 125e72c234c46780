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

import numpy as np

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
