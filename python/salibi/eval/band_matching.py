"""Which bands of a GEO-Bench task feed which modality of a checkpoint.

A checkpoint names the bands of each modality it was trained on (e.g. ``lores: B04 B03 B02``,
``sar: VV VH``, ``hires: red green blue``). Each name and each task band is reduced to a
:class:`salibi.bands.BandIdentity`, and each checkpoint band is fed the task band that
denotes it most strongly (:func:`salibi.bands.match_strength`):

0. the same identity: Sentinel-2 band number (``B04`` = ``04 - Red``), SAR polarisation
   (``VV``), or colour name for bands named Red/Green/Blue/NIR;
1. an alias of it: the colour of a Sentinel-2 band (``red`` = ``B04``), or a colour-named
   band of another optical sensor (Landsat-8 ``04 - Red``);
2. the nearest centre wavelength within 4 % (other optical bands, e.g. Landsat-8 SWIR for
   Sentinel-2 ``B11``).

What is GEO-Bench's own is here: reading a task band's geobench class (``kind``), names and
wavelength into an identity, the known defects of GEO-Bench v1.0, and the choice of
modalities. A modality is usable when at least 75 % of its bands match (all of them for
three bands or fewer); its missing bands are fed zeros, i.e. the band mean after
normalisation. Of the two optical modalities only one is used: the one whose checkpoint GSD
is closest to the task's, then the one with the better matches; SAR is used beside it when it
matches too, and the features of the modalities used are concatenated. A task matching none
is skipped with the reason.

Known GEO-Bench v1.0 defects are corrected here (geobench issues #28 and #29): m-eurosat's
last five band names are shifted (the band called ``08A`` holds B09, ... ``12`` holds B8A),
and m-brick-kiln holds B1-B5, B7, B8A, B8, B11, B12 and an 8-bit true-colour R, G, B under
the thirteen standard Sentinel-2 names.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from salibi.bands import (
    COLOUR_WAVELENGTH,
    POLARISATIONS,
    S2_ORDER,
    BandIdentity,
    colour,
    identify,
    match_strength,
    sentinel2_band,
    sentinel2_identity,
)
from salibi.eval.geobench.tasks import BandInfo, TaskSpecs

__all__ = [
    "BandMatch",
    "ModalityInput",
    "TaskInputs",
    "default_band_names",
    "map_task_bands",
]

MIN_MATCHED_FRACTION = 0.75

#: What the bands of the mislabelled v1.0 tasks hold: stored band number -> band name
#: (read with :func:`salibi.bands.identify`).
_EUROSAT_FIX = {"08A": "B09", "09": "B10", "10": "B11", "11": "B12", "12": "B8A"}
_BRICK_KILN_FIX = {
    "01": "B01",
    "02": "B02",
    "03": "B03",
    "04": "B04",
    "05": "B05",
    "06": "B07",
    "07": "B8A",
    "08": "B08",
    "08A": "B11",
    "09": "B12",
    "10": "red",
    "11": "green",
    "12": "blue",
}
#: geobench band classes that are no single optical or SAR band.
_NOT_A_BAND = ("MultiBand", "HyperSpectralBands", "Mask", "CloudProbability", "ElevationBand", "SegmentationClasses")
_BAND_NUMBER = re.compile(r"^\s*(\d{1,2}A?)\b")


def _task_identity(band: BandInfo, fixes: Mapping[str, str]) -> BandIdentity:
    """What a task band is, from its geobench class, names and wavelength (``fixes``: the
    corrected identities of a mislabelled task, by band number)."""
    number = _BAND_NUMBER.match(band.name)
    if number and number.group(1).upper() in fixes:
        return identify(fixes[number.group(1).upper()])
    if band.kind == "Sentinel1":
        # Intensities before the real and imaginary parts of the same polarisation.
        complex_part = bool(re.search(r"real|imag", band.name, re.IGNORECASE))
        return dataclasses.replace(identify(band.name, sar=True), rank=1 if complex_part else 0)
    if band.kind in _NOT_A_BAND or band.n_bands:
        return BandIdentity(None)
    colours = [word for word in (colour(name) for name in band.names) if word]
    if band.kind == "Sentinel2":
        s2_band = next((found for found in (sentinel2_band(name) for name in band.names) if found), None)
        if s2_band:
            identity = sentinel2_identity(s2_band)
            return dataclasses.replace(identity, wavelength=band.wavelength or identity.wavelength)
    if colours and band.kind in ("SpectralBand", "BandInfo"):
        return BandIdentity(f"colour:{colours[0]}", (), band.wavelength or COLOUR_WAVELENGTH[colours[0]])
    # Another sensor's optical band (Landsat-8, ...): its colour is only an alias.
    return BandIdentity(None, tuple(f"colour:{word}" for word in colours), band.wavelength)


def _known_fixes(task_name: str, dataset_name: str) -> dict[str, str]:
    names = {task_name.lower(), dataset_name.lower()}
    if names & {"m-eurosat", "eurosat"}:
        return _EUROSAT_FIX
    if any(name.startswith(("m-brick-kiln", "brick_kiln", "brick-kiln")) for name in names):
        return _BRICK_KILN_FIX
    return {}


@dataclass(frozen=True)
class BandMatch:
    """Checkpoint band ``checkpoint_band`` is fed task band ``task_band`` (None: zeros)."""

    checkpoint_band: str
    task_band: str | None
    score: int | None  # 0 identity, 1 alias, 2 wavelength; None when missing


@dataclass
class ModalityInput:
    """How to build one modality's input tensor from a task's samples."""

    modality: str
    matches: list[BandMatch]
    checkpoint_gsd: float | None = None

    @property
    def task_bands(self) -> list[str | None]:
        """Task band name per checkpoint channel, in the checkpoint's order; None = zeros."""
        return [m.task_band for m in self.matches]

    @property
    def missing(self) -> list[str]:
        return [m.checkpoint_band for m in self.matches if m.task_band is None]

    @property
    def score(self) -> int:
        return sum(2 if m.score is None else m.score for m in self.matches)

    def describe(self) -> str:
        used = ", ".join(f"{m.checkpoint_band}<-{m.task_band}" for m in self.matches if m.task_band)
        missing = f"; zeros for {', '.join(self.missing)}" if self.missing else ""
        return f"{self.modality}: {used}{missing}"


@dataclass
class TaskInputs:
    """The modalities a task feeds (empty, with ``reason``, when none matches)."""

    modalities: list[ModalityInput] = field(default_factory=list)
    reason: str = ""


def default_band_names(modality: str, channels: int) -> list[str]:
    """Band names assumed for a checkpoint modality that does not name its bands."""
    if modality == "sar":
        if channels <= len(POLARISATIONS):
            return list(POLARISATIONS[:channels])
        return [f"sar{i}" for i in range(channels)]
    if modality == "lores" and channels == len(S2_ORDER):
        return list(S2_ORDER)
    if modality == "lores" and channels == 12:
        return [b for b in S2_ORDER if b != "B10"]
    if channels == 3:
        return ["red", "green", "blue"]
    if channels == 4:
        return ["red", "green", "blue", "nir"]
    return [f"{modality}{i}" for i in range(channels)]


def _match_modality(
    modality: str, names: Sequence[str], task_bands: Sequence[BandInfo], task_identities: Sequence[BandIdentity]
) -> list[BandMatch]:
    """Each checkpoint band ``names[i]`` fed at most one task band, the strongest matches first."""
    wanted = [identify(name, sar=modality == "sar") for name in names]
    # (strength, wavelength distance, rank, checkpoint band i, task band j), sorted best first.
    candidates: list[tuple[int, float, int, int, int]] = []
    for i, want in enumerate(wanted):
        for j, have in enumerate(task_identities):
            if (modality == "sar") != have.is_sar:
                continue
            match = match_strength(want, have)
            if match is not None:
                strength, distance = match
                candidates.append((strength, distance, have.rank, i, j))
    fed: dict[int, BandMatch] = {}  # checkpoint band i -> its match
    taken: set[int] = set()  # task bands j already feeding one
    for strength, _, _, i, j in sorted(candidates):
        if i not in fed and j not in taken:
            fed[i] = BandMatch(names[i], task_bands[j].name, strength)
            taken.add(j)
    return [fed.get(i, BandMatch(name, None, None)) for i, name in enumerate(names)]


def map_task_bands(
    specs: TaskSpecs,
    checkpoint_bands: Mapping[str, Sequence[str]],
    checkpoint_gsd: Mapping[str, float | None] | None = None,
    task_name: str = "",
) -> TaskInputs:
    """Match the task's bands to the checkpoint's modalities (see the module docstring)."""
    checkpoint_gsd = checkpoint_gsd or {}
    fixes = _known_fixes(task_name, specs.dataset_name)
    identities = [_task_identity(b, fixes) for b in specs.bands]
    usable: list[ModalityInput] = []
    partial: list[str] = []
    for modality, names in checkpoint_bands.items():
        matches = _match_modality(modality, list(names), specs.bands, identities)
        found = sum(m.task_band is not None for m in matches)
        needed = len(matches) if len(matches) <= 3 else math.ceil(MIN_MATCHED_FRACTION * len(matches))
        if found and found >= needed:
            usable.append(ModalityInput(modality, matches, checkpoint_gsd.get(modality)))
        elif found:
            partial.append(f"{modality} ({found} of {len(matches)} bands)")
    optical = [m for m in usable if m.modality != "sar"]
    sar = [m for m in usable if m.modality == "sar"]
    task_gsd = specs.spatial_resolution

    def preference(m: ModalityInput) -> tuple[float, float]:
        gsd = m.checkpoint_gsd
        closeness = abs(math.log(gsd / task_gsd)) if gsd and task_gsd else 0.0
        return (round(closeness, 3), m.score / max(1, len(m.matches)))

    # One optical modality, then SAR: the order their features are concatenated in.
    chosen = ([min(optical, key=preference)] if optical else []) + sar
    if not chosen:
        task_desc = ", ".join(b.name for b in specs.bands[:16]) + (" ..." if len(specs.bands) > 16 else "")
        ckpt_desc = "; ".join(f"{m}: {' '.join(n)}" for m, n in checkpoint_bands.items())
        near = f" Partial matches: {', '.join(partial)}." if partial else ""
        return TaskInputs(
            [], f"no checkpoint modality matches the task's bands ({task_desc}); checkpoint has {ckpt_desc}.{near}"
        )
    return TaskInputs(chosen)
