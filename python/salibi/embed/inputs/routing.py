"""The band contract of ``salibi embed``: which encoder a raster goes to, and which of its bands feed it.

What a raster says about its bands (:func:`raster_bands`), in this order: ``--band-names``
(names for bands 1, 2, ... of every raster); else per band its description -- read as a band of
the Landsat product the file name starts with when it is a bare number (``LC08_...`` with
``B5`` -> ``LC08_B5``) -- or its colour interpretation (red, green, blue); else, for a raster
without any name, red, green, blue for a PNG/JPEG, or the band its file name states for a
one-band file (``..._B04.jp2``). Alpha bands are never fed to an encoder.

How a raster is routed (:func:`route`):

1. An encoder *fits* when every band it takes is among the raster's, by identity
   (:mod:`salibi.bands`: ``B4`` = ``B04`` = ``S2_B04``; Sentinel-2 ``B04`` stands for ``red``;
   ``LC08_B5`` for ``nir``/``B08``; ``VV`` for ``Sigma0_VV``) or by the same plain name. An
   encoder whose checkpoint names no bands fits a raster with red, green, blue when it takes three.
2. ``auto``: the fitting encoder; several fit (an RGB raster and two RGB encoders) -> the GSD
   breaks the tie: high-res optical below :data:`HIRES_BELOW_M`, else low-res optical. Complex
   pixels go to SAR only.
3. A raster none of whose bands has a name (or a checkpoint that names none) takes bands 1, 2,
   ... in order, *assumed* to be the encoder's: with ``auto``, SAR for 2-band or dB rasters, else
   by the GSD as above, among the encoders it has enough bands for. Every such row records
   ``1,2,3 (assumed)`` in ``bands``, and the run warns once per encoder naming the assumption.
4. A raster with names that lacks some band of the best-fitting encoder (most bands found, then
   the GSD) is refused with the bands it has and the ones missing, unless ``fill_missing``: the
   missing bands are filled with the band mean (0 after normalisation) and recorded as
   ``B02=mean``.

``bands`` of a row: the raster's names of the bands used, in the encoder's order (``B4,B3,B2``).

A folder of tiles mostly repeats a few layouts: :class:`Router` decides once per
:class:`BandLayout` (what a raster says about its bands, and what its file name states) and GSD
class, and answers every other raster of that layout from its cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from salibi.bands import band_from_file_name, identify, landsat_band_name, landsat_sensor, match_strength, name_key

__all__ = [
    "HIRES_BELOW_M",
    "BandLayout",
    "BandRefusal",
    "BandRoute",
    "ModalitySpec",
    "RasterBands",
    "Router",
    "raster_bands",
    "route",
    "route_named",
]

#: ``auto``: among optical encoders that fit equally, below this GSD (metres) high-res optical.
HIRES_BELOW_M = 5.0
# The weakest salibi.bands.match_strength that still means the same band. Strength 2 (a nearby
# centre wavelength, e.g. B08 for B8A) is another band in the place the encoder learnt this one.
_SAME_BAND = 1
_RGB = ("red", "green", "blue")


class BandRefusal(Exception):
    """A raster whose bands cannot feed an encoder; the message is the reason recorded for it."""


@dataclass(frozen=True)
class ModalitySpec:
    """What the checkpoint says about one modality's input: band count, names and statistics."""

    channels: int
    bands: tuple[str, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


@dataclass(frozen=True)
class RasterBands:
    """What a raster says about its bands: a name per band (``""`` for none) and which are alpha."""

    names: tuple[str, ...]
    alpha: tuple[bool, ...]
    is_complex: bool = False

    @property
    def usable(self) -> list[int]:
        """0-based indexes of the bands that are not alpha."""
        return [i for i, a in enumerate(self.alpha) if not a]

    @property
    def named(self) -> bool:
        """Whether some usable band has a name that states what it is (or could match a name)."""
        return any(_states_something(self.names[i]) for i in self.usable)


@dataclass(frozen=True)
class BandRoute:
    """The encoder a raster goes to and, per encoder band, the 1-based raster band feeding it
    (0: filled with the band mean); ``label`` is the row's ``bands``."""

    modality: str
    indexes: tuple[int, ...]
    label: str
    assumption: str | None = None

    @property
    def filled(self) -> tuple[bool, ...]:
        return tuple(i == 0 for i in self.indexes)


def _states_something(name: str) -> bool:
    if not name.strip():
        return False
    optical, sar = identify(name), identify(name, sar=True)
    return bool(optical.keys or optical.wavelength or sar.keys)


@dataclass(frozen=True)
class BandLayout:
    """Everything :func:`raster_bands` reads from a raster: its band descriptions and colour
    interpretations, driver, whether its pixels are complex, and what its file name states (the
    Landsat product it starts with; the band of a one-band file). Rasters of one layout have the
    same bands, so they route alike (:class:`Router`)."""

    descriptions: tuple[str, ...]
    colour_interpretations: tuple[str, ...]
    driver: str
    is_complex: bool
    landsat_sensor: str | None = None
    file_band: str | None = None  # the band a one-band file's name states

    @classmethod
    def of(
        cls,
        descriptions: Sequence[str | None],
        colour_interpretations: Sequence[str],
        file_name: str,
        driver: str,
        is_complex: bool,
    ) -> BandLayout:
        """The layout of a raster; ``colour_interpretations`` are GDAL's names (``red``, ``alpha``,
        ``gray``, ...) per band."""
        return cls(
            tuple(d or "" for d in descriptions),
            tuple(colour_interpretations),
            driver,
            is_complex,
            landsat_sensor(file_name),
            band_from_file_name(file_name) if len(descriptions) == 1 else None,
        )


def raster_bands(layout: BandLayout, band_names: Sequence[str] | None = None) -> RasterBands:
    """What a raster of ``layout`` says about its bands (see the module docstring)."""
    count = len(layout.descriptions)
    interps = layout.colour_interpretations
    alpha = tuple(i < len(interps) and interps[i] == "alpha" for i in range(count))
    if band_names:
        if len(band_names) > count:
            raise BandRefusal(
                f"has {count} band(s) but --band-names names {len(band_names)} ({', '.join(band_names)}); "
                "give one name per band, in order"
            )
        return RasterBands(tuple(band_names) + ("",) * (count - len(band_names)), alpha, layout.is_complex)
    sensor = layout.landsat_sensor
    names = []
    for i in range(count):
        text = layout.descriptions[i].strip()
        if text and sensor:
            text = landsat_band_name(sensor, text) or text
        interp = interps[i] if i < len(interps) else ""
        names.append(text or (interp if interp in _RGB else ""))
    if not any(names):
        usable = [i for i in range(count) if not alpha[i]]
        if layout.driver in ("PNG", "JPEG") and len(usable) >= 3:
            for i, colour in zip(usable, _RGB):
                names[i] = colour
        elif count == 1:
            names[0] = layout.file_band or ""
    return RasterBands(tuple(names), alpha, layout.is_complex)


# -- matching ------------------------------------------------------------------------------------


def _strength(wanted: str, have: str, sar: bool) -> int | None:
    """How well raster band ``have`` stands for encoder band ``wanted`` (0 best), None if not at all."""
    if not have.strip():
        return None
    if name_key(wanted) == name_key(have):
        return 0
    match = match_strength(identify(wanted, sar=sar), identify(have, sar=sar))
    return None if match is None or match[0] > _SAME_BAND else 1 + match[0]


def _find(bands: RasterBands, wanted: Sequence[str], sar: bool) -> list[int | None]:
    """Per wanted band, the 0-based raster band that is it (the best match, then the first band;
    each raster band used once), or None."""
    chosen: list[int | None] = []
    for name in wanted:
        candidates = []
        for i in bands.usable:
            strength = _strength(name, bands.names[i], sar) if i not in chosen else None
            if strength is not None:
                candidates.append((strength, i))
        chosen.append(min(candidates)[1] if candidates else None)
    return chosen


@dataclass
class _Fit:
    modality: str
    wanted: tuple[str, ...]  # the encoder's bands (red, green, blue for a checkpoint without names)
    found: list[int | None]  # per wanted band, the 0-based raster band

    @property
    def complete(self) -> bool:
        return bool(self.wanted) and all(i is not None for i in self.found)

    @property
    def count(self) -> int:
        return sum(i is not None for i in self.found)


def _fit(bands: RasterBands, modality: str, spec: ModalitySpec) -> _Fit:
    sar = modality == "sar"
    if spec.bands:
        wanted: tuple[str, ...] = spec.bands
    elif spec.channels == 3 and not sar:
        wanted = _RGB
    else:
        wanted = ()
    return _Fit(modality, wanted, _find(bands, wanted, sar) if wanted else [])


def _optical_by_gsd(gsd: float) -> str:
    """The optical encoder a GSD prefers: high-res below :data:`HIRES_BELOW_M`, else low-res (the
    only way the GSD enters routing)."""
    return "hires" if gsd < HIRES_BELOW_M else "lores"


def _by_gsd(modalities: Sequence[str], gsd: float, sar_evidence: bool) -> str:
    """The tie-break among encoders that fit equally: SAR when the raster looks like SAR, else
    high-res optical below :data:`HIRES_BELOW_M` and low-res optical from it, else the first."""
    if "sar" in modalities and (sar_evidence or all(m == "sar" for m in modalities)):
        return "sar"
    optical = [m for m in modalities if m != "sar"]
    preferred = _optical_by_gsd(gsd)
    return preferred if preferred in optical else (optical[0] if optical else modalities[0])


def _encoder_bands(spec: ModalitySpec) -> str:
    return ", ".join(spec.bands) if spec.bands else f"{spec.channels} unnamed band(s)"


def _named_route(bands: RasterBands, fit: _Fit) -> BandRoute:
    indexes = tuple((i + 1) for i in fit.found if i is not None)
    return BandRoute(fit.modality, indexes, ",".join(bands.names[i - 1] for i in indexes))


def _in_order(bands: RasterBands, modality: str, spec: ModalitySpec) -> BandRoute:
    """Bands 1, 2, ... (alpha left out) assumed to be the encoder's, or a refusal when too few."""
    usable = bands.usable
    if len(usable) < spec.channels:
        wanted = f" ({', '.join(spec.bands)})" if spec.bands else ""
        raise BandRefusal(
            f"has {len(usable)} band(s) but the checkpoint's {modality} encoder takes {spec.channels}{wanted}; "
            "give rasters with those bands"
        )
    indexes = tuple(i + 1 for i in usable[: spec.channels])
    numbers = ",".join(str(i) for i in indexes)
    what = f"the {modality} encoder's {', '.join(spec.bands)}" if spec.bands else f"the {modality} encoder's bands"
    why = "rasters without band names" if spec.bands else f"a checkpoint that names no {modality} bands"
    assumption = (
        f"{why}: bands {numbers} taken in order as {what} (assumed; recorded as '{numbers} (assumed)' in the "
        "bands column); name the bands with --band-names if that is wrong"
    )
    return BandRoute(modality, indexes, f"{numbers} (assumed)", assumption)


def _filled_route(bands: RasterBands, fit: _Fit) -> BandRoute:
    indexes = tuple(0 if i is None else i + 1 for i in fit.found)
    label = ",".join(bands.names[i - 1] if i else f"{w}=mean" for i, w in zip(indexes, fit.wanted))
    return BandRoute(fit.modality, indexes, label)


def _missing_reason(bands: RasterBands, fit: _Fit) -> str:
    have = [bands.names[i] for i in fit.found if i is not None]
    missing = [w for w, i in zip(fit.wanted, fit.found) if i is None]
    return (
        f"has {', '.join(have)} of the {fit.modality} encoder's {', '.join(fit.wanted)} but not {', '.join(missing)}; "
        "give rasters with those bands, name them with --band-names, or pass --fill-missing mean to fill "
        "missing bands with the band mean"
    )


def route(
    bands: RasterBands,
    gsd: float,
    specs: dict[str, ModalitySpec],
    modality: str = "auto",
    fill_missing: bool = False,
    looks_like_db: Callable[[], bool] = lambda: False,
) -> BandRoute:
    """The encoder and bands for a raster (see the module docstring); :class:`BandRefusal` says why not.
    ``looks_like_db`` is asked only when that decides between SAR and optical for unnamed bands."""
    if modality != "auto":
        return _route_to(bands, modality, specs[modality], fill_missing)
    candidates = ["sar"] if bands.is_complex else list(specs)
    if bands.is_complex and "sar" not in specs:
        raise BandRefusal(
            f"has complex (SAR) pixels but the checkpoint has no sar encoder (it has {', '.join(specs)}); "
            "pass --modality to choose one"
        )
    fits = {m: _fit(bands, m, specs[m]) for m in candidates}
    complete = [m for m in candidates if fits[m].complete]
    if complete:
        return _named_route(bands, fits[_by_gsd(complete, gsd, sar_evidence=False)])
    named_encoders = [m for m in candidates if fits[m].wanted]
    if not bands.named or not named_encoders:
        enough = [m for m in candidates if len(bands.usable) >= specs[m].channels]
        sar_evidence = bands.is_complex or len(bands.usable) == 2 or ("sar" in enough and looks_like_db())
        if "sar" in enough and not sar_evidence and len(enough) > 1:
            enough.remove("sar")  # unnamed bands go to SAR only when they look like SAR
        chosen = _by_gsd(enough or candidates, gsd, sar_evidence)
        return _in_order(bands, chosen, specs[chosen])  # too few bands for every encoder: refused naming it
    winner = _by_gsd(named_encoders, gsd, sar_evidence=False)
    best = max(named_encoders, key=lambda m: (fits[m].count, m == winner))
    fit = fits[best]
    if fit.count == 0:
        names = ", ".join(n for n in (bands.names[i] for i in bands.usable) if n)
        encoders = "; ".join(f"{m}: {_encoder_bands(specs[m])}" for m in candidates)
        raise BandRefusal(
            f"its bands ({names}) are none of the checkpoint encoders' bands ({encoders}); "
            "name its bands with --band-names or pass --modality"
        )
    if fill_missing:
        return _filled_route(bands, fit)
    raise BandRefusal(_missing_reason(bands, fit))


def _route_to(bands: RasterBands, modality: str, spec: ModalitySpec, fill_missing: bool) -> BandRoute:
    """``--modality`` given: that encoder's bands, in order when the raster (or checkpoint) names none."""
    fit = _fit(bands, modality, spec)
    if fit.complete:
        return _named_route(bands, fit)
    if not bands.named or not fit.wanted:
        return _in_order(bands, modality, spec)
    if fit.count and fill_missing:
        return _filled_route(bands, fit)
    if fit.count:
        raise BandRefusal(_missing_reason(bands, fit))
    names = ", ".join(n for n in (bands.names[i] for i in bands.usable) if n)
    raise BandRefusal(
        f"none of its bands ({names}) is one of the {modality} encoder's ({_encoder_bands(spec)}); "
        "name its bands with --band-names or choose another --modality"
    )


class Router:
    """:func:`raster_bands` and :func:`route` for the rasters of one run, decided once per
    :class:`BandLayout` and GSD class (the optical encoder the GSD prefers) and kept: a folder of
    tiles of one sensor is routed once. A decision that asked ``looks_like_db`` (unnamed bands,
    SAR among the candidates) is kept per answer; refusals are kept too. Safe to share between
    reader threads (two threads may decide one layout at once: both get the same answer).
    ``seconds``: the time spent routing, answers from the cache included."""

    def __init__(
        self,
        specs: dict[str, ModalitySpec],
        modality: str = "auto",
        fill_missing: bool = False,
        band_names: Sequence[str] | None = None,
    ) -> None:
        self.specs, self.modality, self.fill_missing = specs, modality, fill_missing
        self.band_names = tuple(band_names) if band_names else None
        self.seconds = 0.0
        self._decided: dict[tuple, BandRoute | str | object] = {}  # a route, a refusal's reason or _ASKS_DB
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # sent to DataLoader worker processes: a fresh lock there
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def route(self, layout: BandLayout, gsd: float, looks_like_db: Callable[[], bool] = lambda: False) -> BandRoute:
        """The encoder and bands for a raster of ``layout`` and ``gsd``; :class:`BandRefusal` says why not."""
        started = time.perf_counter()
        try:
            key: tuple = (layout, _optical_by_gsd(gsd))
            decided = self._decided.get(key)
            if decided is None:
                decided = self._decide(key, layout, gsd, looks_like_db)
            elif decided is _ASKS_DB:
                db = bool(looks_like_db())
                decided = self._decided.get(key + (db,))
                if decided is None:
                    decided = self._decide(key + (db,), layout, gsd, lambda: db)
            if isinstance(decided, BandRoute):
                return decided
            raise BandRefusal(str(decided))
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds += elapsed

    def _decide(self, key: tuple, layout: BandLayout, gsd: float, looks_like_db: Callable[[], bool]) -> BandRoute | str:
        asked: list[bool] = []

        def ask() -> bool:
            asked.append(bool(looks_like_db()))
            return asked[-1]

        decided: BandRoute | str
        try:
            bands = raster_bands(layout, self.band_names)
            decided = route(bands, gsd, self.specs, self.modality, self.fill_missing, looks_like_db=ask)
        except BandRefusal as err:
            decided = str(err)
        if asked and len(key) == 2:  # this layout's answer depends on its pixels: kept per answer
            self._decided[key] = _ASKS_DB
            self._decided[key + (asked[0],)] = decided
        else:
            self._decided[key] = decided
        return decided


#: What :class:`Router` keeps for a layout whose route depends on whether its pixels look like dB.
_ASKS_DB = object()


def route_named(names: Sequence[str], modality: str, spec: ModalitySpec, fill_missing: bool, where: str) -> BandRoute:
    """The bands of an aligned set's ``modality`` (named ``names``) for that encoder: like
    ``--modality`` for a raster; :class:`BandRefusal` names ``where``."""
    bands = RasterBands(tuple(names), (False,) * len(names))
    try:
        return _route_to(bands, modality, spec, fill_missing)
    except BandRefusal as err:
        raise BandRefusal(f"{where}: {err}") from None
