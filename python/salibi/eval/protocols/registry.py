"""The frozen-encoder protocols: what each is, its parameters, and running it on arrays.

A protocol takes features and labels as arrays (:class:`ProtocolInputs`), never a task on
disk, so any benchmark reader can feed it. Defaults follow torchgeo-bench:

=============  ================================  ===============================================
protocol       applies to                        what (module)
=============  ================================  ===============================================
``knn``        classification, multi-label       k = 5, Euclidean, majority vote (:mod:`.knn`)
``linear``     classification, multi-label       logistic regression, C swept on validation,
                                                 refitted on train + validation (:mod:`.linear_probe`)
``seg-linear`` segmentation                      linear head on last-block tokens (:mod:`.segmentation_heads`)
``seg-fpn``    segmentation                      FPN head on four evenly spaced blocks (same)
``majority``   every kind                        the most frequent training class: chance level
=============  ================================  ===============================================

``knn``, ``linear`` and ``majority`` are deterministic (one run whatever ``--seeds``); the
segmentation heads are trained from a seed. ``seg`` is the former name of ``seg-linear``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from salibi.errors import InputError
from salibi.eval.protocols import segmentation_heads as heads
from salibi.eval.protocols.knn import KNN_K, KNN_METRIC, KNN_METRICS, knn_probe
from salibi.eval.protocols.linear_probe import C_GRID, linear_probe
from salibi.eval.scoring.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Interval, bootstrap_interval
from salibi.eval.scoring.task_metrics import METRICS, METRICS_BY_KIND
from salibi.vocabulary import PROTOCOL_ALIASES, PROTOCOLS

__all__ = [
    "APPLIES_TO",
    "DETERMINISTIC",
    "ProtocolInputs",
    "ProtocolOutput",
    "ProtocolSettings",
    "fpn_blocks",
    "normalise_protocols",
    "run_protocol",
    "score_output",
]

#: The task kinds each protocol applies to.
APPLIES_TO = {
    "knn": ("classification", "multilabel"),
    "linear": ("classification", "multilabel"),
    "seg-linear": ("segmentation",),
    "seg-fpn": ("segmentation",),
    "majority": ("classification", "multilabel", "segmentation"),
}
#: Protocols whose result does not depend on a seed.
DETERMINISTIC = frozenset({"knn", "linear", "majority"})
#: Encoder blocks whose tokens feed the FPN head.
FPN_LEVELS = 4


def normalise_protocols(names: list[str] | tuple[str, ...]) -> list[str]:
    """Canonical protocol names (aliases resolved, duplicates dropped, order kept); unknown
    names are an :class:`~salibi.errors.InputError` naming the choices."""
    out: list[str] = []
    for name in names:
        canonical = PROTOCOL_ALIASES.get(name, name)
        if canonical not in PROTOCOLS:
            raise InputError(f"--protocol {name}: choose among {', '.join(PROTOCOLS)}")
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise InputError(f"--protocol: name at least one of {', '.join(PROTOCOLS)}")
    return out


def fpn_blocks(depth: int, levels: int = FPN_LEVELS) -> list[int]:
    """Indices of ``levels`` evenly spaced blocks of an encoder of ``depth`` blocks, ending with
    the last (12 blocks: 2, 5, 8, 11); fewer when the encoder has fewer distinct blocks."""
    return sorted({max(0, round((i + 1) * depth / levels) - 1) for i in range(levels)})


@dataclass(frozen=True)
class ProtocolSettings:
    """Every parameter of the protocols; :meth:`parameters` is what the results record."""

    knn_k: int = KNN_K
    knn_metric: str = KNN_METRIC
    c_grid: tuple[float, ...] = C_GRID
    seg_linear_steps: int = heads.SEG_STEPS
    fpn_epochs: int = heads.FPN_EPOCHS
    fpn_batch: int = heads.FPN_BATCH
    fpn_lr: float = heads.FPN_LR
    fpn_hidden: int = heads.FPN_HIDDEN
    resamples: int = BOOTSTRAP_RESAMPLES
    bootstrap_seed: int = BOOTSTRAP_SEED

    def __post_init__(self) -> None:
        if self.knn_k < 1:
            raise InputError(f"--knn-k {self.knn_k}: must be at least 1")
        if self.knn_metric not in KNN_METRICS:
            raise InputError(f"--knn-metric {self.knn_metric}: choose among {', '.join(KNN_METRICS)}")
        if self.resamples < 1:
            raise InputError(f"bootstrap resamples {self.resamples}: must be at least 1")

    def method(self, protocol: str) -> str:
        """torchgeo-bench's name of the protocol (``knn5``, ``linear``, ``seg-fpn``, ...)."""
        return f"knn{self.knn_k}" if protocol == "knn" else protocol

    def parameters(self, protocol: str) -> dict[str, Any]:
        if protocol == "knn":
            return {
                "k": self.knn_k,
                "metric": self.knn_metric,
                "vote": "majority, ties to the lowest class",
                "features": "mean-pooled tokens",
                "fit_on": "train",
                "multilabel_threshold": 0.5,
            }
        if protocol == "linear":
            return {
                "objective": "mean cross-entropy + ||W||^2/(2 C n), bias not penalised",
                "solver": "L-BFGS (torch, float64)",
                "c_grid": [min(self.c_grid), max(self.c_grid), len(self.c_grid)],
                "selection": "validation accuracy (multi-label: micro-AP), ties to the smaller C",
                "final_fit": "train + validation",
                "standardised": False,
            }
        if protocol == "seg-linear":
            return {"steps": self.seg_linear_steps, "batch": heads.SEG_BATCH, "lr": heads.SEG_LR, "optimizer": "AdamW"}
        if protocol == "seg-fpn":
            return {
                "levels": FPN_LEVELS,
                "epochs": self.fpn_epochs,
                "batch": self.fpn_batch,
                "lr": self.fpn_lr,
                "min_lr": heads.FPN_MIN_LR,
                "schedule": "cosine",
                "optimizer": "AdamW, no weight decay",
                "hidden": self.fpn_hidden,
                "scored": "last epoch",
            }
        return {"predicts": "the most frequent training class"}


@dataclass
class ProtocolInputs:
    """Features and labels of one task's splits (validation may be empty)."""

    kind: str
    n_classes: int
    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_tokens: np.ndarray | None = None  # (N, T, D) last block (seg-linear)
    test_tokens: np.ndarray | None = None
    train_blocks: np.ndarray | None = None  # (N, levels, T, D) (seg-fpn)
    test_blocks: np.ndarray | None = None
    grid: tuple[int, int] | None = None
    label_px_per_token: float = 1.0


@dataclass
class ProtocolOutput:
    """Test-set output of one protocol run: per-sample predictions and, where there are, scores."""

    prediction: np.ndarray
    score: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. best_c


def run_protocol(
    protocol: str, data: ProtocolInputs, settings: ProtocolSettings, seed: int = 0, device: Any = "cpu"
) -> ProtocolOutput:
    """Run ``protocol`` on ``data`` (see the module docstring)."""
    if data.kind not in APPLIES_TO.get(protocol, ()):
        raise InputError(f"protocol {protocol} does not apply to a {data.kind} task")
    if protocol == "knn":
        knn = knn_probe(
            data.train_x, data.train_y, data.test_x, data.kind, data.n_classes, settings.knn_k, settings.knn_metric
        )
        return ProtocolOutput(knn.prediction, knn.score)
    if protocol == "linear":
        probe = linear_probe(
            (data.train_x, data.train_y),
            (data.valid_x, data.valid_y),
            data.test_x,
            data.kind,
            data.n_classes,
            settings.c_grid,
            device,
        )
        return ProtocolOutput(probe.prediction, probe.score, {"best_c": probe.best_c})
    if protocol == "majority":
        prediction, score = heads.majority_predict(data.train_y, data.test_y, data.kind)
        return ProtocolOutput(prediction, score if score.size else None)
    if data.grid is None:
        raise InputError(f"protocol {protocol} needs patch tokens; extract features with tokens")
    if protocol == "seg-linear":
        assert data.train_tokens is not None and data.test_tokens is not None
        prediction = heads.linear_head_probe(
            data.train_tokens,
            data.train_y,
            data.test_tokens,
            data.grid,
            data.label_px_per_token,
            data.n_classes,
            seed=seed,
            steps=settings.seg_linear_steps,
            device=device,
        )
        return ProtocolOutput(prediction)
    assert data.train_blocks is not None and data.test_blocks is not None
    prediction = heads.fpn_head_probe(
        data.train_blocks,
        data.train_y,
        data.test_blocks,
        data.grid,
        data.label_px_per_token,
        data.n_classes,
        seed=seed,
        epochs=settings.fpn_epochs,
        batch_size=settings.fpn_batch,
        lr=settings.fpn_lr,
        hidden=settings.fpn_hidden,
        device=device,
    )
    return ProtocolOutput(prediction)


def score_output(
    kind: str, truth: np.ndarray, output: ProtocolOutput, n_classes: int, settings: ProtocolSettings
) -> dict[str, Interval]:
    """Every metric of ``kind`` on ``output`` with its bootstrap interval over test samples."""
    scores: dict[str, Interval] = {}
    for name in METRICS_BY_KIND[kind]:
        values = output.score if METRICS[name].reads == "score" else output.prediction
        if values is None:
            continue
        scores[name] = bootstrap_interval(name, truth, values, n_classes, settings.resamples, settings.bootstrap_seed)
    return scores
