"""Cutting the chip grid strip by strip, within a memory budget.

The grid is processed in strips of ``block`` chip rows (the split block size, so each strip
is one row of split blocks). A strip is read in column batches whose source pixels stay under
:data:`BATCH_BYTES`; each batch is resampled for every modality (:mod:`salibi.align.reading`)
and chips with more than ``max_nodata`` invalid pixels in any modality are dropped. Once a
strip is cut, the split decides its validation blocks; the kept chips wait in
:class:`HeldRows` until the row below them is decided too (a training chip next to a
validation chip is buffer), then go to the writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.align.inputs import Modality
from salibi.align.reading import READ_MARGIN_PX, resample_onto_chips
from salibi.align.split import ChipSplit

if TYPE_CHECKING:  # pragma: no cover
    from salibi.align.write import ChipWriter
    from salibi.progress import RateProgress

# Bytes of source pixels read at once; wide strips are read in column batches under this.
BATCH_BYTES = 256 * 2**20


def chip_row_bytes(modalities: list[Modality], cols: int) -> int:
    """Bytes of the float32 chips of one full row of the grid."""
    return cols * sum(len(m.band_names) * m.size_px**2 * 4 for m in modalities)


def column_batches(modalities: list[Modality], tile: float, block_rows: int, cols: int) -> list[tuple[int, int]]:
    """Column ranges of a strip whose source reads stay under :data:`BATCH_BYTES`."""
    per_column = 0.0
    for mod in modalities:
        per_column += 2 * block_rows * len(mod.band_names) * mod.size_px**2 * 4  # core output (+ reorder)
        for inp in mod.inputs:
            px = inp.native_gsd if inp.windowed else mod.gsd
            per_pixel = 12 if inp.is_complex else 4  # complex64 read + float32 intensity
            per_column += (block_rows * tile / px + 2 * READ_MARGIN_PX) * (tile / px) * len(inp.indexes) * per_pixel
    step = max(1, int(BATCH_BYTES // max(per_column, 1.0)))
    return [(c, min(cols, c + step)) for c in range(0, cols, step)]


class ChipCutter:
    """Cuts the chips of every modality over rectangles of the grid, dropping those with too
    many invalid pixels and counting them per modality (for the error when none is left)."""

    def __init__(self, modalities: list[Modality], grid: Any, max_nodata: float) -> None:
        self.modalities, self.grid, self.max_nodata = modalities, grid, max_nodata
        self.chip_bounds: np.ndarray = grid.bounds()  # (rows * cols, 4), row-major
        self.over_limit = {m.name: 0 for m in modalities}

    def cut(self, rows: range, cols: range) -> list[tuple[int, int, dict[str, np.ndarray]]]:
        """The kept chips of the cells ``rows`` x ``cols``: ``(row, col, {modality: chip})``."""
        grid, tile = self.grid, self.grid.tile_size
        cells = [(r, c) for r in rows for c in cols]
        flat = np.array([r * grid.cols + c for r, c in cells])
        origins = np.ascontiguousarray(self.chip_bounds[flat][:, [0, 3]])  # top-left corners
        extent = (
            grid.left + cols.start * tile,
            grid.top - rows.stop * tile,
            grid.left + cols.stop * tile,
            grid.top - rows.start * tile,
        )
        too_invalid = np.zeros(len(cells), bool)
        chips: dict[str, np.ndarray] = {}
        for mod in self.modalities:
            chips[mod.name], invalid = resample_onto_chips(mod, extent, origins)
            over = invalid > self.max_nodata
            self.over_limit[mod.name] += int(over.sum())
            too_invalid |= over
        return [
            (r, c, {m: stack[k] for m, stack in chips.items()}) for k, (r, c) in enumerate(cells) if not too_invalid[k]
        ]


class HeldRows:
    """Kept chips of rows whose labels are not final yet, written once they are."""

    def __init__(self, split: ChipSplit, writer: ChipWriter, chip_bounds: np.ndarray, cols: int) -> None:
        self.split, self.writer, self.chip_bounds, self.cols = split, writer, chip_bounds, cols
        self.chips: dict[int, list[tuple[int, dict[str, np.ndarray]]]] = {}  # row -> [(col, chips)]

    def hold(self, row: int, col: int, chips: dict[str, np.ndarray]) -> None:
        self.chips.setdefault(row, []).append((col, chips))

    def write_rows_above(self, row: int) -> None:
        """Label and write every held row before ``row`` (buffer chips are dropped)."""
        for r in sorted(self.chips):
            if r < row:
                self._write_row(r)

    def _write_row(self, row: int) -> None:
        labelled = [(c, chips, self.split.label(row, c)) for c, chips in self.chips.pop(row)]
        kept = [(c, chips, label) for c, chips, label in labelled if label is not None]
        if not kept:
            return
        names = kept[0][1].keys()
        self.writer.append(
            self.chip_bounds[[row * self.cols + c for c, _, _ in kept]],
            np.array([label for _, _, label in kept], np.uint8),
            {m: np.stack([chips[m] for _, chips, _ in kept]) for m in names},
        )


def cut_in_strips(cutter: ChipCutter, split: ChipSplit, writer: ChipWriter, progress: RateProgress) -> None:
    """Cut the whole grid, split it and hand every labelled chip to ``writer``
    (``progress.advance`` counts the cells done)."""
    grid, block = cutter.grid, split.block
    batches = column_batches(cutter.modalities, grid.tile_size, block, grid.cols)
    held = HeldRows(split, writer, cutter.chip_bounds, grid.cols)
    for row0 in range(0, grid.rows, block):
        row1 = min(grid.rows, row0 + block)
        kept = np.zeros((row1 - row0, grid.cols), bool)
        for col0, col1 in batches:
            for r, c, chips in cutter.cut(range(row0, row1), range(col0, col1)):
                kept[r - row0, c] = True
                held.hold(r, c, chips)
            progress.advance((row1 - row0) * (col1 - col0))
        split.decide(row0, kept)
        # A row's labels need the row below decided: the strip's last row waits for the next strip.
        held.write_rows_above(row1 - 1)
    held.write_rows_above(grid.rows)
