"""``salibi explore``: an embeddings output (``.parquet`` or ``.h5`` from ``salibi embed``) as one
HTML page that opens from disk with no network.

::

    from salibi.explore import explore
    print(explore("chips.parquet", "chips.html").format())

What the page shows:

- every chip's footprint on a web map (MapLibre GL JS, carried inside the page:
  :mod:`~salibi.explore.page`), coloured by the first three principal components of its
  embedding as red, green and blue, with a legend giving each component's share of the variance;
- a click on a chip: its ``k`` nearest neighbours highlighted on the map and listed with their
  cosine similarity and distance -- precomputed with ``salibi search``'s own index, so the list is
  what ``salibi search OUT --query ROW`` answers (:mod:`~salibi.explore.neighbours`: across
  modalities in the shared space, within the chip's modality in the encoder space);
- filters by modality and by source;
- a base map under the chips when its tiles load (``basemap``; ``none`` for none).

The page sets ``data-rows`` on ``<body>`` to the number of chips drawn once they are drawn, and
``data-selected`` to the selected row: hooks for tests and scripts.
"""

from __future__ import annotations

from salibi.explore.build import ExploreSummary, explore, page_payload
from salibi.explore.page import DEFAULT_BASEMAP

__all__ = ["DEFAULT_BASEMAP", "ExploreSummary", "explore", "page_payload"]
