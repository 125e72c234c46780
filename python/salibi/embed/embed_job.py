"""A ``salibi embed`` run: the arguments checked, the ranks started (or joined), the checkpoint
loaded, the work planned, embedded and merged, and the summary of it all."""

from __future__ import annotations

import datetime
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from salibi.distributed.ranks import Rank, join, leave, shard
from salibi.embed.batches import PartWriter
from salibi.embed.inputs.routing import ModalitySpec
from salibi.embed.inputs.tiles import router_for
from salibi.embed.output.embeddings import output_format
from salibi.embed.output.store import EmbeddingStore, output_attrs
from salibi.embed.records import ReadSettings
from salibi.embed.settings import DEFAULTS, FILL_CHOICES, EmbedJob
from salibi.embed.work import Counts, Plan, embed_items, item_size, plan_work
from salibi.errors import InputError, MissingInputError, SalibiError
from salibi.vocabulary import EMBEDDING_SPACES, MODALITIES

__all__ = ["EmbedSummary", "checkpoint_specs", "embed", "embed_folder"]


@dataclass
class EmbedSummary:
    """What a run did (rank 0's view: every rank's counts summed)."""

    output: Path
    kind: str  # tiles, scenes, aligned set
    unit: str  # tiles, chips, rows
    found: int  # rows the input makes
    sources: int  # files (tiles, scenes) or aligned sets read
    embedded: int  # rows added by this run
    skipped: int  # rows already in the output (or its parts) before this run
    failed: int  # tiles, scenes or chips this run could not embed
    nodata: int  # chips over --max-nodata (recorded, not embedded)
    rows: int  # rows in the output now
    seconds: float
    device: str
    checkpoint: Path
    ranks: int = 1
    rank: int = 0  # this process's rank (under torchrun every rank returns; rank 0's has the totals)
    area_km2: float = 0.0  # ground covered by the rows this run embedded
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run
    notes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)  # band assumptions made (each said once, as a warning)
    # rank 0's wall time by stage (salibi.embed.work.STAGES), and "route": the readers' time routing
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def tiles_found(self) -> int:
        return self.found

    @property
    def rows_per_second(self) -> float:
        done = self.embedded + self.failed + self.nodata
        return done / self.seconds if self.seconds > 0 else 0.0

    tiles_per_second = rows_per_second

    @property
    def km2_per_second(self) -> float:
        return self.area_km2 / self.seconds if self.seconds > 0 else 0.0

    @property
    def _origin(self) -> str:
        return f" from {self.sources} scene(s)" if self.kind == "scenes" else ""

    def format(self, max_failures: int = 5) -> str:
        """The summary line (and the first failures, notes) that ``salibi embed`` prints."""
        nodata = f", {self.nodata} over --max-nodata" if self.nodata else ""
        area = f", {self.km2_per_second:.2f} km²/s" if self.area_km2 else ""
        ranks = f" x {self.ranks} ranks" if self.ranks > 1 else ""
        lines = [
            f"embedded {self.embedded}, skipped {self.skipped} (already in the output), failed {self.failed}{nodata} "
            f"of {self.found} {self.unit}{self._origin} in {self.seconds:.1f} s ({self.rows_per_second:.1f} {self.unit}/s{area}) on "
            f"{self.device}{ranks} -> {self.output} ({self.rows} rows)"
        ]
        for path, reason in self.failures[:max_failures]:
            lines.append(f"  failed: {path}: {reason}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {self.failed - max_failures} more (see failed_path, failed_reason)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def embed(
    source: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    **options: Any,
) -> EmbedSummary:
    """Embed ``source`` -- a folder of tiles, a folder of scenes or one raster with
    ``chip_size_m`` (chips every ``stride_m``), or an aligned set -- with the checkpoint into
    ``output`` (``.h5`` or ``.parquet``), skipping rows already there. ``options``: the fields of
    :class:`EmbedJob`. Acts as one rank under torchrun; starts ``gpus``/``cpu_procs`` local ranks
    itself. See :mod:`salibi.embed`."""
    job = EmbedJob(source=str(source), checkpoint=str(checkpoint), output=str(output), **options)
    _check(job)
    from salibi.distributed.launcher import launch_local
    from salibi.distributed.ranks import TorchrunEnv, check_gpus

    env = TorchrunEnv.from_environ()
    ranks = job.gpus or job.cpu_procs
    if env is not None or ranks <= 1:
        return _run_rank(job, env)
    if job.gpus:
        check_gpus(job.gpus)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        results = launch_local(_rank_main, (replace(job, device="cuda" if job.gpus else "cpu", launched=True),), ranks)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise SalibiError(
            f"rank {rank} failed (exit code {failure.exitcode}); its traceback is printed above"
        ) from None
    result = results[0]
    if isinstance(result, BaseException):
        raise result
    for assumption in result.assumptions:  # the ranks kept them for this process to say
        warnings.warn(assumption, UserWarning, stacklevel=2)
    return result


def embed_folder(
    tiles_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    output: str | os.PathLike[str],
    modality: str = DEFAULTS.modality,
    gsd: float | None = DEFAULTS.gsd,
    batch_size: int = DEFAULTS.batch_size,
    device: str = DEFAULTS.device,
    num_workers: int = DEFAULTS.num_workers,
    progress: bool = DEFAULTS.progress,
    window_patches: int = DEFAULTS.window_patches,
) -> EmbedSummary:
    """Embed every tile under ``tiles_dir`` (one row per tile): :func:`embed` with its defaults."""
    return embed(
        tiles_dir,
        checkpoint,
        output,
        modality=modality,
        gsd=gsd,
        batch_size=batch_size,
        device=device,
        num_workers=num_workers,
        progress=progress,
        window_patches=window_patches,
    )


def _check(job: EmbedJob) -> None:
    """Arguments that cannot work, before anything is loaded."""
    if not Path(job.source).exists():
        raise MissingInputError(
            f"{job.source}: no such file or folder; give a folder of tiles or scenes, a raster or an aligned set"
        )
    if job.modality != "auto" and job.modality not in MODALITIES:
        raise InputError(f"--modality {job.modality}: expected auto, {', '.join(MODALITIES)}")
    for option, value in (("--gsd", job.gsd), ("--chip-size-m", job.chip_size_m), ("--stride-m", job.stride_m)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{option} {value}: must be a positive number of metres")
    if job.stride_m is not None and job.chip_size_m is None:
        raise InputError("--stride-m: give --chip-size-m too (a stride steps the chips of a scene)")
    if not 0.0 <= job.max_nodata <= 1.0:
        raise InputError(f"--max-nodata {job.max_nodata:g}: a share of invalid pixels between 0 and 1")
    if job.space not in EMBEDDING_SPACES:
        raise InputError(f"--space {job.space}: expected {' or '.join(EMBEDDING_SPACES)}")
    if job.fill_missing not in FILL_CHOICES:
        raise InputError(f"--fill-missing {job.fill_missing}: expected {' or '.join(FILL_CHOICES)}")
    if job.batch_size < 1 or job.num_workers < 0 or job.window_patches < 1 or job.gpus < 0 or job.cpu_procs < 0:
        raise InputError(
            "--batch-size and the window must be at least 1, --num-workers, --gpus, --cpu-procs at least 0"
        )
    if job.gpus and job.cpu_procs:
        raise InputError("--gpus and --cpu-procs: give one of them")
    if Path(job.output).is_dir():
        raise InputError(f"-o {job.output}: is a folder; give a file name such as {Path(job.output) / 'embeddings.h5'}")
    kind = output_format(Path(job.output))
    if job.crs is not None and kind != "parquet":
        raise InputError(
            f"--crs {job.crs}: reprojects GeoParquet footprints; an HDF5 output keeps each row's bounds on its "
            "own CRS (write -o ....parquet, or leave --crs out)"
        )


def _rank_main(job: EmbedJob) -> EmbedSummary | SalibiError:
    """The entry point of a rank started by :func:`salibi.distributed.launcher.launch_local`: a user
    error comes back as a value, so the parent says it as one line."""
    from salibi.distributed.ranks import TorchrunEnv

    try:
        return _run_rank(job, TorchrunEnv.from_environ())
    except SalibiError as err:
        return err


def checkpoint_specs(model: Any) -> dict[str, ModalitySpec]:
    """Per modality of ``model``: its band count and the band names and statistics saved with it
    (a list of the wrong length counts as missing)."""
    specs = {}
    for m in model.modalities:
        info = model.modality_info.get(m) or {}
        channels = int(model.config.channels[m])
        bands, mean, std = (_per_band(info.get(key), channels) for key in ("bands", "mean", "std"))
        specs[m] = ModalitySpec(channels, bands, mean, std)
    return specs


def _per_band(values: Any, channels: int) -> tuple | None:
    return tuple(values) if values is not None and len(values) == channels else None


def _geometry_crs(requested: str | None) -> str:
    if requested is None:
        return ""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(requested).to_wkt()
    except CRSError as err:
        raise InputError(f"--crs {requested}: not a coordinate reference system GDAL knows ({err})") from None


def _run_rank(job: EmbedJob, env: Any) -> EmbedSummary:
    """Embed as the rank ``env`` describes (a single process when None); rank 0's summary."""
    # gloo for the few object collectives (also on GPUs); a rank may wait long for the slowest at
    # the final gather (items differ in cost).
    rank = join(env, job.device, backend="gloo", timeout=datetime.timedelta(hours=24))
    try:
        return _embed_as(job, rank)
    finally:
        leave()


def _embed_as(job: EmbedJob, context: Rank) -> EmbedSummary:
    from salibi.models import load_checkpoint

    started = time.perf_counter()
    output = Path(job.output)
    device = context.device
    model = load_checkpoint(job.checkpoint, map_location=device, attention=job.attention)
    if job.modality != "auto" and job.modality not in model.modalities:
        raise InputError(
            f"--modality {job.modality}: the checkpoint {model.checkpoint_path} has no {job.modality} encoder "
            f"(it has {', '.join(model.modalities)})"
        )
    settings = ReadSettings(
        modality=job.modality,
        default_gsd=job.gsd,
        specs=checkpoint_specs(model),
        patch_size=int(model.config.patch_size),
        window_patches=job.window_patches,
        band_names=job.band_names,
        fill_missing=job.fill_missing == "mean",
        max_nodata=job.max_nodata,
        per_modality=job.per_modality,
        joint=job.space == EMBEDDING_SPACES[0],
    )
    checkpoint_folder = Path(model.checkpoint_path or job.checkpoint)
    attrs = output_attrs(model, checkpoint_folder, job.chip_size_m, job.stride_m, _geometry_crs(job.crs), job.space)
    shared = job.space != EMBEDDING_SPACES[0]
    store = EmbeddingStore(output, attrs, int(model.config.proj_dim if shared else model.config.dim))
    stages = {"load": time.perf_counter() - started}
    try:
        message: Any = None
        if context.is_main:
            router = router_for(settings)
            try:
                done = store.prepare()
                plan = plan_work(
                    Path(job.source), settings, done, job.chip_size_m, job.stride_m, job.batch_size, router
                )
                message = ("ok", plan, done.run, done.notes)
            except SalibiError as err:
                message = ("error", err)
            stages["route"] = router.seconds
        message = context.broadcast(message)
        if message[0] == "error":
            raise message[1]
        _, plan, run, notes = message
        stages["plan"] = time.perf_counter() - started - stages["load"]
        writer = PartWriter(store, job.batch_size, run, context.rank)
        counts = embed_items(
            model,
            shard(plan.items, context.rank, context.world_size),
            settings,
            writer,
            device,
            job.batch_size,
            job.num_workers,
            job.progress and context.is_main,
            failures=plan.failures if context.is_main else [],
            warn=context.is_main and not job.launched,
            shared=shared,
        )
        every = context.gather(counts)  # all ranks finished and flushed their parts
        merging = time.perf_counter()
        rows = store.merge() if context.is_main else 0
        stages["merge"] = time.perf_counter() - merging
    finally:
        store.close()
    for stage, seconds in counts.seconds.items():
        stages[stage] = stages.get(stage, 0.0) + seconds
    return _summary(job, plan, every, rows, notes, started, device, checkpoint_folder, store, context, stages)


def _summary(
    job: EmbedJob,
    plan: Plan,
    every: list[Counts],
    rows: int,
    notes: list[str],
    started: float,
    device: Any,
    checkpoint: Path,
    store: EmbeddingStore,
    context: Rank,
    stages: dict[str, float],
) -> EmbedSummary:
    summary = EmbedSummary(
        output=Path(job.output),
        kind=plan.kind,
        unit=plan.unit,
        found=plan.found,
        sources=plan.sources,
        embedded=sum(c.embedded for c in every),
        skipped=plan.found - sum(item_size(item) for item in plan.items),
        failed=sum(c.failed for c in every),
        nodata=sum(c.nodata for c in every),
        rows=rows,
        seconds=time.perf_counter() - started,
        device=str(device),
        checkpoint=checkpoint,
        ranks=context.world_size,
        rank=context.rank,
        area_km2=sum(c.area_m2 for c in every) / 1e6,
        failures=[f for c in every for f in c.failures],
        notes=list(notes),
        assumptions=list(dict.fromkeys(a for c in every for a in c.assumptions)),
        stages=stages,
    )
    per_tile = sorted({m for c in every for m in c.per_tile_normalised})
    if per_tile:
        summary.notes.append(
            f"the checkpoint has no normalisation statistics for {', '.join(per_tile)}: "
            "those rows were normalised per image and band"
        )
    files = store.output_files()
    if len(files) > 1 or (files and files[0] != store.path):
        summary.notes.append(
            f"rows on {len(files)} CRSs: {', '.join(f.name for f in files)} (one GeoParquet file per CRS; "
            "--crs reprojects every footprint to one)"
        )
    return summary
