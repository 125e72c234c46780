"""What flows through ``salibi embed``: a :class:`Chip` read and ready for the model (or why not),
the :class:`Rows` a run accumulates, and :class:`Columns`, the same rows as numpy arrays that the
output formats write and read back.

A row is identified by its ``path`` and ``modality`` (one row per pair): ``path`` is the file
relative to the input for a tile (``s2/tile_7.tif``), ``FILE#rROWcCOL`` for a chip of a scene's
chip grid (``naip.tif#r3c14``) and ``SET#INDEX`` for a chip of an aligned set (``floods.h5#17``);
``source`` is the file the row comes from. ``datetime`` is when the raster was acquired, as its
tags record it (:func:`salibi.rasters.acquisition_time`; ``salibi fetch`` writes them), or as an
aligned set records it per chip (``/datetime``), UTC; unknown (NaT, an empty string in HDF5, null
in GeoParquet) when they do not.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from salibi.rasters import as_utc, parse_iso_utc

__all__ = [
    "JOINT",
    "NO_WINDOW",
    "NO_TIME",
    "TIME_DTYPE",
    "Chip",
    "Columns",
    "ReadSettings",
    "Rows",
    "chip_id",
    "set_row_id",
    "times_from_text",
    "times_to_text",
]

#: The ``modality`` of a row embedded with all modalities of an aligned chip through the cross-modal encoder.
JOINT = "joint"
#: ``chip`` of a row that is not a window of one raster (aligned-set chips).
NO_WINDOW = (-1, -1, -1, -1)
#: The numpy type of ``datetime`` (UTC, microseconds) and its "unknown".
TIME_DTYPE = np.dtype("datetime64[us]")
NO_TIME = np.datetime64("NaT", "us")

Bounds = tuple[float, float, float, float]
Window = tuple[int, int, int, int]  # col_off, row_off, width, height (rasterio's order)


def chip_id(source: str, row: int, col: int) -> str:
    """The ``path`` of chip ``(row, col)`` of the chip grid over ``source``."""
    return f"{source}#r{row}c{col}"


def set_row_id(source: str, index: int) -> str:
    """The ``path`` of chip ``index`` of the aligned set ``source``."""
    return f"{source}#{index}"


@dataclass
class Chip:
    """One row to be: a tile (the chip of a whole file), a chip of a scene's grid or of an aligned
    set, read and ready for the model, or why it is not embedded (``failure``, ``skipped``).

    Unimodal rows carry ``windows`` (W, C, h, w) and ``token_masks`` (W, N): the normalised,
    zero-padded pixels cut into windows, and which tokens hold pixels. Joint rows carry
    ``images`` and ``image_masks``: per modality a (C, H, W) tensor and the (N,) token mask.
    """

    path: str
    source: str
    modality: str = ""
    bands: str = ""
    gsd: float = math.nan
    bounds: Bounds = (math.nan,) * 4
    crs: str = ""
    window: Window = NO_WINDOW
    datetime: dt.datetime | None = None  # acquisition time (UTC), when the raster's tags record it
    windows: Any = None
    token_masks: Any = None
    images: dict[str, Any] | None = None
    image_masks: dict[str, Any] | None = None
    gsds: dict[str, float] | None = None
    failure: str | None = None
    skipped: str | None = None  # more invalid pixels than --max-nodata: why
    per_tile_normalised: bool = False
    assumption: str | None = None  # a band assumption made for it (said once per run)
    same_ground: bool = False  # another row of this run covers the same ground (per-modality rows)

    @property
    def area_m2(self) -> float:
        """Ground area the row covers: its window's pixels times the GSD squared, else (aligned
        chips, on a projected CRS in metres) its bounds' area; 0 when neither is known or another
        row covers the same ground (the per-modality rows of an aligned chip)."""
        if self.same_ground:
            return 0.0
        width, height = self.window[2], self.window[3]
        if width > 0 and height > 0 and math.isfinite(self.gsd):
            return width * height * self.gsd**2
        x0, y0, x1, y1 = self.bounds
        area = (x1 - x0) * (y1 - y0)
        return area if math.isfinite(area) else 0.0


@dataclass
class Columns:
    """Rows as arrays: ``embedding`` (N, D) float32, ``bounds`` (N, 4) float64 (NaN without
    georeference), ``chip`` (N, 4) int64, ``gsd`` (N,) float64, the string columns as object arrays
    and ``datetime`` (N,) datetime64[us] in UTC, NaT where unknown (left out: all unknown)."""

    embedding: np.ndarray
    path: np.ndarray
    source: np.ndarray
    modality: np.ndarray
    bands: np.ndarray
    gsd: np.ndarray
    bounds: np.ndarray
    crs: np.ndarray
    chip: np.ndarray
    datetime: np.ndarray = field(default_factory=lambda: np.zeros(0, TIME_DTYPE))

    STRINGS = ("path", "source", "modality", "bands", "crs")

    def __post_init__(self) -> None:
        if len(self.datetime) == 0 and len(self):  # left out: not known
            self.datetime = np.full(len(self), NO_TIME)

    def __len__(self) -> int:
        return int(self.embedding.shape[0])

    @classmethod
    def empty(cls, dim: int) -> Columns:
        text = np.array([], dtype=object)
        return cls(
            embedding=np.zeros((0, dim), np.float32),
            path=text,
            source=text.copy(),
            modality=text.copy(),
            bands=text.copy(),
            gsd=np.zeros(0, np.float64),
            bounds=np.zeros((0, 4), np.float64),
            crs=text.copy(),
            chip=np.zeros((0, 4), np.int64),
            datetime=np.zeros(0, TIME_DTYPE),
        )

    def select(self, mask: np.ndarray) -> Columns:
        return Columns(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})

    @classmethod
    def concat(cls, parts: Sequence[Columns], dim: int) -> Columns:
        if not parts:
            return cls.empty(dim)
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})

    def keys(self) -> list[tuple[str, str]]:
        return list(zip(self.path.tolist(), self.modality.tolist()))


@dataclass
class Rows:
    """Finished rows, failures and chips skipped for no-data, as a run accumulates them (a part's worth)."""

    embedding: list[np.ndarray] = field(default_factory=list)
    chips: list[Chip] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason (over --max-nodata)

    def __len__(self) -> int:
        return len(self.chips) + len(self.failed) + len(self.skipped)

    def add(self, chip: Chip, embedding: np.ndarray) -> None:
        self.chips.append(chip)
        self.embedding.append(np.asarray(embedding, np.float32))

    def columns(self, dim: int) -> Columns:
        if not self.chips:
            return Columns.empty(dim)

        def text(values: list[str]) -> np.ndarray:
            return np.array(values, dtype=object)

        return Columns(
            embedding=np.stack(self.embedding).astype(np.float32),
            path=text([c.path for c in self.chips]),
            source=text([c.source for c in self.chips]),
            modality=text([c.modality for c in self.chips]),
            bands=text([c.bands for c in self.chips]),
            gsd=np.array([c.gsd for c in self.chips], np.float64),
            bounds=np.array([c.bounds for c in self.chips], np.float64).reshape(-1, 4),
            crs=text([c.crs for c in self.chips]),
            chip=np.array([c.window for c in self.chips], np.int64).reshape(-1, 4),
            datetime=np.array([_time_value(c.datetime) for c in self.chips], TIME_DTYPE),
        )


def _time_value(moment: dt.datetime | None) -> np.datetime64:
    if moment is None:
        return NO_TIME
    return np.datetime64(as_utc(moment).replace(tzinfo=None), "us")


def times_to_text(values: np.ndarray) -> np.ndarray:
    """``datetime`` values as ISO 8601 text in UTC, whole seconds (``2019-09-19T18:00:00Z``) or
    microseconds (``2019-09-19T18:00:00.024000Z``), ``""`` where unknown (object array: HDF5's
    ``datetime`` dataset)."""
    values = np.asarray(values, TIME_DTYPE)
    if not values.size:  # np.char.replace fails on no strings
        return np.zeros(0, dtype=object)
    text = np.char.replace(np.datetime_as_string(values, unit="us", timezone="UTC"), ".000000Z", "Z").astype(object)
    text[np.isnat(values)] = ""
    return text


def times_from_text(texts: np.ndarray) -> np.ndarray:
    """ISO 8601 texts (``Z`` or an offset; none: UTC; ``""``: unknown) as ``datetime`` values, each
    distinct text parsed once; a ``ValueError`` naming a text that is not a time."""
    distinct, inverse = np.unique(np.asarray(texts, dtype=str), return_inverse=True)
    parsed = np.empty(len(distinct), TIME_DTYPE)
    for k, text in enumerate(distinct.tolist()):
        if not text:
            parsed[k] = NO_TIME
            continue
        try:
            moment = parse_iso_utc(text)
        except ValueError:
            raise ValueError(f"datetime {text[:40]!r} is not an ISO 8601 time") from None
        parsed[k] = _time_value(moment)
    return parsed[inverse.reshape(-1)]


@dataclass(frozen=True)
class ReadSettings:
    """Everything the readers need (picklable: sent to DataLoader workers and to ranks)."""

    modality: str  # "auto" or one of salibi.vocabulary.MODALITIES
    default_gsd: float | None
    specs: dict[str, Any]  # modality -> salibi.embed.inputs.routing.ModalitySpec, the checkpoint's encoders
    patch_size: int
    window_patches: int
    band_names: tuple[str, ...] | None = None
    fill_missing: bool = False
    max_nodata: float = 0.5
    per_modality: bool = False
    joint: bool = True  # aligned sets: a joint row per chip (not in the shared space, which has none)
