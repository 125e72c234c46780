"""Pretraining: the loop every rank runs, and the entry point that starts the ranks.

One optimizer step consumes one *global* batch (``batch_size`` samples, drawn from one file by
:class:`~salibi.train.sampler.GlobalBatchPlan`), split over the ranks and, within a rank, over
``accumulate`` micro-batches. Mask noise is drawn per global batch from a generator seeded by
(seed, step, modality) and sliced per sample, so a run gives the same masks and the same losses
on 1 process or N ranks, and after ``--resume``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, InputError, OutputExistsError, SalibiError
from salibi.fileio import write_atomic

#: Settings that define a run; ``--resume`` keeps the stored ones and refuses different values.
RUN_DEFINING = (
    "data",
    "model",
    "variant",
    "batch_size",
    "lr",
    "min_lr_ratio",
    "warmup_steps",
    "weight_decay",
    "clip_grad",
    "mask_ratio",
    "seed",
    "accumulate",
)
RUN_FORMAT = "salibi-run"


@dataclass
class PretrainConfig:
    """Everything ``salibi pretrain`` takes. ``batch_size`` is the global batch of one optimizer
    step (over all ranks and accumulation steps); ``lr`` is the peak learning rate for a global
    batch of 256, scaled linearly to the actual global batch."""

    data: list[str]
    out: str
    model: str = "tiny"
    variant: str = "scale-alibi"
    batch_size: int = 64
    max_steps: int | None = None
    epochs: float | None = None
    lr: float = 1e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int | None = None
    weight_decay: float = 0.05
    clip_grad: float = 1.0
    mask_ratio: float = 0.5
    seed: int = 0
    accumulate: int = 1
    num_workers: int = 0
    amp: bool | None = None
    save_every: int = 500
    keep: int = 3
    log_every: int = 10
    log: list[str] = field(default_factory=list)
    resume: bool = False
    gpus: int | None = None
    cpu_procs: int = 1
    progress: bool = True

    @property
    def use_cuda(self) -> bool:
        return bool(self.gpus)

    def world_size(self) -> int:
        """Ranks in the job: torchrun's WORLD_SIZE when it started us, else the local count."""
        if all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
            return int(os.environ["WORLD_SIZE"])
        return self.gpus if self.gpus else self.cpu_procs


@dataclass
class Plan:
    """What the parent process worked out before starting ranks."""

    config: PretrainConfig
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int
    start_step: int
    resume_from: str | None


# -- the schedule ---------------------------------------------------------------------------------


def learning_rate(step: int, config: PretrainConfig, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it."""
    peak = config.lr * config.batch_size / 256
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def mask_noise(
    images: dict[str, Any], patch: int, seed: int, step: int, global_batch: int, rows: np.ndarray
) -> dict[str, Any]:
    """Per-sample mask noise: rows ``rows`` of a (global_batch, N_m) draw seeded by
    (seed, step, modality), so a sample's mask depends only on where it sits in its global
    batch -- not on the rank or micro-batch that processes it."""
    import torch

    from salibi.models.config import MODALITIES

    noise = {}
    for name, tensor in images.items():
        patches = (tensor.shape[-2] // patch) * (tensor.shape[-1] // patch)
        key = np.random.SeedSequence([seed, step, MODALITIES.index(name)]).generate_state(1)[0]
        draw = torch.rand(global_batch, patches, generator=torch.Generator().manual_seed(int(key)))
        noise[name] = draw[torch.from_numpy(rows)].to(tensor.device)
    return noise


# -- preflight in the parent ------------------------------------------------------------------------


def _read_run(run: Path) -> dict[str, Any]:
    path = run / "run.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: unreadable ({err}); this is not a salibi run folder") from None
    if document.get("format") != RUN_FORMAT:
        raise DataFormatError(f"{path}: not a salibi run description")
    return document


def prepare(config: PretrainConfig, explicit: set[str] | None = None) -> Plan:
    """Check everything a user can get wrong before any rank starts; work out the schedule and
    where to resume. ``explicit``: option names the user set (checked against a resumed run)."""
    from salibi.data import AlignedDataset
    from salibi.train import checkpoints

    if config.gpus:
        from salibi.train.distributed import check_gpus

        check_gpus(config.gpus)
    run = Path(config.out)
    existing = checkpoints.step_checkpoints(run)
    resume_from = None
    if config.resume and (run / "run.json").is_file():
        stored = _read_run(run)["config"]
        conflicts = [
            f"--{name.replace('_', '-')} {getattr(config, name)!r} (the run has {stored[name]!r})"
            for name in RUN_DEFINING
            if explicit is not None
            and name in explicit
            and name != "data"
            and stored.get(name) != getattr(config, name)
        ]
        if conflicts:
            raise InputError(
                f"{run} was started with other settings: {'; '.join(conflicts)}. "
                "Drop those options to resume it, or start a new run with another --out"
            )
        for name in RUN_DEFINING:
            if name in stored:
                setattr(config, name, stored[name])
    elif existing and not config.resume:
        raise OutputExistsError(
            f"{run} already holds a run (checkpoints up to step {existing[-1][0]}): pass --resume to continue it, "
            "or choose another --out"
        )

    if config.batch_size % (config.world_size() * config.accumulate):
        raise InputError(
            f"--batch-size {config.batch_size} is the global batch: it must be divisible by the number of ranks "
            f"({config.world_size()}) times --accumulate ({config.accumulate})"
        )
    dataset = AlignedDataset(config.data, split="train")
    if len(dataset.modalities) < 2:
        raise InputError(
            f"{', '.join(config.data)}: pretraining needs two modalities present in every file; found "
            f"{', '.join(dataset.modalities) or 'none'}"
        )
    from salibi.train.sampler import GlobalBatchPlan

    plan = GlobalBatchPlan(dataset.file_indices(), config.batch_size, config.seed)
    steps_per_epoch = plan.steps_per_epoch
    if steps_per_epoch == 0:
        largest = max((len(i) for i in dataset.file_indices()), default=0)
        raise InputError(
            f"--batch-size {config.batch_size} is larger than the training split of every file (largest: {largest} "
            "chips): lower --batch-size or align more data"
        )
    if config.max_steps is not None:
        total = config.max_steps
    else:
        total = math.ceil((config.epochs if config.epochs is not None else 100) * steps_per_epoch)
    if total < 1:
        raise InputError("--max-steps/--epochs give no training step; ask for at least one")
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, min(2000, round(0.05 * total)))

    start = 0
    if config.resume and existing:
        found = checkpoints.newest_resumable(run)
        assert found is not None
        folder, meta = found
        start, resume_from = int(meta["step"]), str(folder)
    return Plan(config, total, steps_per_epoch, warmup, start, resume_from)


# -- each rank ------------------------------------------------------------------------------------


class StopRequest:
    """SIGTERM/SIGINT: finish the current step, save, exit. A second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name


def _to_device(batch: dict[str, Any], modalities: tuple[str, ...], device: Any) -> tuple[dict[str, Any], dict]:
    images = {m: batch[m].to(device, non_blocking=True) for m in modalities}
    return images, {"gsd": {m: batch["gsd"][m] for m in modalities}}


def rank_main(plan: Plan) -> dict[str, Any]:
    """The entry point of every rank (also of a single process)."""
    from salibi.train import distributed

    rank = distributed.setup(plan.config.use_cuda)
    try:
        result = _train(plan, rank)
    finally:
        distributed.teardown()
    if result["stopped_by"] and rank.distributed:
        # The launcher (ours or torchrun) is shutting the job down and will not collect return
        # values: leave now that the checkpoint is saved, instead of waiting to be killed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return result


def _train(plan: Plan, rank: Any) -> dict[str, Any]:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader

    from salibi.data import AlignedDataset
    from salibi.models import build
    from salibi.train import checkpoints, distributed
    from salibi.train.sampler import GlobalBatchPlan, MicroBatchSampler, local_micro_batches

    config = plan.config
    run = Path(config.out)
    stop = StopRequest()
    stop.install()

    dataset = AlignedDataset(config.data, split="train")
    info = dataset.modality_info
    modalities = tuple(dataset.modalities)
    batches = GlobalBatchPlan(dataset.file_indices(), config.batch_size, config.seed)

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    coarsest = max(float(info[m]["gsd"]) for m in modalities)
    from salibi.models import ModelConfig

    patch = ModelConfig.for_size(config.model).patch_size
    model = build(
        config.model,
        variant=config.variant,
        modalities=modalities,
        channels={m: int(info[m]["channels"]) for m in modalities},
        mask_ratio=config.mask_ratio,
        ref_length=patch * coarsest,
    )
    model.to(rank.device)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "temperature" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "temperature" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate(0, config, plan.total_steps, plan.warmup_steps),
        betas=(0.9, 0.95),
    )

    if rank.distributed:
        # Each rank found its checkpoint itself: they must agree (a run folder that not every
        # node sees would start some ranks afresh).
        steps = torch.tensor([plan.start_step, -plan.start_step], dtype=torch.float64, device=rank.device)
        torch.distributed.all_reduce(steps, op=torch.distributed.ReduceOp.MAX)
        if steps[0].item() != -steps[1].item():
            raise SalibiError(
                f"ranks disagree on where {run} resumes (steps {-steps[1].item():.0f} to {steps[0].item():.0f}): "
                "put --out on a filesystem that every node shares"
            )
    step = 0
    if plan.resume_from is not None:
        folder = Path(plan.resume_from)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(rank.device)))
        tensors, meta = checkpoints.load_trainer_state(folder)
        optimizer.load_state_dict(checkpoints.unflatten_optimizer(tensors, meta["optimizer"]))
        if not distributed.restore_rng_state(tensors, rank):
            warnings.warn(
                f"{folder}: no RNG state for rank {rank.rank} (the run had {meta['world_size']} ranks)",
                UserWarning,
                stacklevel=1,
            )
        step = int(meta["step"])

    ddp = (
        DistributedDataParallel(model, device_ids=[rank.device.index] if rank.device.type == "cuda" else None)
        if rank.distributed
        else model
    )
    amp = config.amp if config.amp is not None else rank.device.type == "cuda"
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if amp and rank.device.type == "cuda"
        else (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if amp
        else nullcontext
    )

    logger = _Logger(run, config, plan, rank.is_main, start_step=step)
    world = rank.world_size
    last_saved: Path | None = None
    result: dict[str, Any] = {"step": step, "stopped_by": None}
    model.train()
    try:
        while step < plan.total_steps and stop.signal_name is None:
            epoch, in_epoch = divmod(step, plan.steps_per_epoch)
            epoch_end = min(plan.steps_per_epoch, in_epoch + plan.total_steps - step)
            sampler = MicroBatchSampler(batches, epoch, in_epoch, rank.rank, world, config.accumulate, epoch_end)
            loader = DataLoader(
                dataset, batch_sampler=sampler, num_workers=config.num_workers, pin_memory=rank.device.type == "cuda"
            )
            loader_iter = iter(loader)
            global_rows = np.arange(config.batch_size)
            micro_rows = local_micro_batches(global_rows, rank.rank, world, config.accumulate)
            for _ in range(in_epoch, epoch_end):
                lr = learning_rate(step, config, plan.total_steps, plan.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                sums = {"loss": 0.0, "contrastive": 0.0, "reconstruction": 0.0}
                for k in range(config.accumulate):
                    batch = next(loader_iter)
                    images, extra = _to_device(batch, modalities, rank.device)
                    noise = mask_noise(images, patch, config.seed, step, config.batch_size, micro_rows[k])
                    sync = ddp.no_sync() if rank.distributed and k < config.accumulate - 1 else nullcontext()
                    with sync:
                        with autocast():
                            out = ddp({**images, **extra}, noise=noise)
                        (out["loss"] / config.accumulate).backward()
                    for key in sums:
                        sums[key] += float(out[key].detach()) / config.accumulate
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                optimizer.step()
                step += 1
                logger.step(
                    step, {**sums, "lr": lr, "grad_norm": float(grad_norm), "epoch": epoch}, samples=config.batch_size
                )
                stopping = distributed.any_rank(stop.signal_name is not None, rank)
                if stopping and stop.signal_name is None:
                    stop.signal_name = "SIGTERM (another rank)"
                if step % config.save_every == 0 or step == plan.total_steps or stopping:
                    last_saved = _save(run, step, epoch, model, optimizer, dataset, config, plan, rank)
                if stopping:
                    break
            del loader_iter, loader
    finally:
        logger.close()
    result.update(
        step=step, stopped_by=stop.signal_name, checkpoint=str(last_saved) if last_saved else None, last=logger.last
    )
    return result


def _save(
    run: Path,
    step: int,
    epoch: int,
    model: Any,
    optimizer: Any,
    dataset: Any,
    config: PretrainConfig,
    plan: Plan,
    rank: Any,
) -> Path | None:
    """Every rank contributes its RNG state; rank 0 writes the checkpoint."""
    from salibi.models import save_checkpoint
    from salibi.train import checkpoints, distributed

    rng = distributed.gather_rng_states(rank)
    if not rank.is_main:
        return None
    info = dataset.modality_info
    tensors, optimizer_meta = checkpoints.flatten_optimizer(optimizer.state_dict())
    meta = {
        "step": step,
        "epoch": epoch,
        "world_size": rank.world_size,
        "optimizer": optimizer_meta,
        "total_steps": plan.total_steps,
        "config": asdict(config),
    }

    def write_model(folder: Path) -> None:
        save_checkpoint(
            model,
            folder,
            bands={m: info[m]["bands"] for m in model.modalities},
            gsd={m: info[m]["gsd"] for m in model.modalities},
            mean={m: info[m]["mean"] for m in model.modalities},
            std={m: info[m]["std"] for m in model.modalities},
            step=step,
            data=[str(p) for p in config.data],
            variant=config.variant,
        )

    folder = checkpoints.save_training_checkpoint(run, step, write_model, {**tensors, **rng}, meta)
    checkpoints.prune(run, config.keep)
    return folder


class _Logger:
    """Rank 0's metrics.jsonl, optional TensorBoard, and a progress display."""

    def __init__(self, run: Path, config: PretrainConfig, plan: Plan, active: bool, start_step: int) -> None:
        self.active, self.config, self.plan = active, config, plan
        self.last: dict[str, Any] = {}
        self.window_start, self.window_samples = time.perf_counter(), 0
        self.writer = None
        self.progress = None
        if not active:
            return
        run.mkdir(parents=True, exist_ok=True)
        self.path = run / "metrics.jsonl"
        _truncate_metrics(self.path, start_step)
        if "tensorboard" in config.log:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=start_step + 1)
        if config.progress and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.progress.add_task("pretrain", total=plan.total_steps, completed=start_step, status="")
            self.progress.start()

    def step(self, step: int, values: dict[str, float], samples: int) -> None:
        if not self.active:
            return
        self.window_samples += samples
        if step % self.config.log_every and step != self.plan.total_steps:
            if self.progress is not None:
                self.progress.update(self.task, completed=step)
            return
        elapsed = time.perf_counter() - self.window_start
        record = {
            "step": step,
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()},
            "samples_per_s": round(self.window_samples / max(elapsed, 1e-9), 2),
        }
        self.window_start, self.window_samples = time.perf_counter(), 0
        self.last = record
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in ("loss", "contrastive", "reconstruction", "lr", "grad_norm", "samples_per_s"):
                self.writer.add_scalar(f"train/{key}", record[key], step)
        status = (
            f"loss {record['loss']:.4f}  contrastive {record['contrastive']:.4f}  "
            f"reconstruction {record['reconstruction']:.4f}  {record['samples_per_s']:.1f} samples/s"
        )
        if self.progress is not None:
            self.progress.update(self.task, completed=step, status=status)
        elif self.config.progress:
            print(f"step {step}/{self.plan.total_steps}  {status}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.writer is not None:
            self.writer.close()


def _truncate_metrics(path: Path, start_step: int) -> None:
    """On resume, drop the records of steps after the checkpoint (the interrupted run logged
    them, the resumed run logs them again)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= start_step
    ]
    write_atomic(path, "".join(line + "\n" for line in kept))


# -- the entry point ------------------------------------------------------------------------------


def pretrain(config: PretrainConfig, explicit: set[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a pretraining run; returns rank 0's summary. Acts as one rank when
    started by torchrun; otherwise starts ``--gpus``/``--cpu-procs`` local ranks itself."""
    from salibi.train import distributed

    plan = prepare(config, explicit)
    run = Path(config.out)
    if plan.start_step >= plan.total_steps:
        return {
            "step": plan.start_step,
            "stopped_by": None,
            "already_complete": True,
            "checkpoint": plan.resume_from,
            "total_steps": plan.total_steps,
        }
    launched = distributed.launched_by_torchrun()
    if not launched or os.environ.get("RANK") == "0":
        run.mkdir(parents=True, exist_ok=True)
        document = {
            "format": RUN_FORMAT,
            "format_version": 1,
            "config": asdict(config),
            "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch,
        }
        write_atomic(run / "run.json", json.dumps(document, indent=2) + "\n")
    world = config.world_size()
    if launched or world == 1:
        result = rank_main(plan)
    else:
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        try:
            results = distributed.launch_local(rank_main, (plan,), world)
        except ChildFailedError as err:
            rank, failure = err.get_first_failure()
            raise SalibiError(
                f"rank {rank} failed (exit code {failure.exitcode}); its traceback is printed above"
            ) from None
        except SignalException as err:
            # The launcher forwarded the signal; the ranks saved a checkpoint before exiting.
            step, folder = newest_checkpoint(run)
            return {"step": step, "stopped_by": err.sigval.name, "checkpoint": folder, "total_steps": plan.total_steps}
        result = results[0]
    result["total_steps"] = plan.total_steps
    return result


def newest_checkpoint(run: Path) -> tuple[int, str | None]:
    from salibi.train import checkpoints

    found = checkpoints.step_checkpoints(run)
    return (found[-1][0], str(found[-1][1])) if found else (0, None)


__all__ = ["PretrainConfig", "pretrain", "learning_rate", "RUN_DEFINING"]
