"""The training loop every rank runs.

One optimizer step consumes one *global* batch (``batch_size`` samples, drawn from one file by
:class:`~salibi.train.sampler.GlobalBatchPlan`), split over the ranks and, within a rank, over
``accumulate`` micro-batches. Mask noise is drawn per global batch from a generator seeded by
(seed, step, modality) and sliced per sample, so a run gives the same masks and the same losses
on 1 process or N ranks, and after ``--resume``. Rank 0 logs (:mod:`salibi.train.metrics`) and
saves (:mod:`salibi.train.checkpoints`); every rank contributes its RNG state to a checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from salibi.errors import SalibiError
from salibi.train.config import PretrainConfig
from salibi.train.plan import RunPlan, learning_rate
from salibi.vocabulary import MODALITIES

if TYPE_CHECKING:
    import torch

    from salibi.train.distributed import Rank, TorchrunEnv

__all__ = ["PretrainConfig", "StopRequest", "learning_rate", "mask_noise", "rank_main", "run_rank"]


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


def rank_main(plan: RunPlan) -> dict[str, Any]:
    """The entry point of a rank process that :func:`salibi.train.distributed.launch_local`
    started: its torchrun environment is read here, once."""
    from salibi.train.distributed import TorchrunEnv

    return run_rank(plan, TorchrunEnv.from_environ())


def run_rank(plan: RunPlan, env: TorchrunEnv | None) -> dict[str, Any]:
    """Train as the rank ``env`` describes (a single process when None); rank 0's summary."""
    from salibi.train import distributed

    rank = distributed.setup(env, plan.config.use_cuda)
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


# -- the loop -------------------------------------------------------------------------------------


def _train(plan: RunPlan, rank: Rank) -> dict[str, Any]:
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader

    from salibi.data import AlignedDataset
    from salibi.train import distributed
    from salibi.train.metrics import MetricsLog
    from salibi.train.sampler import GlobalBatchPlan, MicroBatchSampler, local_micro_batches

    config = plan.config
    run = Path(config.out)
    stop = StopRequest()
    stop.install()

    dataset = AlignedDataset(config.data, split="train")
    modalities = tuple(dataset.modalities)
    batches = GlobalBatchPlan(dataset.file_indices(), config.batch_size, config.seed)
    model = _build_model(config, dataset.modality_info, modalities, rank)
    patch = model.config.patch_size
    optimizer = _build_optimizer(model, plan)
    _check_ranks_agree(plan, rank)
    step = _restore(plan, model, optimizer, rank) if plan.resume_from is not None else 0

    ddp = (
        DistributedDataParallel(model, device_ids=[rank.device.index] if rank.device.type == "cuda" else None)
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
                log.step(
                    step, {**sums, "lr": lr, "grad_norm": float(grad_norm), "epoch": epoch}, samples=config.batch_size
                )
                stopping = distributed.any_rank(stop.signal_name is not None, rank)
                if stopping and stop.signal_name is None:
                    stop.signal_name = "SIGTERM (another rank)"
                if step % config.save_every == 0 or step == plan.total_steps or stopping:
                    last_saved = _save(run, step, epoch, model, optimizer, dataset.modality_info, plan, rank)
                if stopping:
                    break
            del loader_iter, loader
    finally:
        log.close()
    return {
        "step": step,
        "stopped_by": stop.signal_name,
        "checkpoint": str(last_saved) if last_saved else None,
        "last": log.last,
    }


# -- the pieces of a rank's set-up ----------------------------------------------------------------


def _build_model(
    config: PretrainConfig, info: dict[str, dict[str, Any]], modalities: tuple[str, ...], rank: Rank
) -> Any:
    """The model on this rank's device, with identical initial weights on every rank."""
    import torch

    from salibi.models import ModelConfig, build

    torch.manual_seed(config.seed)
    coarsest = max(float(info[m]["gsd"]) for m in modalities)
    model = build(
        config.model,
        variant=config.variant,
        modalities=modalities,
        channels={m: int(info[m]["channels"]) for m in modalities},
        mask_ratio=config.mask_ratio,
        ref_length=ModelConfig.for_size(config.model).patch_size * coarsest,
    )
    return model.to(rank.device)


def _build_optimizer(model: torch.nn.Module, plan: RunPlan) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and the temperature."""
    import torch

    config = plan.config
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "temperature" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "temperature" not in n)]
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

    from salibi.train import checkpoints, distributed

    assert plan.resume_from is not None
    folder = Path(plan.resume_from)
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(rank.device)))
    tensors, meta = checkpoints.load_trainer_state(folder)
    optimizer.load_state_dict(checkpoints.unflatten_optimizer(tensors, meta["optimizer"]))
    if not distributed.restore_rng_state(tensors, rank):
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
    info: dict[str, dict[str, Any]],
    plan: RunPlan,
    rank: Rank,
) -> Path | None:
    """Every rank contributes its RNG state; rank 0 writes the checkpoint."""
    from salibi.models.checkpoint import write_checkpoint
    from salibi.train import checkpoints, distributed

    rng = distributed.gather_rng_states(rank)
    if not rank.is_main:
        return None
    config = plan.config
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
        write_checkpoint(
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
