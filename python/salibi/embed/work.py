"""The work of one ``salibi embed`` run: what the input is, the work items still to do (tiles, runs
of scene chips, batches of aligned chips) and the loop that feeds the model the chips read ahead
of it (:mod:`~salibi.embed.inputs.reading`), writing rows as parts; where its time goes (:class:`Counts`
``seconds``).
"""

from __future__ import annotations

import time
import warnings
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salibi.embed.batches import JointBatches, PartWriter, WindowBatches
from salibi.embed.inputs.aligned_chips import aligned_work, is_aligned_set, plan_aligned
from salibi.embed.inputs.reading import Item, ItemReader, cores_for_readers, item_size, read_items
from salibi.embed.inputs.routing import Router
from salibi.embed.inputs.scenes import ScenePlan, plan_scene, scene_work
from salibi.embed.inputs.tiles import TILE_SUFFIXES, TileWork, find_tiles, router_for
from salibi.embed.output.store import Done
from salibi.embed.records import JOINT, Chip, ReadSettings
from salibi.errors import InputError, MissingInputError
from salibi.progress import RateProgress

if TYPE_CHECKING:  # pragma: no cover
    import torch


__all__ = ["STAGES", "Counts", "Plan", "embed_items", "item_size", "plan_work"]

#: Where a run's wall time goes (:class:`Counts` ``seconds``, :class:`~salibi.embed.embed_job.EmbedSummary`
#: ``stages``): loading the checkpoint; checking the output and planning the work (scenes: their
#: georeference and routing); waiting for pixels the readers had not read yet; forward passes
#: (batching and pooling included); writing part files; the final merge. ``route`` is apart: time
#: the readers spent routing, overlapping the rest (not counted in DataLoader processes).
STAGES = ("load", "plan", "read", "model", "write", "merge")


@dataclass
class Plan:
    """What the input holds and what is left: ``kind`` (tiles, scenes, aligned set), ``found`` rows
    it makes, ``items`` still to embed, failures found while planning (unreadable scenes)."""

    kind: str
    found: int
    items: list[Item]
    sources: int = 1  # files (tiles, scenes) or sets read
    failures: list[Chip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return {"tiles": "tiles", "scenes": "chips"}.get(self.kind, "rows")


def plan_work(
    source: Path,
    settings: ReadSettings,
    done: Done,
    chip_size_m: float | None,
    stride_m: float | None,
    batch_size: int,
    router: Router | None = None,
) -> Plan:
    """The work items of ``source`` (a folder, a raster, an aligned set) not in ``done``; scenes
    routed by ``router`` (the run's, else a new one)."""
    if not source.exists():
        raise MissingInputError(
            f"{source}: no such file or folder; give a folder of tiles or scenes, a raster or an aligned set"
        )
    if source.is_file() and is_aligned_set(source):
        if chip_size_m is not None:
            raise InputError(f"--chip-size-m: {source} is an aligned set, whose chips are cut already; leave it out")
        aligned = plan_aligned(source, source.name, settings)
        items: list[Item] = list(aligned_work(aligned, done.rows, settings.per_modality, batch_size, settings.joint))
        return Plan("aligned set", aligned.count * len(aligned.rows_of(settings.per_modality, settings.joint)), items)
    if settings.per_modality:
        raise InputError("--per-modality: only an aligned set (salibi align output) has several modalities per chip")
    if source.is_file():
        if not source.name.lower().endswith(TILE_SUFFIXES):
            raise InputError(f"{source}: not a raster salibi embeds ({', '.join(TILE_SUFFIXES)}) nor an aligned set")
        found = [(source.name, source)]
    else:
        found = find_tiles(source)
        if not found:
            raise MissingInputError(
                f"{source}: no tiles found (looked for {', '.join(TILE_SUFFIXES)} files in it and its subfolders)"
            )
    if chip_size_m is None:
        tiles: list[Item] = [TileWork(rel, str(path)) for rel, path in found if rel not in done.rows]
        return Plan("tiles", len(found), tiles, sources=len(found))
    plan = Plan("scenes", 0, [], sources=len(found))
    router = router or router_for(settings)
    for rel, path in found:
        scene = plan_scene(rel, path, settings, chip_size_m, stride_m, router)
        if isinstance(scene, ScenePlan):
            plan.found += scene.chips
            plan.items.extend(scene_work(scene, done.rows))
        else:  # the whole scene failed: one failure, no chips
            plan.failures.append(scene)
    return plan


@dataclass
class Counts:
    """What one rank did (gathered by rank 0 for the summary)."""

    embedded: int = 0
    failed: int = 0
    nodata: int = 0
    area_m2: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), the first few
    per_tile_normalised: set[str] = field(default_factory=set)
    assumptions: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # read, model, write, route (see STAGES)


_KEEP_FAILURES = 50


def embed_items(
    model: Any,
    items: list[Item],
    settings: ReadSettings,
    writer: PartWriter,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    progress: bool,
    failures: list[Chip] = (),  # type: ignore[assignment]
    warn: bool = True,
    shared: bool = False,
) -> Counts:
    """Embed ``items``, writing rows, failures and no-data skips as parts through ``writer``.
    ``warn``: say each band assumption once (as a warning) when it is first made; ``shared``: rows
    in the shared contrastive space (each modality's pooled tokens projected), else the encoder's."""
    counts = Counts()
    bar = RateProgress("embedding", "rows", sum(item_size(i) for i in items), progress)

    def on_row(chip: Chip, embedding: Any) -> None:
        writer.add_row(chip, embedding)
        counts.embedded += 1
        counts.area_m2 += chip.area_m2
        bar.advance(1)

    def on_failure(chip: Chip) -> None:
        writer.add_failure(chip)
        counts.failed += 1
        if len(counts.failures) < _KEEP_FAILURES:
            counts.failures.append((chip.path, chip.failure or ""))

    for chip in failures:
        on_failure(chip)
    batches = WindowBatches(model, device, batch_size, on_row, after_batch=writer.flush, shared=shared)
    joint = JointBatches(model, device, batch_size, on_row, after_batch=writer.flush)
    reader = ItemReader(items, settings)
    waited = 0.0
    try:
        with cores_for_readers(device):
            with closing(read_items(reader, batch_size, num_workers)) as read:
                while True:
                    started = time.perf_counter()
                    chips = next(read, None)
                    waited += time.perf_counter() - started
                    if chips is None:
                        break
                    _take(chips, counts, writer, batches, joint, on_failure, bar, warn)
                    writer.flush()
            batches.drain()
            joint.drain()
    finally:
        bar.close()
        writer.flush(force=True)  # keep what finished, also on Ctrl-C
    counts.seconds = {
        "read": waited,
        "model": batches.seconds + joint.seconds,
        "write": writer.seconds,
        "route": reader.router.seconds,
    }
    return counts


def _take(
    chips: list[Chip],
    counts: Counts,
    writer: PartWriter,
    batches: WindowBatches,
    joint: JointBatches,
    on_failure: Any,
    bar: RateProgress,
    warn: bool,
) -> None:
    """Queue the ready chips of an item for the model; record its failures and no-data skips."""
    for chip in chips:
        if chip.failure is not None:
            on_failure(chip)
            bar.advance(1)
        elif chip.skipped is not None:
            writer.add_skip(chip)
            counts.nodata += 1
            bar.advance(1)
        else:
            _note(chip, counts, warn)
            (joint if chip.modality == JOINT else batches).add(chip)


def _note(chip: Chip, counts: Counts, warn: bool) -> None:
    if chip.per_tile_normalised:
        counts.per_tile_normalised.add(chip.modality)
    if chip.assumption and chip.assumption not in counts.assumptions:
        counts.assumptions.append(chip.assumption)
        if warn:
            warnings.warn(chip.assumption, UserWarning, stacklevel=2)
