"""Embed every tile of a folder (``salibi embed``): one row per tile with its georeference.

::

    from salibi.embed import embed_folder, read_embeddings
    summary = embed_folder("tiles/", "runs/first", "out.h5")   # -> EmbedSummary
    print(summary.format())
    table = read_embeddings("out.h5")       # numpy columns: embedding, path, modality, gsd, ...

How a tile becomes a row:

1. Tiles are the files under ``tiles_dir`` (recursively, sorted, hidden files and folders
   skipped) ending in ``.tif``/``.tiff`` (GeoTIFF, COG), ``.jp2``/``.j2k`` (JPEG 2000),
   ``.png``, ``.jpg``/``.jpeg``; everything else is ignored. All are read with rasterio
   (GDAL), so a PNG/JPEG with a world file or ``.aux.xml`` beside it is georeferenced.
2. Ground sampling distance (GSD): from the georeference -- the coarser of the two pixel axes,
   in metres (a geographic CRS is converted with the WGS84 ellipsoid at the tile's centre
   latitude) -- else ``gsd``; a tile with neither fails with ``no georeference: pass --gsd``.
   The GSD is rounded to 3 significant digits (real files say 0.49999 m), which is what is
   fed to the model and stored.
3. Modality: ``modality`` or, with ``auto``: SAR when the tile is complex, has exactly 2 bands,
   or holds floats whose median is negative (backscatter in dB); else high-res optical when the
   GSD is below 5 m; else low-res optical. A tile whose modality the checkpoint lacks fails.
4. Bands: the checkpoint modality's bands by name when all of them are found among the tile's
   band names (GDAL band descriptions or colour interpretation; ``B4`` = ``B04``, ``red`` =
   ``B04``, case and zero padding ignored); else red, green, blue when the encoder takes three
   bands and the tile names them; else the first bands the encoder takes. A tile with fewer
   bands fails. Complex SAR becomes intensity ``|z|^2``, as ``salibi align`` stores it.
5. Normalisation: ``(x - mean) / std`` with the checkpoint's statistics; a checkpoint saved
   without them is normalised per tile and band (the summary says so). Invalid pixels (NaN,
   the file's nodata value, GDAL's mask e.g. a PNG alpha band) become 0, the band mean.
6. Size: tiles are **padded**, never cropped: the normalised tile is padded with zeros (the
   band mean) at the bottom and right to a multiple of the patch size. A tile larger than
   ``window_patches`` x ``window_patches`` patches is cut into equal windows no larger than
   that. The row is the mean of the encoder tokens of the patches holding tile pixels (padding
   patches are left out), over all windows: a token-count-weighted mean of the windows. A tile
   is read whole into memory: cut multi-gigabyte scenes into tiles first (e.g. gdal_retile.py).
7. Windows of equal (modality, GSD, size) are batched, ``batch_size`` per forward pass, on
   ``device`` (``auto``: CUDA when available, with bf16 autocast); ``num_workers`` processes
   read tiles (a torch DataLoader).

Output: HDF5 ``salibi-embeddings`` version 1 (DESIGN.md "Data formats"). Crash safety and
resume: the finished ``out.h5`` is only ever replaced whole (written under a temporary name,
then renamed). While a run goes on, finished rows (and failures) are written as small complete
files ``out.h5.parts/part-NNNNNN.h5`` (also temporary name + rename) every ``batch_size`` tiles
and at least every 10 seconds; at the end ``out.h5`` and the parts are merged into a new
``out.h5`` and the parts deleted. A run that is killed keeps its parts; the next run with the
same output skips every tile already in ``out.h5`` or a part (by path relative to
``tiles_dir``), retries the failed ones and merges everything into exactly one row per tile.
A tile that changed since it was embedded is not embedded again (use a new output for that).
An output written with another checkpoint (sha256 of ``model.safetensors``) is refused. One
run per output at a time (a lock on the parts folder).

Modules: :mod:`~salibi.embed.tiles` (steps 1-6: a tile file to windows),
:mod:`~salibi.embed.run` (step 7 and :func:`embed_folder`), :mod:`~salibi.embed.store` (the output,
its parts, the lock, resume and merge).
"""

from __future__ import annotations

from salibi.embed.run import FLUSH_SECONDS, EmbedSummary, embed_folder, embed_tiles
from salibi.embed.store import PARTS_SUFFIX, Embeddings, EmbeddingStore, read_embeddings
from salibi.embed.tiles import (
    DEFAULT_WINDOW_PATCHES,
    HIRES_BELOW_M,
    TILE_SUFFIXES,
    band_keys,
    find_tiles,
    read_tile,
    window_layout,
)
from salibi.vocabulary import EMBEDDINGS_FORMAT as FORMAT
from salibi.vocabulary import EMBEDDINGS_FORMAT_VERSION as FORMAT_VERSION

__all__ = [
    "DEFAULT_WINDOW_PATCHES",
    "FLUSH_SECONDS",
    "FORMAT",
    "FORMAT_VERSION",
    "HIRES_BELOW_M",
    "PARTS_SUFFIX",
    "TILE_SUFFIXES",
    "EmbedSummary",
    "EmbeddingStore",
    "Embeddings",
    "band_keys",
    "embed_folder",
    "embed_tiles",
    "find_tiles",
    "read_embeddings",
    "read_tile",
    "window_layout",
]
