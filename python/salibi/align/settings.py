"""The options every kind of ``salibi align`` input shares (rasters, fetch folders, PMTiles
archives), with their defaults: the library's functions and the command read them from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlignSettings:
    #: Ground size of a chip's side in metres (rasters and fetch folders; PMTiles chips are tiles).
    tile_size_m: float = 960.0
    #: A chip with a larger share of invalid pixels in any modality is dropped.
    max_nodata: float = 0.05
    #: Share of the kept chips that goes to validation.
    val_fraction: float = 0.1
    #: Seed of the train/validation split.
    seed: int = 0


DEFAULTS = AlignSettings()
