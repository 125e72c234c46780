"""What one ``salibi eval geobench`` evaluates, and how: :class:`GeoBenchSettings`.

Its field defaults are the command's option defaults (``cli/eval.py`` reads them from here), so
this module imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from salibi.errors import InputError
from salibi.eval.protocols.knn import KNN_K, KNN_METRIC
from salibi.vocabulary import PROTOCOLS

if TYPE_CHECKING:
    from salibi.eval.protocols.registry import ProtocolSettings

__all__ = ["GeoBenchSettings"]


@dataclass(frozen=True)
class GeoBenchSettings:
    """Every setting of one evaluation (:func:`salibi.eval.evaluate.evaluate_geobench`).

    - ``root``: a GEO-Bench folder (``classification_v1.0/``, ``segmentation_v1.0/``) or a
      GEO-Bench-2 folder of tortilla files; None: ``$GEO_BENCH_DIR``, else ``~/dataset/geobench``.
      ``benchmark``: which of the two it is (``auto``: told apart by the files). ``features``
      (GEO-Bench-2): ``auto``, ``joint`` or one encoder.
    - ``tasks``: names (a list, or comma-separated); None: every task found.
    - ``partitions``: ``"all"`` (every train-size partition: the data-efficiency curve) or a
      list; otherwise the one ``partition``.
    - ``protocols`` (a list, or comma-separated) and ``seeds``: runs of each seeded protocol;
      ``knn_k`` and ``knn_metric``: the knn protocol's; ``protocol_settings``: every protocol
      parameter at once (e.g. fewer steps in a test), which then holds knn's too.
    - ``batch_size``, ``num_workers``, ``device`` (``auto``, ``cpu``, ``cuda``) and ``attention``
      (``auto``, ``sdpa``, ``flex``; :func:`salibi.models.build`): how the model is run.
    - ``save_features``: a folder for each task's split features (HDF5).
    """

    root: str | os.PathLike[str] | None = None
    benchmark: str = "auto"
    features: str = "auto"
    tasks: str | Iterable[str] | None = None
    partition: str = "default"
    partitions: str | Iterable[str] | None = None
    protocols: str | Iterable[str] = PROTOCOLS
    seeds: int = 1
    knn_k: int = KNN_K
    knn_metric: str = KNN_METRIC
    protocol_settings: ProtocolSettings | None = None
    batch_size: int = 64
    num_workers: int = 0
    device: str = "auto"
    attention: str = "auto"
    save_features: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        given = self.protocol_settings
        knn = (self.knn_k, self.knn_metric)
        if given is not None and knn not in {(KNN_K, KNN_METRIC), (given.knn_k, given.knn_metric)}:
            raise InputError("GeoBenchSettings: give knn_k and knn_metric inside protocol_settings, not beside it")

    def protocol_parameters(self) -> ProtocolSettings:
        """The protocols' parameters: ``protocol_settings``, else torchgeo-bench's with this knn."""
        from salibi.eval.protocols.registry import ProtocolSettings

        if self.protocol_settings is not None:
            return self.protocol_settings
        return ProtocolSettings(knn_k=self.knn_k, knn_metric=self.knn_metric)
