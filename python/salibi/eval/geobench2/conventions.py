"""How a GEO-Bench-2 dataset is laid out: the vocabulary its table in
:mod:`salibi.eval.geobench2.datasets` is written in.

A dataset is a few tortilla files (:mod:`salibi.eval.geobench2.tortilla`); each sample is a nested
tortilla whose items are found, as the official reader (``geobenchv2`` 0.9, ``geobench_v2.datasets``)
finds them, by position in the sample table or by item id. A :class:`Source` is one of the
dataset's modalities: which item holds it, what its stored bands *are* (in stored order), its
sensor (which decides the salibi encoder, :data:`SENSOR_MODALITY`) and its GSD. A :class:`Label`
says where the target is and how the official reader turns it into class indices.

Band orders are the official reader's, except where the official package's own generator
(``geobench_v2.generate_benchmark``), which writes the bytes, contradicts the name the reader gives
a band: then the band is named for what it holds and :attr:`Band.official` keeps the reader's name
(benv2's S1 is stored VH, VV; TreeSatAI's aerial image NIR, G, B, R).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from salibi.bands import COLOUR_WAVELENGTH, LANDSAT_BANDS, S2_WAVELENGTH

__all__ = [
    "HLS_BANDS",
    "S2_10_BANDS",
    "S2_12_BANDS",
    "SENSOR_MODALITY",
    "Band",
    "Convention",
    "ItemRef",
    "Label",
    "Source",
    "as_classes",
    "colour_bands",
    "landsat8_bands",
    "sentinel1_bands",
    "sentinel2_bands",
    "tortilla_files",
]

#: The salibi encoder each GEO-Bench-2 sensor family feeds (None: no encoder takes it).
SENSOR_MODALITY: dict[str, str | None] = {
    "sentinel2": "lores",
    "hls": "lores",
    "landsat8": "lores",
    "sentinel1": "sar",
    "sar": "sar",
    "aerial": "hires",
    "worldview": "hires",
    "planet": "hires",
    "elevation": None,
}

#: Band registries of ``geobench_v2/datasets/sensor_util.py`` several datasets read in this order.
S2_12_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
S2_10_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
HLS_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")

#: An item of a sample table: its position (negative counts from the end, as the official reader
#: does), its exact ``tortilla:id``, or ``"prefix*"`` for the first item whose id starts so.
ItemRef = int | str


@dataclass(frozen=True)
class Band:
    """One stored band: salibi's name for it, its geobench-style class (``Sentinel2``,
    ``Sentinel1``, ``Landsat8``, ``SpectralBand``, ``ElevationBand``), centre wavelength (µm),
    other names that identify it, and the official reader's name when that differs."""

    name: str
    kind: str
    wavelength: float | None = None
    aliases: tuple[str, ...] = ()
    official: str | None = None


def tortilla_files(name: str, parts: int = 0) -> tuple[str, ...]:
    """A dataset's tortilla file names: ``geobench_NAME.tortilla``, or ``parts`` numbered parts."""
    if not parts:
        return (f"geobench_{name}.tortilla",)
    return tuple(f"geobench_{name}.{i:04d}.part.tortilla" for i in range(parts))


def sentinel2_bands(*names: str) -> tuple[Band, ...]:
    """Sentinel-2 (or HLS, which numbers its bands as Sentinel-2) bands ``B02``, ``B8A``, ..."""
    return tuple(Band(n, "Sentinel2", S2_WAVELENGTH[n]) for n in names)


def sentinel1_bands(*names: str, official: tuple[str, ...] | None = None) -> tuple[Band, ...]:
    """SAR bands named by polarisation (``VV``, ``VH``; ``VV/VH`` is a ratio and matches none)."""
    return tuple(Band(n, "Sentinel1", official=official[i] if official else None) for i, n in enumerate(names))


def colour_bands(*names: str, official: tuple[str, ...] | None = None) -> tuple[Band, ...]:
    """Optical bands named by colour word (``red``, ``green``, ``blue``, ``nir``)."""
    return tuple(
        Band(n, "SpectralBand", COLOUR_WAVELENGTH.get(n), official=official[i] if official else None)
        for i, n in enumerate(names)
    )


def landsat8_bands(*numbers: int, official: tuple[str, ...]) -> tuple[Band, ...]:
    """Landsat-8 OLI bands by number (their colour is an alias, not Sentinel-2's band)."""
    bands = []
    for number, name in zip(numbers, official):
        word, wavelength = LANDSAT_BANDS["landsat8"][str(number)]
        bands.append(Band(f"LC08_B{number}", "Landsat8", wavelength, (word,) if word else (), name))
    return tuple(bands)


@dataclass(frozen=True)
class Source:
    """One modality of a dataset: ``item`` holds ``bands`` (stored order) of ``sensor``.

    ``gsd``: the nominal metres per pixel; with ``gsd_from_georeference`` the item's own
    georeference is used when it has one (samples of one dataset may differ), else ``gsd``.
    ``step``: for an HDF5 ``(T, C, H, W)`` payload, the time step read. ``valid_item``: an item
    whose zero pixels mark invalid data (they become NaN, i.e. the band mean after normalisation).
    """

    name: str
    sensor: str
    item: ItemRef
    bands: tuple[Band, ...]
    gsd: float
    gsd_from_georeference: bool = True
    step: int | None = None
    valid_item: ItemRef | None = None

    @property
    def modality(self) -> str | None:
        """The salibi encoder this source feeds (None: none does)."""
        return SENSOR_MODALITY[self.sensor]


@dataclass(frozen=True)
class Label:
    """Where a sample's target is and how it becomes class indices.

    Classification: ``column`` of the sample table's first row holds a class index, or (with
    ``by_name``) a class name. Multi-label: ``column`` holds a list of class names. Segmentation:
    raster ``item`` (HDF5 payloads: ``hdf5_index`` along the first axis) through ``remap``;
    values outside ``0 .. len(classes) - 1`` are ignored in scoring.
    """

    kind: str
    classes: tuple[str, ...]
    column: str | None = None
    item: ItemRef | None = None
    remap: Callable[[np.ndarray], np.ndarray] | None = None
    hdf5_index: int | None = None
    by_name: bool = False


@dataclass(frozen=True)
class Convention:
    """One GEO-Bench-2 dataset as the official reader loads it (see the module docstring)."""

    name: str
    reader: str  # the official class
    files: tuple[str, ...]
    label: Label
    sources: tuple[Source, ...]
    #: What the dataset holds that salibi does not feed, and why.
    unused: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


# -- label remaps shared by several readers -------------------------------------------------------


def as_classes(mask: np.ndarray) -> np.ndarray:
    """Class indices as stored."""
    return mask.astype(np.int64)
