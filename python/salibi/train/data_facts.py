"""What the parent process knows about the training files before any rank starts.

:func:`read_data_facts` reads every aligned set's header (no pixels): its training chips,
and per modality the chip size, GSD, band names and statistics. The plan uses these facts to
refuse what cannot train (a file given twice, statistics that are not numbers, chips that are
not a whole number of patches), to pick the model's reference length (a patch of the coarsest
GSD of *all* files), to estimate memory (:mod:`salibi.train.memory`), to tell whether a
resumed run is given the data it was trained on (:meth:`DataFacts.fingerprint`), and to write
the statistics of all files, pooled, into every checkpoint (:meth:`DataFacts.pooled_info`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salibi.errors import DataFormatError, InputError
from salibi.vocabulary import MODALITIES

_RECREATE = "re-create it with `salibi align`"


@dataclass(frozen=True)
class ModalityFacts:
    """One modality of one file: channels, chip size (H, W) in px, GSD (the median of the chips' when
    each has its own: ``gsd_per_chip``), band names, statistics."""

    channels: int
    chip: tuple[int, int]
    gsd: float
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    gsd_per_chip: bool = False


@dataclass(frozen=True)
class FileFacts:
    """One aligned set: its path as given, its training chips and its modalities."""

    path: str
    train_chips: int
    modalities: dict[str, ModalityFacts]


@dataclass(frozen=True)
class DataFacts:
    """The facts of every training file, in the order given; ``modalities``: those every file has."""

    files: tuple[FileFacts, ...]
    modalities: tuple[str, ...]

    def coarsest_gsd(self) -> float:
        """The coarsest GSD of any modality in any file (m/px)."""
        return max(f.modalities[m].gsd for f in self.files for m in self.modalities)

    def chips(self, modality: str) -> list[tuple[int, int]]:
        """The distinct chip sizes (H, W) of ``modality`` over the files."""
        return sorted({f.modalities[modality].chip for f in self.files})

    def fingerprint(self) -> list[dict[str, Any]]:
        """What makes two lists of files the same training data, as JSON: per file (in order)
        its training chips and, per modality, channels, chip size, GSD, bands and statistics."""
        return [
            {
                "train_chips": f.train_chips,
                "modalities": {
                    m: {
                        "channels": v.channels,
                        "chip": list(v.chip),
                        "gsd": v.gsd,
                        "bands": list(v.bands),
                        "mean": list(v.mean),
                        "std": list(v.std),
                    }
                    for m, v in f.modalities.items()
                    if m in self.modalities
                },
            }
            for f in self.files
        ]

    def pooled_info(self) -> dict[str, dict[str, Any]]:
        """Per modality, what a checkpoint records: channels and bands, the GSD when every file has
        the same one (else None: ``gsd_per_file`` says), and mean and standard deviation over the
        training pixels of *all* files (each file's statistics weighted by its pixel count)."""
        info: dict[str, dict[str, Any]] = {}
        for m in self.modalities:
            parts = [
                (f.train_chips * f.modalities[m].chip[0] * f.modalities[m].chip[1], f.modalities[m]) for f in self.files
            ]
            total = sum(n for n, _ in parts) or 1
            channels = parts[0][1].channels
            mean = [sum(n * v.mean[c] for n, v in parts) / total for c in range(channels)]
            var = [
                sum(n * (v.std[c] ** 2 + (v.mean[c] - mean[c]) ** 2) for n, v in parts) / total for c in range(channels)
            ]
            gsds = sorted({v.gsd for _, v in parts})
            info[m] = {
                "channels": channels,
                "bands": list(parts[0][1].bands),
                "gsd": gsds[0] if len(gsds) == 1 else None,
                "gsd_per_file": [v.gsd for _, v in parts],
                "mean": mean,
                "std": [math.sqrt(v) for v in var],
            }
        return info


def read_data_facts(paths: Sequence[str | os.PathLike[str]]) -> DataFacts:
    """The facts of ``paths`` (aligned sets); DataFormatError or MissingInputError (naming the
    file and the fix) for a file that is not a complete aligned set, InputError for a file given
    twice or files whose modalities or bands do not go together."""
    from salibi.data import open_aligned

    if not paths:
        raise InputError("give at least one aligned HDF5 file (made by `salibi align`)")
    seen: dict[str, str] = {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            raise InputError(
                f"{p}: given twice ({seen[key]} is the same file); each file is read once per epoch: drop the repeat"
            )
        seen[key] = str(p)
    files = []
    for p in paths:
        with open_aligned(p) as f:
            train = int((f["split"][:] == 0).sum())
            modalities = {m: _modality_facts(Path(p), f, m) for m in MODALITIES if m in f}
        files.append(FileFacts(str(p), train, modalities))
    common = tuple(m for m in MODALITIES if all(m in f.modalities for f in files))
    first = files[0]
    for f in files[1:]:
        for m in common:
            if f.modalities[m].channels != first.modalities[m].channels:
                raise InputError(
                    f"{f.path}: {m} has {f.modalities[m].channels} bands but {first.path} has "
                    f"{first.modalities[m].channels}; align every file with the same bands"
                )
    return DataFacts(tuple(files), common)


def _modality_facts(path: Path, f: Any, m: str) -> ModalityFacts:
    from salibi.data.chips import chip_shape

    group = f[m]
    shape = chip_shape(group, f"{path}: /{m}")
    mean = [float(v) for v in group["mean"][:]]
    std = [float(v) for v in group["std"][:]]
    gsd = float(group.attrs["gsd"])
    if not all(math.isfinite(v) for v in mean + std) or any(v < 0 for v in std):
        raise DataFormatError(
            f"{path}: the {m} band statistics are not numbers (mean {_numbers(mean)}, std {_numbers(std)}): some band "
            "has no valid "
            f"pixel in the training chips; {_RECREATE} from rasters with valid data"
        )
    if not (math.isfinite(gsd) and gsd > 0):
        raise DataFormatError(f"{path}: {m} GSD {gsd} is not a positive number of metres; {_RECREATE}")
    bands = tuple(b.decode() if isinstance(b, bytes) else str(b) for b in group.attrs["bands"])
    return ModalityFacts(
        int(shape[1]), (int(shape[2]), int(shape[3])), gsd, bands, tuple(mean), tuple(std), "chip_gsd" in group
    )


def _numbers(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def check_whole_patches(facts: DataFacts, patch: int, model: str) -> None:
    """InputError unless every chip of every file is a whole number of ``patch``-px patches."""
    for f in facts.files:
        for m in facts.modalities:
            h, w = f.modalities[m].chip
            if h % patch or w % patch or h < patch or w < patch:
                gsd = f.modalities[m].gsd
                size = tile_size_that_fits([v.gsd for v in f.modalities.values()], patch, h * gsd)
                example = f" (e.g. --tile-size-m {size:g})" if size else ""
                raise InputError(
                    f"{f.path}: {m} chips are {h}x{w} px, not a whole number of the {model} model's {patch}-px "
                    f"patches; re-align with a --tile-size-m that gives a multiple of {patch} px at every GSD"
                    f"{example}, or another --gsd {m}=..."
                )


def tile_size_that_fits(gsds: Sequence[float], patch: int, near: float) -> float | None:
    """The chip side in metres nearest to ``near`` that is a whole number of ``patch``-px patches
    at every GSD of ``gsds``; None when none below 1000 patches of the coarsest GSD is."""
    step = patch * max(gsds)
    fits = [
        k * step
        for k in range(1, 1001)
        if all(abs(k * step / (patch * g) - round(k * step / (patch * g))) < 1e-6 for g in gsds)
    ]
    return min(fits, key=lambda size: abs(size - near)) if fits else None
