"""``salibi fetch``: a training set's scenes from STAC archives, as the Scale-ALiBi authors built theirs.

For an area (``--bbox``, or web-mercator ``--tiles``) and dates, the catalog (Earth Search, the
Planetary Computer or any STAC API) is searched per modality, optical scenes over the cloud limit
are dropped, each optical scene is paired with the SAR (and high-res) scene of the same ground
nearest in time, a greedy cover chooses the groups, and only the area's window of each asset is
read (cloud-optimised GeoTIFFs over HTTP range requests) into ``DIR/<area>/<group>/<modality>-<bands>.tif``
with ``DIR/manifest.json`` recording what and where from. ``salibi align DIR -o set.h5`` turns
the folder into one aligned training set.

The parts, one idea each: :mod:`.hrefs` (what may be opened), :mod:`.manifest` (``salibi-fetch``
v1, merging shards), :mod:`.fetch_job` (the whole command); :mod:`.stac` -- ``catalogs`` (named catalogs,
signing), ``search`` (pystac-client through a guarded HTTP layer); :mod:`.planning` -- ``areas``
(box, tiles, shards), ``assets`` (by band metadata), ``cover`` (pairing, greedy cover), ``area_plan``
(areas to groups and files); :mod:`.reading` -- ``transfer`` (windowed reads, retries, resume),
``vsicurl`` (GDAL's bytes downloaded and cache).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FetchSummary", "fetch"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line reads the catalogs' names without the rest.
    if name in __all__:
        from salibi.fetch import fetch_job

        return getattr(fetch_job, name)
    raise AttributeError(name)
