"""Embed tiles, scenes and aligned sets (``salibi embed``): one row per tile, per chip of a scene's
chip grid, or per chip of an aligned set (all its modalities fused), with its footprint.

::

    from salibi.embed import embed, embed_folder, read_embeddings
    summary = embed("tiles/", "runs/first", "out.h5")                         # one row per tile
    summary = embed("T31UDQ.tif", "runs/first", "out.parquet", chip_size_m=320)  # a chip grid, GeoParquet
    summary = embed("floods.h5", "runs/first", "joint.h5", per_modality=True)    # fused + per modality
    print(summary.format())
    table = read_embeddings("out.parquet")  # numpy columns: embedding, path, source, modality, bands, datetime, ...

What becomes a row:

1. The input. A folder: every file under it (recursively, sorted, hidden files and folders and
   ``*.parts`` skipped) ending in ``.tif``/``.tiff`` (GeoTIFF, COG), ``.jp2``/``.j2k``, ``.png``,
   ``.jpg``/``.jpeg``, all read with rasterio (a PNG/JPEG with a world file is georeferenced).
   Without ``chip_size_m`` each file is a *tile*: one row (``path`` = its path relative to the
   folder). With ``chip_size_m`` each file (or the one raster given) is a *scene* cut into a chip
   grid, one row per chip (:mod:`~salibi.embed.inputs.scenes`). An HDF5 file is an aligned set
   (``salibi align``): one ``joint`` row per chip through the cross-modal encoder, and with
   ``per_modality`` one row per modality too (:mod:`~salibi.embed.inputs.aligned_chips`).
2. GSD: from the georeference -- the coarser pixel axis, in metres (geographic CRSs converted on
   the WGS84 ellipsoid) -- else ``gsd``; rounded to 3 significant digits. Without either a tile
   fails with ``no georeference: pass --gsd``.
3. The band contract (:mod:`~salibi.embed.inputs.routing`): the encoder whose bands the raster has
   (names, Sentinel-2/Landsat numbering, colour interpretation; a PNG/JPEG is RGB), the GSD only
   to break ties; unnamed bands taken in order with one warning naming the assumption;
   ``band_names`` names a folder's bands; a missing band refused with the reason unless
   ``fill_missing="mean"``. Every row records the bands used (``B04,B03,B02``, ``1,2,3 (assumed)``,
   ``B4,B3,B02=mean``). Complex SAR becomes intensity ``|z|^2``, as ``salibi align`` stores it.
   Every row records when its raster was acquired (``datetime``, UTC) when its tags say so
   (:func:`salibi.rasters.acquisition_time`: ``ACQUISITION_DATETIME``, which ``salibi fetch``
   writes, else the TIFF DateTime tag); unknown otherwise. A chip of an aligned set has the time
   the set records for it (``/datetime``, which ``salibi align`` reads from the same tags).
4. Normalisation with the checkpoint's statistics (per image and band when it has none: the
   summary says so); invalid pixels (NaN, nodata, GDAL's mask) become 0, the band mean.
5. Size: padded, never cropped: zeros (the band mean) at the bottom and right to a multiple of
   the patch size; an image larger than ``window_patches`` x ``window_patches`` patches is cut
   into equal windows; the row is the mean of the tokens of patches holding pixels over all
   windows. A tile is read whole: give large rasters as scenes (``chip_size_m``), read window by
   window in bounded memory.
6. Batching (:mod:`~salibi.embed.batches`): equal (modality, GSD, size) windows ``batch_size``
   per forward pass on ``device`` (``auto``: CUDA when available, bf16 autocast); the input is
   read ahead of the model, in order, by two reader threads (``num_workers`` 0: GDAL releases
   the GIL) or ``num_workers`` DataLoader processes, each routing a band layout once
   (:mod:`~salibi.embed.inputs.reading`); ``gpus``/``cpu_procs`` ranks (or torchrun) take disjoint
   shards of the work (:mod:`salibi.distributed`). :attr:`EmbedSummary.stages` says where the
   wall time went.

7. Space (``space``, recorded as the output's ``space`` attribute): ``encoder`` (the default) keeps
   each modality's pooled encoder tokens, comparable within one modality (probes, maps, search of
   one modality); ``shared`` projects them with the modality's contrastive head into the space
   the pretraining loss compares across modalities
   (:meth:`~salibi.models.ScaleAlibiModel.project`), so a SAR row finds the optical rows of its
   place; an aligned set then gets one row per modality and no joint row (fused tokens have no
   projection). An output is continued only in its own space.

Output, by extension (:mod:`~salibi.embed.output.store`): ``.h5`` -- HDF5 ``salibi-embeddings``
version 2 (:mod:`~salibi.embed.output.hdf5`; version 1 files are read and continued; ``/datetime``
ISO 8601 text, ``""`` unknown) -- or ``.parquet`` -- GeoParquet 1.1 with the chip footprint as
geometry (:mod:`~salibi.embed.output.geoparquet`; one file per CRS, or reprojected with ``crs``;
``datetime`` a ``timestamp[us, tz=UTC]`` column, null unknown). Outputs written before the
``datetime`` column are read (unknown) and continued. Crash safety and resume: the finished output is only ever
replaced whole (written under a temporary name, then renamed). While a run goes on, finished rows,
failures and no-data skips are written as complete part files ``out.<ext>.parts/part-RUN-
RANK-SEQ.h5`` (the HDF5 layout): the first once ``batch_size`` rows are finished, then at most one
a second and at least one every 10 seconds; at the end the output and the parts are merged in one
pass into a new output (:mod:`~salibi.embed.output.merge`) and the parts deleted. A killed run keeps its parts; the
next run with the same output -- on any number of ranks -- skips every row already in the output
or a part (by ``path`` and ``modality``), retries failures and skipped chips and merges everything
into exactly one row per path and modality. A raster that changed since it was embedded is not
embedded again (use a new output for that). An output written with another checkpoint (sha256 of
``model.safetensors``), another chip grid or another footprint CRS is refused. One run per output
at a time (a lock on the parts folder).

Looking at the result: :mod:`~salibi.embed.search` (nearest neighbours, faiss) and
:mod:`~salibi.embed.maps` (a 2-D projection, a scene's principal components on its chip grid).
"""

from __future__ import annotations

from salibi.embed.batches import FLUSH_SECONDS
from salibi.embed.embed_job import EmbedSummary, embed, embed_folder
from salibi.embed.inputs.pixels import window_layout
from salibi.embed.inputs.routing import HIRES_BELOW_M
from salibi.embed.inputs.tiles import TILE_SUFFIXES, find_tiles, read_tile
from salibi.embed.output.embeddings import Embeddings, output_format, read_embeddings
from salibi.embed.output.store import PARTS_SUFFIX, EmbeddingStore
from salibi.embed.records import JOINT
from salibi.embed.settings import DEFAULT_WINDOW_PATCHES, FILL_CHOICES, EmbedJob
from salibi.vocabulary import EMBEDDINGS_FORMAT as FORMAT
from salibi.vocabulary import EMBEDDINGS_FORMAT_VERSION as FORMAT_VERSION

__all__ = [
    "DEFAULT_WINDOW_PATCHES",
    "FILL_CHOICES",
    "FLUSH_SECONDS",
    "FORMAT",
    "FORMAT_VERSION",
    "HIRES_BELOW_M",
    "JOINT",
    "PARTS_SUFFIX",
    "TILE_SUFFIXES",
    "EmbedJob",
    "EmbedSummary",
    "EmbeddingStore",
    "Embeddings",
    "embed",
    "embed_folder",
    "find_tiles",
    "output_format",
    "read_embeddings",
    "read_tile",
    "window_layout",
]
