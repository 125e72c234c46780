"""Which bands of a GEO-Bench task feed which modality of a checkpoint.

A checkpoint names the bands of each modality it was trained on (e.g. ``lores: B04 B03 B02``,
``sar: VV VH``, ``hires: red green blue``). Each is matched to a task band by, in order of
preference:

0. the same identity: Sentinel-2 band number (``B04`` = ``04 - Red``), SAR polarisation
   (``VV``), or colour name for bands named Red/Green/Blue/NIR;
1. an alias of it: the colour of a Sentinel-2 band (``red`` = ``B04``), or a colour-named
   band of another optical sensor (Landsat-8 ``04 - Red``);
2. the nearest centre wavelength within 4 % (other optical bands, e.g. Landsat-8 SWIR for
   Sentinel-2 ``B11``).

A modality is usable when at least 75 % of its bands match (all of them for three bands or
fewer); its missing bands are fed zeros, i.e. the band mean after normalisation. Of the two
optical modalities only one is used: the one whose checkpoint GSD is closest to the task's, then the
one with the better matches; SAR is used beside it when it matches too, and the features of the
modalities used are concatenated. A task matching none is skipped with the reason.

Known GEO-Bench v1.0 defects are corrected here (geobench issues #28 and #29): m-eurosat's
last five band names are shifted (the band called ``08A`` holds B09, ... ``12`` holds B8A),
and m-brick-kiln holds B1-B5, B7, B8A, B8, B11, B12 and an 8-bit true-colour R, G, B under
the thirteen standard Sentinel-2 names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from salibi.eval.geobench import BandInfo, TaskSpecs

__all__ = [
    "BandMatch",
    "ModalityInput",
    "TaskInputs",
    "default_band_names",
    "map_task_bands",
]

# Sentinel-2 centre wavelengths, micrometres (ESA).
S2_WAVELENGTH = {
    "B01": 0.443,
    "B02": 0.490,
    "B03": 0.560,
    "B04": 0.665,
    "B05": 0.705,
    "B06": 0.740,
    "B07": 0.783,
    "B08": 0.842,
    "B8A": 0.865,
    "B09": 0.945,
    "B10": 1.375,
    "B11": 1.610,
    "B12": 2.190,
}
S2_ORDER = tuple(S2_WAVELENGTH)
S2_COLOUR = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
COLOUR_WAVELENGTH = {"blue": 0.490, "green": 0.560, "red": 0.665, "nir": 0.842}
_COLOUR_WORDS = {
    "red": "red",
    "r": "red",
    "green": "green",
    "g": "green",
    "blue": "blue",
    "b": "blue",
    "nir": "nir",
    "nearinfrared": "nir",
    "near infrared": "nir",
    "near-infrared": "nir",
}
WAVELENGTH_TOLERANCE = 0.04  # relative
MIN_MATCHED_FRACTION = 0.75

# Corrected identities of the mislabelled v1.0 tasks: stored band name -> what it holds.
_EUROSAT_FIX = {"08A": "s2:B09", "09": "s2:B10", "10": "s2:B11", "11": "s2:B12", "12": "s2:B8A"}
_BRICK_KILN_FIX = {
    "01": "s2:B01",
    "02": "s2:B02",
    "03": "s2:B03",
    "04": "s2:B04",
    "05": "s2:B05",
    "06": "s2:B07",
    "07": "s2:B8A",
    "08": "s2:B08",
    "08A": "s2:B11",
    "09": "s2:B12",
    "10": "colour:red",
    "11": "colour:green",
    "12": "colour:blue",
}


def _s2_id(text: str) -> str | None:
    """``"B4"``, ``"B04"``, ``"4"``, ``"04 - Red"``, ``"8A"`` -> ``"B04"`` / ``"B8A"``."""
    match = re.match(r"^\s*(?:S2[_ ]?)?B?0?(\d{1,2}|8A)(?:\b|\s*-|_|$)", text.strip(), re.IGNORECASE)
    if not match:
        return None
    number = match.group(1).upper()
    band = "B8A" if number == "8A" else f"B{int(number):02d}"
    return band if band in S2_WAVELENGTH else None


def _colour(text: str) -> str | None:
    return _COLOUR_WORDS.get(text.strip().lower())


def _polarisation(text: str) -> str | None:
    found = re.findall(r"(?<![A-Za-z])(VV|VH|HH|HV)(?![A-Za-z])", text.upper())
    return found[0] if len(set(found)) == 1 else None


@dataclass(frozen=True)
class _Identity:
    primary: str | None  # "s2:B04", "pol:VV", "colour:red"
    aliases: tuple[str, ...]
    wavelength: float | None
    rank: int = 0  # among equal matches, lower is preferred (SAR intensity before complex parts)


def _checkpoint_identity(modality: str, name: str) -> _Identity:
    if modality == "sar":
        pol = _polarisation(name)
        return _Identity(f"pol:{pol}" if pol else None, (), None)
    colour = _colour(name)
    if colour:
        return _Identity(f"colour:{colour}", (), COLOUR_WAVELENGTH[colour])
    s2 = _s2_id(name)
    if s2:
        aliases = (f"colour:{S2_COLOUR[s2]}",) if s2 in S2_COLOUR else ()
        return _Identity(f"s2:{s2}", aliases, S2_WAVELENGTH[s2])
    return _Identity(None, (), None)


def _task_identity(band: BandInfo, fixes: Mapping[str, str]) -> _Identity:
    number = re.match(r"^\s*(\d{1,2}A?)\b", band.name)
    if number and number.group(1).upper() in fixes:
        fixed = fixes[number.group(1).upper()]
        if fixed.startswith("s2:"):
            s2 = fixed[3:]
            aliases = (f"colour:{S2_COLOUR[s2]}",) if s2 in S2_COLOUR else ()
            return _Identity(fixed, aliases, S2_WAVELENGTH[s2])
        return _Identity(fixed, (), COLOUR_WAVELENGTH[fixed.split(":")[1]])
    if band.kind == "Sentinel1":
        pol = _polarisation(band.name)
        complex_part = bool(re.search(r"real|imag", band.name, re.IGNORECASE))
        return _Identity(f"pol:{pol}" if pol else None, (), None, rank=1 if complex_part else 0)
    if (
        band.kind
        in ("MultiBand", "HyperSpectralBands", "Mask", "CloudProbability", "ElevationBand", "SegmentationClasses")
        or band.n_bands
    ):
        return _Identity(None, (), None)
    colours = [c for c in (_colour(n) for n in band.names) if c]
    if band.kind == "Sentinel2":
        found = next((s for s in (_s2_id(n) for n in band.names) if s), None)
        if found:
            aliases = (f"colour:{S2_COLOUR[found]}",) if found in S2_COLOUR else ()
            return _Identity(f"s2:{found}", aliases, band.wavelength or S2_WAVELENGTH[found])
    if colours and band.kind in ("SpectralBand", "BandInfo"):
        return _Identity(f"colour:{colours[0]}", (), band.wavelength or COLOUR_WAVELENGTH[colours[0]])
    # Another sensor's optical band (Landsat-8, ...): its colour is only an alias.
    return _Identity(None, tuple(f"colour:{c}" for c in colours), band.wavelength)


def _known_fixes(task_name: str, dataset_name: str) -> dict[str, str]:
    names = {task_name.lower(), dataset_name.lower()}
    if names & {"m-eurosat", "eurosat"}:
        return _EUROSAT_FIX
    if any(n.startswith(("m-brick-kiln", "brick_kiln", "brick-kiln")) for n in names):
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
        return ["VV", "VH", "HH", "HV"][:channels] if channels <= 4 else [f"sar{i}" for i in range(channels)]
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
    modality: str, names: Sequence[str], task_bands: Sequence[BandInfo], identities: Sequence[_Identity]
) -> list[BandMatch]:
    wanted = [_checkpoint_identity(modality, n) for n in names]
    candidates: list[tuple[int, float, int, int, int]] = []  # score, distance, rank, ckpt i, task j
    for i, want in enumerate(wanted):
        for j, (band, have) in enumerate(zip(task_bands, identities)):
            is_sar_band = have.primary is not None and have.primary.startswith("pol:")
            if (modality == "sar") != is_sar_band:
                continue
            if want.primary is not None and want.primary == have.primary:
                candidates.append((0, 0.0, have.rank, i, j))
            elif ({want.primary, *want.aliases} & {have.primary, *have.aliases}) - {None}:
                candidates.append((1, 0.0, have.rank, i, j))
            elif want.wavelength and have.wavelength:
                distance = abs(have.wavelength - want.wavelength) / want.wavelength
                if distance <= WAVELENGTH_TOLERANCE:
                    candidates.append((2, distance, have.rank, i, j))
    chosen: dict[int, tuple[int, int]] = {}
    used: set[int] = set()
    for score, _, _, i, j in sorted(candidates):
        if i not in chosen and j not in used:
            chosen[i] = (j, score)
            used.add(j)
    return [
        BandMatch(name, task_bands[chosen[i][0]].name, chosen[i][1]) if i in chosen else BandMatch(name, None, None)
        for i, name in enumerate(names)
    ]


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
    chosen = [m for m in usable if m.modality == "sar"]
    if optical:
        task_gsd = specs.spatial_resolution

        def preference(m: ModalityInput) -> tuple[float, float]:
            gsd = m.checkpoint_gsd
            closeness = abs(math.log(gsd / task_gsd)) if gsd and task_gsd else 0.0
            return (round(closeness, 3), m.score / max(1, len(m.matches)))

        chosen.insert(0, min(optical, key=preference))
    if not chosen:
        task_desc = ", ".join(b.name for b in specs.bands[:16]) + (" ..." if len(specs.bands) > 16 else "")
        ckpt_desc = "; ".join(f"{m}: {' '.join(n)}" for m, n in checkpoint_bands.items())
        near = f" Partial matches: {', '.join(partial)}." if partial else ""
        return TaskInputs(
            [], f"no checkpoint modality matches the task's bands ({task_desc}); checkpoint has {ckpt_desc}.{near}"
        )
    order = {"lores": 0, "hires": 0, "sar": 1}
    chosen.sort(key=lambda m: order.get(m.modality, 2))
    return TaskInputs(chosen)
