"""What a band *is*, whatever a file, a checkpoint or a benchmark calls it.

One band-identity system for the whole package: ``salibi embed`` matches a tile's bands to a
checkpoint's, ``salibi eval`` a benchmark task's, ``salibi align`` names the bands of
per-band files. A name is reduced to a :class:`BandIdentity`:

- ``primary``: the strongest identity it states -- a Sentinel-2 band (``s2:B04`` from ``B4``,
  ``b04``, ``04 - Red``, ``S2_B04``, ``8A``), a SAR polarisation (``pol:VV``), or a colour word
  (``colour:red`` from ``red``, ``R``, ``NIR``, ``near infrared``, ``SWIR1``);
- ``aliases``: weaker identities implied by it (Sentinel-2 ``B04`` is also ``colour:red``);
- ``wavelength``: its centre wavelength in micrometres, when known.

Two identities denote the same band with a strength (:func:`match_strength`): 0 when their
primaries agree, 1 when one's primary or alias is among the other's, 2 when only their
centre wavelengths agree within :data:`WAVELENGTH_TOLERANCE`. Landsat band numbers mean
other things than Sentinel-2's (Landsat-8 ``B5`` is NIR, Sentinel-2 ``B05`` red edge), so they
are only read with the sensor known (:func:`landsat_identity`): a name that carries its sensor,
``LC08_B5`` (what :func:`landsat_band_name` and :func:`band_from_file_name` write for Landsat
8/9 band 5), is identified as that sensor's band.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COLOUR_WAVELENGTH",
    "LANDSAT_BANDS",
    "POLARISATIONS",
    "S2_COLOUR",
    "S2_ORDER",
    "S2_WAVELENGTH",
    "WAVELENGTH_TOLERANCE",
    "DEFAULT_BANDS",
    "BandIdentity",
    "band_from_file_name",
    "band_label",
    "colour",
    "identify",
    "landsat_band_name",
    "landsat_identity",
    "landsat_sensor",
    "match_strength",
    "name_key",
    "polarisation",
    "sentinel2_band",
]

# Sentinel-2 MSI centre wavelengths, micrometres (ESA).
S2_WAVELENGTH: dict[str, float] = {
    "B01": 0.443, "B02": 0.490, "B03": 0.560, "B04": 0.665, "B05": 0.705, "B06": 0.740,
    "B07": 0.783, "B08": 0.842, "B8A": 0.865, "B09": 0.945, "B10": 1.375, "B11": 1.610, "B12": 2.190,
}  # fmt: skip
S2_ORDER: tuple[str, ...] = tuple(S2_WAVELENGTH)
#: Colour word of the Sentinel-2 bands that have one.
S2_COLOUR: dict[str, str] = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir1", "B12": "swir2"}
#: Centre wavelength of each colour word (Sentinel-2's band of that colour).
COLOUR_WAVELENGTH: dict[str, float] = {c: S2_WAVELENGTH[b] for b, c in S2_COLOUR.items()}
_COLOUR_WORDS: dict[str, str] = {
    "red": "red", "r": "red", "green": "green", "g": "green", "blue": "blue", "b": "blue",
    "nir": "nir", "nearinfrared": "nir", "near infrared": "nir", "near-infrared": "nir",
    "swir1": "swir1", "swir 1": "swir1", "swir-1": "swir1", "swir16": "swir1",
    "swir2": "swir2", "swir 2": "swir2", "swir-2": "swir2", "swir22": "swir2",
}  # fmt: skip
POLARISATIONS = ("VV", "VH", "HH", "HV")
#: Landsat band number -> (colour word or None, centre wavelength µm), per sensor.
LANDSAT_BANDS: dict[str, dict[str, tuple[str | None, float]]] = {
    "landsat7": {
        "1": ("blue", 0.485), "2": ("green", 0.560), "3": ("red", 0.660), "4": ("nir", 0.835),
        "5": ("swir1", 1.650), "7": ("swir2", 2.220), "8": (None, 0.710),
    },
    "landsat8": {
        "1": (None, 0.443), "2": ("blue", 0.482), "3": ("green", 0.561), "4": ("red", 0.655),
        "5": ("nir", 0.865), "6": ("swir1", 1.609), "7": ("swir2", 2.201), "8": (None, 0.590), "9": (None, 1.373),
    },
}  # fmt: skip
WAVELENGTH_TOLERANCE = 0.04  # relative
#: The bands each modality of a default model stands for (``DEFAULT_CHANNELS`` of
#: :mod:`salibi.models.config`: VV/VH, RGB, RGB), in channel order; ``salibi fetch`` gets these
#: unless ``--bands`` says otherwise.
DEFAULT_BANDS: dict[str, tuple[str, ...]] = {
    "sar": ("VV", "VH"),
    "lores": ("B04", "B03", "B02"),
    "hires": ("red", "green", "blue"),
}

_S2_NAME = re.compile(r"^\s*(?:S2[_ ]?)?B?0?(\d{1,2}|8A)(?:\b|\s*[-:]|_|$)", re.IGNORECASE)


def sentinel2_band(text: str) -> str | None:
    """``"B4"``, ``"B04"``, ``"4"``, ``"04 - Red"``, ``"S2_B04"``, ``"8A"`` -> ``"B04"`` / ``"B8A"``."""
    match = _S2_NAME.match(text.strip())
    if not match:
        return None
    number = match.group(1).upper()
    band = "B8A" if number == "8A" else f"B{int(number):02d}"
    return band if band in S2_WAVELENGTH else None


def colour(text: str) -> str | None:
    """The colour word a band name is (``"Red"`` -> ``"red"``, ``"near infrared"`` -> ``"nir"``)."""
    return _COLOUR_WORDS.get(" ".join(text.strip().lower().split()))


def polarisation(text: str) -> str | None:
    """The one SAR polarisation a name states (``"VV"``, ``"sigma0_vh"``), else None."""
    found = re.findall(r"(?<![A-Za-z])(VV|VH|HH|HV)(?![A-Za-z])", text.upper())
    return found[0] if len(set(found)) == 1 else None


def name_key(text: str) -> str | None:
    """A band name spelled plainly, for exact matches of names that state no identity:
    ``"band_01"`` and ``"Band 1"`` -> ``"name:band1"``, ``"B04"`` -> ``"name:b4"`` (case, spaces,
    ``_``, ``-`` and zero padding ignored); None for a blank name."""
    text = re.sub(r"[\s_\-]+", "", text.lower())
    return "name:" + re.sub(r"(?<!\d)0+(?=\d)", "", text) if text else None


@dataclass(frozen=True)
class BandIdentity:
    """What a band is (see the module docstring); ``rank`` orders otherwise equal candidates."""

    primary: str | None
    aliases: tuple[str, ...] = ()
    wavelength: float | None = None
    rank: int = 0

    @property
    def keys(self) -> set[str]:
        return {k for k in (self.primary, *self.aliases) if k}

    @property
    def is_sar(self) -> bool:
        return bool(self.primary and self.primary.startswith("pol:"))


def _sentinel2_identity(band: str) -> BandIdentity:
    aliases = (f"colour:{S2_COLOUR[band]}",) if band in S2_COLOUR else ()
    return BandIdentity(f"s2:{band}", aliases, S2_WAVELENGTH[band])


def identify(name: str, sar: bool = False) -> BandIdentity:
    """The identity of a band called ``name`` (``sar``: it belongs to a SAR modality)."""
    if sar:
        pol = polarisation(name)
        return BandIdentity(f"pol:{pol}" if pol else None)
    word = colour(name)
    if word:
        return BandIdentity(f"colour:{word}", (), COLOUR_WAVELENGTH[word])
    landsat = _LANDSAT_BAND.match(name.strip())
    if landsat:
        return landsat_identity(landsat.group(3), _LANDSAT_TABLE[landsat.group(2)])
    band = sentinel2_band(name)
    if band:
        return _sentinel2_identity(band)
    return BandIdentity(None)


def band_label(identity: BandIdentity) -> str | None:
    """The one name a band of this identity is written under (a GeoTIFF band description that
    :func:`identify` reads back to it): ``s2:B04`` -> ``B04``, ``pol:VV`` -> ``VV``, ``colour:red`` -> ``red``;
    None for an identity without a primary."""
    if identity.primary is None:
        return None
    return identity.primary.split(":", 1)[1]


def sentinel2_identity(band: str) -> BandIdentity:
    """The identity of Sentinel-2 band ``band`` (``"B04"``)."""
    return _sentinel2_identity(band)


def landsat_identity(number: str | int, sensor: str) -> BandIdentity:
    """The identity of band ``number`` of ``sensor`` (``landsat7`` or ``landsat8``): its colour is
    an alias (another sensor's red is not Sentinel-2's B04), plus its wavelength."""
    word, wavelength = LANDSAT_BANDS[sensor].get(str(int(number)), (None, None))
    if wavelength is None:
        return BandIdentity(None)
    return BandIdentity(None, (f"colour:{word}",) if word else (), wavelength)


def match_strength(wanted: BandIdentity, have: BandIdentity) -> tuple[int, float] | None:
    """``(strength, relative wavelength distance)`` when ``have`` can stand for ``wanted``
    (strength 0 same identity, 1 shared alias, 2 wavelength within tolerance), else None."""
    if wanted.primary is not None and wanted.primary == have.primary:
        return 0, 0.0
    if wanted.keys & have.keys:
        return 1, 0.0
    if wanted.wavelength and have.wavelength:
        distance = abs(have.wavelength - wanted.wavelength) / wanted.wavelength
        if distance <= WAVELENGTH_TOLERANCE:
            return 2, distance
    return None


# -- band names from Landsat product ids and band file names ------------------------------------

#: Landsat product-id prefix (``LC08``, ``LE07``, ``LT05``, ...) -> the :data:`LANDSAT_BANDS` table of
#: its band numbers (OLI on Landsat 8 and 9; ETM+ on 7; TM on 4 and 5 numbers bands 1-5 and 7 as ETM+).
_LANDSAT_TABLE = {"9": "landsat8", "8": "landsat8", "7": "landsat7", "5": "landsat7", "4": "landsat7"}
_LANDSAT_PRODUCT = re.compile(r"^L([COTE])0?([45789])(?=[_\W]|$)", re.IGNORECASE)
# "LC08_B5", "LE07 B3": a band name that carries its sensor (what landsat_band_name writes)
_LANDSAT_BAND = re.compile(r"^L([COTE])0?([45789])[_ ](?:SR_|ST_)?B(\d{1,2})$", re.IGNORECASE)
# A band number as Landsat products spell it in descriptions and file names: "B5", "SR_B5", "band 5"
_BARE_NUMBER = re.compile(r"^(?:SR_|ST_)?(?:B|band[ _]?)?0?(\d{1,2})$", re.IGNORECASE)
_FILE_TOKEN = re.compile(r"[_.\-\s]+")
_RESOLUTION_TOKEN = re.compile(r"^\d+m$", re.IGNORECASE)


def landsat_sensor(text: str) -> str | None:
    """The Landsat product id a file name or product name starts with, as ``LC08``/``LE07``/... (the
    sensor letter and the mission number), else None: ``LC08_L2SP_014035_..._SR_B4`` -> ``LC08``."""
    match = _LANDSAT_PRODUCT.match(text.strip())
    return f"L{match.group(1).upper()}0{match.group(2)}" if match else None


def landsat_band_name(sensor: str, text: str) -> str | None:
    """``text`` read as a band number of Landsat product ``sensor`` (:func:`landsat_sensor`):
    ``("LC08", "SR_B5")`` -> ``"LC08_B5"``; None when ``text`` is not a band number that sensor has."""
    match, product = _BARE_NUMBER.match(text.strip()), _LANDSAT_PRODUCT.match(sensor)
    if not match or not product:
        return None
    number = str(int(match.group(1)))
    return f"{sensor}_B{number}" if number in LANDSAT_BANDS[_LANDSAT_TABLE[product.group(2)]] else None


def band_from_file_name(name: str) -> str | None:
    """The band a one-band file's name states, else None: the last token of the stem (a
    resolution token such as ``10m`` skipped) as a Sentinel-2 band written with two digits or
    ``8A`` (``T31UDQ_20200101T103421_B04_10m.jp2``, ``s2_B04.tif`` -> ``B04``), a polarisation
    (``..._VV.tif`` -> ``VV``), or, in a Landsat product (``LC08_..._SR_B4.TIF``), a band number
    of that sensor (-> ``LC08_B4``). A single-digit ``B4`` outside a Landsat product stays unread:
    Sentinel-2 writes two digits, and other sensors number bands otherwise."""
    stem = name.rsplit("/", 1)[-1]
    for suffix in (".tif", ".tiff", ".jp2", ".j2k", ".png", ".jpg", ".jpeg", ".img", ".vrt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    tokens = [t for t in _FILE_TOKEN.split(stem) if t]
    while len(tokens) > 1 and _RESOLUTION_TOKEN.match(tokens[-1]):
        tokens.pop()
    if not tokens:
        return None
    last = tokens[-1]
    sensor = landsat_sensor(stem)
    if sensor is not None and len(tokens) > 1:
        return landsat_band_name(sensor, last)
    if re.fullmatch(r"B(\d\d|8A)", last, re.IGNORECASE):
        return sentinel2_band(last)
    if last.upper() in POLARISATIONS:
        return last.upper()
    return None
