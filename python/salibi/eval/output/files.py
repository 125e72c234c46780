"""The files one ``salibi eval geobench`` writes beside its ``--output``: the results JSON (resumed
when it exists), torchgeo-bench's CSV, the bar chart and the data-efficiency chart.

Every file is written through :mod:`salibi.fileio`: under a temporary name beside the target,
flushed to disk, then renamed, so a file is whole or absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, InputError, MissingInputError, OutputExistsError
from salibi.eval.output.csv_export import write_csv
from salibi.eval.output.report import write_bar_chart, write_partition_chart
from salibi.eval.output.results import load_results, upgrade_document, write_results

__all__ = ["OutputPaths", "open_output", "write_outputs"]


class OutputPaths:
    """The files one evaluation writes beside its ``--output``."""

    def __init__(self, output: Path) -> None:
        self.results = output
        self.chart = output.with_suffix(".png")
        self.csv = output.with_suffix(".csv")
        self.curve = output.with_name(f"{output.stem}.partitions.png")


def open_output(output: str | os.PathLike[str], overwrite: bool = False) -> tuple[OutputPaths, dict[str, Any] | None]:
    """The output files, and the results already in ``output`` to resume (None for a fresh
    start): an existing file is resumed unless ``overwrite``; one that is not a results
    document of this version is an :class:`~salibi.errors.OutputExistsError`."""
    path = Path(output)
    if path.suffix.lower() != ".json":
        raise InputError(f"--output {path}: give a .json file name (the chart and CSV go beside it)")
    paths = OutputPaths(path)
    if overwrite or not path.exists():
        return paths, None
    try:
        previous = upgrade_document(load_results(path), str(path))
    except (DataFormatError, MissingInputError) as err:
        raise OutputExistsError(
            f"{path} exists and cannot be resumed ({err}); pass --overwrite to replace it, or choose another --output"
        ) from None
    return paths, previous


def write_outputs(results: dict[str, Any], paths: OutputPaths) -> list[Path]:
    """Write ``results`` and every file made from it; the files written (a chart with nothing to
    plot is not)."""
    written = [
        write_results(results, paths.results),
        write_csv(results, paths.csv),
        write_bar_chart(results, paths.chart),
        write_partition_chart(results, paths.curve),
    ]
    return [path for path in written if path is not None]
