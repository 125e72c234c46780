"""Which encoders of a checkpoint a GEO-Bench-2 task feeds, and with which bands.

Every source of a dataset (:mod:`salibi.eval.geobench2.datasets`) feeds the encoder of its sensor
family (:data:`~salibi.eval.geobench2.conventions.SENSOR_MODALITY`: Sentinel-2, HLS, Landsat ->
``lores``; Sentinel-1 and other SAR -> ``sar``; aerial, WorldView, Planet -> ``hires``) at its own
GSD. Within an encoder, the checkpoint's bands are matched to the source's by identity exactly as
for GEO-Bench v1 (:func:`salibi.eval.band_matching.map_task_bands`: same band, alias, or wavelength; an
encoder is usable when 75 % of its bands match). When two sources of a dataset feed one encoder
(SpaceNet 2's multispectral and pan images, PASTIS' ascending and descending S1), the better
match feeds it, the first listed on a tie.

``features`` chooses what the protocols see:

- ``auto`` (default): ``joint`` when two or more of the task's encoders are usable, else the one;
- ``joint``: the cross-modal encoder's tokens of every usable encoder
  (:meth:`~salibi.models.scale_alibi.ScaleAlibiModel.encode_joint`), pooled as ``embed_joint``
  pools them; the task is skipped when fewer than two are usable;
- ``sar``, ``lores`` or ``hires``: that encoder alone; skipped when it is not usable.

The result, :class:`RoutedInputs`, is a :class:`~salibi.eval.band_matching.TaskInputs` (what the feature
extractor takes) that also says whether to fuse, which source feeds each encoder, and the record
written to the results as ``inputs[TASK]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from salibi.eval.band_matching import ModalityInput, TaskInputs, map_task_bands
from salibi.eval.geobench2.conventions import Source
from salibi.eval.geobench2.reader import GeoBench2Task
from salibi.vocabulary import EVAL_FEATURES, MODALITIES

__all__ = ["FEATURES", "RoutedInputs", "route_inputs"]

FEATURES = EVAL_FEATURES  # choices of --features


@dataclass
class RoutedInputs(TaskInputs):
    """:class:`TaskInputs` of a GEO-Bench-2 task (see the module docstring)."""

    joint: bool = False
    #: encoder -> the source feeding it
    sources: dict[str, str] = field(default_factory=dict)
    #: what ``inputs[TASK]`` of the results records
    record: dict[str, Any] = field(default_factory=dict)


def route_inputs(
    task: GeoBench2Task,
    checkpoint_bands: Mapping[str, Sequence[str]],
    checkpoint_gsd: Mapping[str, float | None] | None = None,
    features: str = "auto",
) -> RoutedInputs:
    """The encoders ``task`` feeds in a checkpoint with ``checkpoint_bands`` per modality."""
    if features not in FEATURES:
        raise ValueError(f"features {features!r}: choose among {', '.join(FEATURES)}")
    checkpoint_gsd = checkpoint_gsd or {}
    usable: dict[str, tuple[Source, ModalityInput]] = {}
    reasons: list[str] = []
    for source in task.routed_sources:
        modality = source.modality
        assert modality is not None
        if modality not in checkpoint_bands:
            reasons.append(f"{source.name} ({source.sensor}) feeds {modality}, which the checkpoint lacks")
            continue
        one_source = replace(
            task.specs, bands=tuple(b for b in task.specs.bands if b.name.startswith(f"{source.name}:"))
        )
        mapped = map_task_bands(one_source, {modality: checkpoint_bands[modality]}, checkpoint_gsd)
        if not mapped.modalities:
            reasons.append(f"{source.name}: {mapped.reason}")
            continue
        found = mapped.modalities[0]
        if modality not in usable or _quality(found) < _quality(usable[modality][1]):
            usable[modality] = (source, found)
    chosen = _choose(usable, features)
    if isinstance(chosen, str):
        reason = chosen + (f" ({'; '.join(reasons)})" if reasons else "")
        return RoutedInputs([], reason, record={"features": features, "reason": reason})
    ordered = _label_grid_first(task, [m for m in MODALITIES if m in chosen], usable)
    joint = len(ordered) > 1
    inputs = RoutedInputs(
        [usable[m][1] for m in ordered],
        joint=joint,
        sources={m: usable[m][0].name for m in ordered},
    )
    inputs.record = _record(task, inputs, usable, "joint" if joint else ordered[0], reasons)
    return inputs


def _quality(found: ModalityInput) -> tuple[int, float]:
    """Smaller is better: fewer missing bands, then stronger matches."""
    return len(found.missing), found.score / max(1, len(found.matches))


def _choose(usable: dict[str, tuple[Source, ModalityInput]], features: str) -> list[str] | str:
    """The encoders to use, or why none."""
    names = ", ".join(m for m in MODALITIES if m in usable) or "none"
    if not usable:
        return "no encoder of the checkpoint matches the task's bands"
    if features == "auto":
        return list(usable)
    if features == "joint":
        if len(usable) < 2:
            return f"--features joint needs two or more of the task's modalities in the checkpoint; usable: {names}"
        return list(usable)
    if features not in usable:
        return f"--features {features}: the task feeds no usable {features} encoder (usable: {names})"
    return [features]


def _label_grid_first(
    task: GeoBench2Task, order: list[str], usable: dict[str, tuple[Source, ModalityInput]]
) -> list[str]:
    """Segmentation labels follow the first encoder's grid: put one on the label's grid first."""
    if task.kind != "segmentation" or len(order) < 2:
        return order
    sizes = task.source_sizes()
    label = tuple(task.specs.patch_size)
    on_grid = [m for m in order if sizes.get(usable[m][0].name) == label]
    return on_grid[:1] + [m for m in order if m not in on_grid[:1]]


def _record(
    task: GeoBench2Task,
    inputs: RoutedInputs,
    usable: dict[str, tuple[Source, ModalityInput]],
    features: str,
    reasons: list[str],
) -> dict[str, Any]:
    gsds = task.source_gsds()
    modalities = []
    for found in inputs.modalities:
        source = usable[found.modality][0]
        modalities.append(
            {
                "modality": found.modality,
                "source": source.name,
                "sensor": source.sensor,
                "gsd": gsds.get(source.name, source.gsd),
                "bands": {m.checkpoint_band: m.task_band for m in found.matches},
            }
        )
    unused = {s.name: f"feeds {s.modality}; {_why_unused(s, inputs, usable)}" for s in task.routed_sources
              if s.name not in inputs.sources.values()}  # fmt: skip
    for source in task.convention.sources:
        if source.modality is None:
            unused[source.name] = "no salibi encoder takes it"
    unused.update(task.convention.unused)
    record: dict[str, Any] = {"features": features, "modalities": modalities, "unused": unused}
    if reasons:
        record["unmatched"] = reasons
    return record


def _why_unused(source: Source, inputs: RoutedInputs, usable: dict[str, tuple[Source, ModalityInput]]) -> str:
    modality = source.modality
    if modality in inputs.sources:
        return f"{inputs.sources[modality]} feeds that encoder"
    if modality in usable:
        return "not chosen by --features"
    return "no match in the checkpoint"
