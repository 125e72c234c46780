"""The training loop every rank runs.

One optimizer step consumes one *global* batch (``batch_size`` samples, drawn from one file by
:class:`~salibi.train.sampler.GlobalBatchPlan`), split over the ranks and, within a rank, over
``accumulate`` micro-batches. Mask noise is drawn per global batch from a generator seeded by
(seed, step, modality) and sliced per sample, so a run gives the same masks and the same losses
on 1 process or N ranks, and after ``--resume``. Rank 0 logs (:mod:`salibi.train.metrics`) and
saves (:mod:`salibi.train.training_state`); every rank contributes its RNG state to a checkpoint.
A stop (:mod:`salibi.distributed.stopping`) is answered after the current step: save first, then exit.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.distributed.stopping import StopRequest
from salibi.errors import SalibiError
from salibi.train.config import PretrainConfig
from salibi.train.run_plan import RunPlan, learning_rate
from salibi.vocabulary import MODALITIES

if TYPE_CHECKING:
    import torch

    from salibi.distributed.ranks import Rank, TorchrunEnv
    from salibi.models.scale_alibi import ScaleAlibiModel

__all__ = [
    "PretrainConfig",
    "StopRequest",
    "decays",
    "learning_rate",
    "mask_noise",
    "rank_main",
    "run_rank",
    "some_modality_unmasked",
]


def mask_noise(
    images: dict[str, Any], patch: int, seed: int, step: int, global_batch: int, rows: np.ndarray
) -> dict[str, Any]:
    """Per-sample mask noise: rows ``rows`` of a (global_batch, N_m) draw seeded by
    (seed, step, modality), so a sample's mask depends only on where it sits in its global
    batch -- not on the rank or micro-batch that processes it."""
    import torch

    noise = {}
    for name, tensor in images.items():
        patches = (tensor.shape[-2] // patch) * (tensor.shape[-1] // patch)
        key = np.random.SeedSequence([seed, step, MODALITIES.index(name)]).generate_state(1)[0]
        draw = torch.rand(global_batch, patches, generator=torch.Generator().manual_seed(int(key)))
        noise[name] = draw[torch.from_numpy(rows)].to(tensor.device)
    return noise


# -- a rank's entry point -------------------------------------------------------------------------


def rank_main(plan: RunPlan, relay: str) -> dict[str, Any]:
    """The entry point of a rank process that :func:`salibi.train.launch.pretrain` started through
    :func:`salibi.distributed.launcher.launch_local`, sharing the folder ``relay`` with its
    :class:`~salibi.distributed.stopping.StopRelay`. A failure is left there as one line and the process
    exits with status 1 (the launcher says it); tracebacks are printed for bugs only."""
    from salibi.distributed.ranks import TorchrunEnv
    from salibi.distributed.stopping import (
        die_with_parent,
        ignore_stop_signals,
        rank_finished,
        register_rank,
        report_rank_error,
    )

    stop = StopRequest(escalate=False, stop_file=Path(relay) / "stop")
    stop.install()  # first thing: from now on any number of SIGINT/SIGTERM is one stop request
    parent = os.getppid()
    die_with_parent()  # a killed launcher stops its ranks (they save) instead of leaving them training
    env = TorchrunEnv.from_environ()
    number = env.rank if env is not None else 0
    registration = register_rank(relay, number)
    try:
        result = run_rank(plan, env, stop)
    except BaseException as err:
        if isinstance(err, SalibiError):
            report_rank_error(relay, number, "salibi", str(err))
        elif _peer_failed(err):
            report_rank_error(relay, number, "peer", f"{type(err).__name__}: {err}")
        else:
            report_rank_error(relay, number, "bug", f"{type(err).__name__}: {err}")
            traceback.print_exc()
        _leave(1)
    ignore_stop_signals()  # done: a later signal must not turn the exit into a death by signal
    rank_finished(registration)
    # torch's wrapper waits for the launcher to collect the result: a killed launcher never will.
    threading.Thread(target=_leave_when_orphaned, args=(parent, relay, number), daemon=True).start()
    return result


def _leave_when_orphaned(parent: int, relay: str, rank: int) -> None:
    """Exit (status 0: the run saved) once this process's launcher ``parent`` is gone; rank 0
    removes the folder it shared with the launcher, which can no longer do it."""
    import shutil

    while os.getppid() == parent:
        time.sleep(0.5)
    if rank == 0:
        shutil.rmtree(relay, ignore_errors=True)
    _leave(0)


def _leave(status: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _peer_failed(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another rank died (that rank's failure is
    the one to report)."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, dist.DistError) or any(
        words in text for words in ("connection closed", "connection reset", "broken pipe", "timed out")
    )


def run_rank(plan: RunPlan, env: TorchrunEnv | None, stop: StopRequest | None = None) -> dict[str, Any]:
    """Train as the rank ``env`` describes (a single process when None); rank 0's summary. Rank 0
    holds the run folder's :class:`~salibi.train.training_state.RunLock` while it trains."""
    from salibi.distributed.ranks import join, leave
    from salibi.train.training_state import RunLock, remove_staging_leftovers

    if stop is None:  # alone (a second Ctrl-C stops at once), or a rank torchrun started
        stop = StopRequest(escalate=env is None)
        stop.install()
    run = Path(plan.config.out)
    lock = RunLock(run).acquire() if env is None or env.rank == 0 else None
    try:
        if lock is not None:
            remove_staging_leftovers(run)
        rank = join(env, "cuda" if plan.config.use_cuda else "cpu")
        try:
            return _train(plan, rank, stop)
        finally:
            leave()
    finally:
        if lock is not None:
            lock.release()


# -- the loop -------------------------------------------------------------------------------------


def _train(plan: RunPlan, rank: Rank, stop: StopRequest) -> dict[str, Any]:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader

    from salibi.data import AlignedDataset
    from salibi.distributed.stopping import ignore_stop_signals, stop_signals_held
    from salibi.train.metrics import MetricsLog
    from salibi.train.sampler import GlobalBatchPlan, MicroBatchSampler, local_micro_batches

    config = plan.config
    run = Path(config.out)

    dataset = AlignedDataset(config.data, split="train")
    modalities = tuple(dataset.modalities)
    batches = GlobalBatchPlan(dataset.file_indices(), config.batch_size, config.seed)
    model = _build_model(plan, dataset.modality_info, modalities, rank)
    patch = model.config.patch_size
    optimizer = _build_optimizer(model, plan)
    _check_ranks_agree(plan, rank)
    step = _restore(plan, model, optimizer, rank) if plan.resume_from is not None else 0

    ddp = (
        DistributedDataParallel(
            model,
            device_ids=[rank.device.index] if rank.device.type == "cuda" else None,
            # Parameters without a gradient in some steps (decoder and fusion when nothing is masked)
            find_unused_parameters=some_modality_unmasked(plan, patch),
        )
        if rank.distributed
        else model
    )
    autocast = _autocast(config, rank)
    log = MetricsLog(
        run,
        plan.total_steps,
        start_step=step,
        log_every=config.log_every,
        tensorboard="tensorboard" in config.log,
        progress=config.progress,
        active=rank.is_main,
    )
    world = rank.world_size
    last_saved: Path | None = None
    started = step
    stopping = False
    # One loader for the run, its batch sampler moved to each epoch, its workers started once and
    # forked: torch's launcher makes spawn the ranks' default, and a spawned worker imports torch
    # again (seconds each); fork is what the DataLoader uses on Linux outside a launcher.
    sampler = MicroBatchSampler(batches, 0, 0, rank.rank, world, config.accumulate, 0)
    forked = config.num_workers > 0 and "fork" in multiprocessing.get_all_start_methods()
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=rank.device.type == "cuda",
        worker_init_fn=ignore_stop_signals if config.num_workers else None,  # the rank decides a stop
        persistent_workers=config.num_workers > 0,
        multiprocessing_context="fork" if forked else None,
    )
    model.train()
    try:
        # A stop is only ever taken where every rank agrees on it, after a step (below): a check
        # here, between epochs, would let one rank leave the loop without saving, or without the others.
        while step < plan.total_steps and not stopping:
            epoch, in_epoch = divmod(step, plan.steps_per_epoch)
            epoch_end = min(plan.steps_per_epoch, in_epoch + plan.total_steps - step)
            sampler.go_to(epoch, in_epoch, epoch_end)
            with stop_signals_held():  # the workers start with SIGINT/SIGTERM blocked, for good
                loader_iter = iter(loader)
            micro_rows = local_micro_batches(np.arange(config.batch_size), rank.rank, world, config.accumulate)
            for _ in range(in_epoch, epoch_end):
                lr = learning_rate(step, config, plan.total_steps, plan.warmup_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                sums = {"loss": 0.0, "contrastive": 0.0, "reconstruction": 0.0}
                for k in range(config.accumulate):
                    batch = next(loader_iter)
                    images = {m: batch[m].to(rank.device, non_blocking=True) for m in modalities}  # (b, C_m, H, W)
                    gsd = {m: batch["gsd"][m] for m in modalities}
                    noise = mask_noise(images, patch, config.seed, step, config.batch_size, micro_rows[k])
                    last_micro = k == config.accumulate - 1
                    sync = (
                        ddp.no_sync() if isinstance(ddp, DistributedDataParallel) and not last_micro else nullcontext()
                    )
                    with sync:
                        with autocast():
                            out = ddp({**images, "gsd": gsd}, noise=noise)
                        (out["loss"] / config.accumulate).backward()
                    for key in sums:
                        sums[key] += float(out[key].detach()) / config.accumulate
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                optimizer.step()
                step += 1
                with _disk_errors(run, f"record step {step} in metrics.jsonl"):
                    log.step(
                        step,
                        {**sums, "lr": lr, "grad_norm": float(grad_norm), "epoch": epoch},
                        samples=config.batch_size,
                    )
                stopping = stop.agree(rank.max_over_ranks(stop.code()))
                if step % config.save_every == 0 or step == plan.total_steps or stopping:
                    # When stopping, the checkpoint comes first and old ones are left for the next run to prune.
                    last_saved = _save(run, step, epoch, model, optimizer, plan, rank, prune=not stopping)
                if stopping:
                    break
    finally:
        log.close()
        del loader  # its workers stop
    return {
        "rank": rank.rank,
        "step": step,
        "trained": step - started,
        "stopped_by": stop.signal_name,
        "checkpoint": str(last_saved) if last_saved else None,
        "last": log.last,
    }


def some_modality_unmasked(plan: RunPlan, patch: int) -> bool:
    """Whether some step may hide no patch of some modality (``--mask-ratio 0``, or chips of so
    few patches that none is masked): its decoder head, and with no masking at all the fusion
    stages and the decoder, then get no gradient, which DDP must be told to expect."""
    from salibi.models.scale_alibi import kept_patches

    ratio = plan.config.mask_ratio
    for f in plan.data.files:
        for m in plan.data.modalities:
            h, w = f.modalities[m].chip
            n = (h // patch) * (w // patch)
            if kept_patches(n, ratio) >= n:
                return True
    return False


@contextmanager
def _disk_errors(run: Path, what: str) -> Iterator[None]:
    """OSError (a full disk, a folder gone) as a SalibiError that says what was lost and what is left."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as err:
        if isinstance(err, SafetensorError) and "I/O error" not in str(err):
            raise  # not the disk: a bug
        from salibi.train.training_state import describe_newest

        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).rsplit(": ", 1)[-1]
        raise SalibiError(
            f"{run}: could not {what} ({reason}); {describe_newest(run)}: "
            "free space or fix the folder, then run the same command with --resume"
        ) from None


# -- the pieces of a rank's set-up ----------------------------------------------------------------


def _build_model(plan: RunPlan, info: dict[str, dict[str, Any]], modalities: tuple[str, ...], rank: Rank) -> Any:
    """The model on this rank's device, with identical initial weights on every rank
    (:func:`~salibi.train.initial_weights.initial_model`: one reference length, a patch of the
    coarsest GSD of all training files). A run started afresh records them (rank 0)."""
    from salibi.train.initial_weights import initial_model, record_initial_weights

    config = plan.config
    channels = {m: int(info[m]["channels"]) for m in modalities}
    model = initial_model(config, modalities, channels, plan.data.coarsest_gsd())
    if rank.is_main and plan.resume_from is None:
        with _disk_errors(Path(config.out), "record the initial weights"):
            record_initial_weights(config.out, model, config.seed, config.variant)
    return model.to(rank.device)


def decays(parameter: torch.nn.Parameter, exempt: Collection[torch.nn.Parameter]) -> bool:
    """Whether AdamW decays ``parameter``: weight matrices and convolutions, not biases, norms, nor
    the parameters the model says are not weights of a layer (``exempt``: its tokens and temperature)."""
    return parameter.ndim >= 2 and all(parameter is not other for other in exempt)


def _build_optimizer(model: ScaleAlibiModel, plan: RunPlan) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, tokens and the temperature (:func:`decays`)."""
    import torch

    config = plan.config
    exempt = model.not_layer_weights()
    decay = [p for p in model.parameters() if decays(p, exempt)]
    no_decay = [p for p in model.parameters() if not decays(p, exempt)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate(0, config, plan.total_steps, plan.warmup_steps),
        betas=(0.9, 0.95),
    )


def _check_ranks_agree(plan: RunPlan, rank: Rank) -> None:
    """Each rank found its checkpoint itself: they must agree (a run folder that not every node
    sees would start some ranks afresh)."""
    import torch

    if not rank.distributed:
        return
    steps = torch.tensor([plan.start_step, -plan.start_step], dtype=torch.float64, device=rank.device)
    torch.distributed.all_reduce(steps, op=torch.distributed.ReduceOp.MAX)
    if steps[0].item() != -steps[1].item():
        raise SalibiError(
            f"ranks disagree on where {plan.config.out} resumes (steps {-steps[1].item():.0f} to "
            f"{steps[0].item():.0f}): put --out on a filesystem that every node shares"
        )


def _restore(plan: RunPlan, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: Rank) -> int:
    """Load the weights, optimizer and this rank's RNG state of ``plan.resume_from``; its step."""
    from safetensors.torch import load_file

    from salibi.models.checkpoint import WEIGHTS
    from salibi.train import training_state

    assert plan.resume_from is not None
    folder = Path(plan.resume_from)
    model.load_state_dict(load_file(str(folder / WEIGHTS), device=str(rank.device)))
    tensors, meta = training_state.load_trainer_state(folder)
    optimizer.load_state_dict(training_state.unflatten_optimizer(tensors, meta["optimizer"]))
    if not training_state.restore_rng_state(tensors, rank):
        warnings.warn(
            f"{folder}: no RNG state for rank {rank.rank} (the run had {meta['world_size']} ranks)",
            UserWarning,
            stacklevel=1,
        )
    return int(meta["step"])


def _autocast(config: PretrainConfig, rank: Rank) -> Callable[[], AbstractContextManager[Any]]:
    """bf16 autocast on the rank's device when ``--amp`` (default: on with CUDA), else none."""
    import torch

    amp = config.amp if config.amp is not None else rank.device.type == "cuda"
    if not amp:
        return nullcontext
    kind = "cuda" if rank.device.type == "cuda" else "cpu"
    return lambda: torch.autocast(kind, dtype=torch.bfloat16)


def _save(
    run: Path,
    step: int,
    epoch: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    plan: RunPlan,
    rank: Rank,
    prune: bool = True,
) -> Path | None:
    """Every rank contributes its RNG state; rank 0 writes the checkpoint (with the statistics of
    all training files, pooled), then prunes old ones (``prune``)."""
    from salibi.models.checkpoint import write_checkpoint
    from salibi.train import training_state

    rng = training_state.gather_rng_states(rank)
    if not rank.is_main:
        return None
    config = plan.config
    info = plan.data.pooled_info()
    tensors, optimizer_meta = training_state.flatten_optimizer(optimizer.state_dict())
    meta = {
        "step": step,
        "epoch": epoch,
        "world_size": rank.world_size,
        "optimizer": optimizer_meta,
        "total_steps": plan.total_steps,
        "config": asdict(config),
    }

    def write_model(folder: Path) -> None:
        write_checkpoint(
            model,
            folder,
            bands={m: info[m]["bands"] for m in model.modalities},
            gsd={m: info[m]["gsd"] for m in model.modalities},
            mean={m: info[m]["mean"] for m in model.modalities},
            std={m: info[m]["std"] for m in model.modalities},
            step=step,
            data=[str(p) for p in config.data],
            data_gsd={m: info[m]["gsd_per_file"] for m in model.modalities},
            variant=config.variant,
        )

    with _disk_errors(run, f"save the checkpoint of step {step}"):
        folder = training_state.save_training_checkpoint(run, step, write_model, {**tensors, **rng}, meta)
    if prune:
        training_state.prune(run, config.keep)
    return folder
