"""The run plan: everything the parent process works out before any rank starts.

:func:`plan_run` checks what a user can get wrong (GPUs, an existing run or one still being
written, the data -- each file once, whole patches, the data a resumed run was trained on --,
the batch against the ranks and the data, and whether a step fits in memory), takes a resumed
run's stored settings, and works out the schedule and the checkpoint to resume from. It returns
a :class:`RunPlan` and leaves the :class:`PretrainConfig` it was given as it was: the plan
carries the configuration the run actually uses.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salibi.errors import DataFormatError, InputError, OutputExistsError
from salibi.fileio import write_atomic
from salibi.runs import RUN_JSON
from salibi.train.config import RUN_DEFINING, PretrainConfig
from salibi.train.data_facts import DataFacts, check_whole_patches, read_data_facts
from salibi.vocabulary import RUN_FORMAT, RUN_FORMAT_VERSION

if TYPE_CHECKING:
    from salibi.distributed.ranks import TorchrunEnv


@dataclass(frozen=True)
class RunPlan:
    """What the parent process worked out before starting ranks."""

    #: the settings the run uses: the given ones, with a resumed run's stored RUN_DEFINING ones
    config: PretrainConfig
    #: ranks in the job (torchrun's WORLD_SIZE, else the ranks ``pretrain`` starts itself)
    world_size: int
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int
    start_step: int
    #: the checkpoint folder to resume from (None: start afresh)
    resume_from: str | None
    #: the training files' headers: chips, GSDs, statistics (read once, here)
    data: DataFacts


def learning_rate(step: int, config: PretrainConfig, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it."""
    peak = config.lr * config.batch_size / 256
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def read_run(run: Path) -> dict[str, Any]:
    """The run description ``run/run.json``; DataFormatError when it is not one."""
    path = run / RUN_JSON
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: unreadable ({err}); this is not a salibi run folder") from None
    if document.get("format") != RUN_FORMAT:
        raise DataFormatError(f"{path}: not a salibi run description")
    return document


def write_run(plan: RunPlan) -> None:
    """Describe the run in ``run.json`` (its settings and schedule)."""
    run = Path(plan.config.out)
    document = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "config": dataclasses.asdict(plan.config),
        "total_steps": plan.total_steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "data_fingerprint": plan.data.fingerprint(),
    }
    write_atomic(run / RUN_JSON, json.dumps(document, indent=2) + "\n")


def plan_run(config: PretrainConfig, explicit: set[str] | None = None, env: TorchrunEnv | None = None) -> RunPlan:
    """Check everything a user can get wrong before any rank starts; work out the schedule and
    where to resume. ``explicit``: option names the user set (checked against a resumed run);
    ``env``: the torchrun environment when torchrun started this process."""
    from salibi.models import ModelConfig
    from salibi.train import training_state
    from salibi.train.sampler import GlobalBatchPlan

    if config.gpus:
        from salibi.distributed.ranks import check_gpus

        check_gpus(config.gpus)
    run = Path(config.out)
    if run.exists() and not run.is_dir():
        raise InputError(f"--out {run}: is a file; give a folder for the run (runs/NAME)")
    training_state.RunLock(run).check_free()
    data = read_data_facts(config.data)
    existing = training_state.step_checkpoints(run)
    if config.resume and (run / RUN_JSON).is_file():
        document = read_run(run)
        config = _resumed_config(config, document["config"], explicit, run)
        _check_resumed_data(config.data, data, document, run)
    elif existing and not config.resume:
        raise OutputExistsError(
            f"{run} already holds a run (checkpoints up to step {existing[-1][0]}): pass --resume to continue it, "
            "or choose another --out"
        )

    world_size = env.world_size if env is not None else config.local_ranks
    if config.batch_size % (world_size * config.accumulate):
        raise InputError(
            f"--batch-size {config.batch_size} is the global batch: it must be divisible by the number of ranks "
            f"({world_size}) times --accumulate ({config.accumulate})"
        )
    if len(data.modalities) < 2:
        raise InputError(
            f"{', '.join(config.data)}: pretraining needs two modalities present in every file; found "
            f"{', '.join(data.modalities) or 'none'}"
        )
    model = ModelConfig.for_size(config.model)
    check_whole_patches(data, model.patch_size, config.model)
    counts = [f.train_chips for f in data.files]
    starts = [sum(counts[:i]) for i in range(len(counts))]
    batches = GlobalBatchPlan([range(a, a + n) for a, n in zip(starts, counts)], config.batch_size, config.seed)
    steps_per_epoch = batches.steps_per_epoch
    if steps_per_epoch == 0:
        raise InputError(
            f"--batch-size {config.batch_size} is larger than the training split of every file (largest: "
            f"{max(counts, default=0)} chips): lower --batch-size or align more data"
        )
    _check_memory(config, data, model, world_size, env)
    if config.max_steps is not None:
        total = config.max_steps
    else:
        total = math.ceil((config.epochs if config.epochs is not None else 100) * steps_per_epoch)
    if total < 1:
        raise InputError("--max-steps/--epochs give no training step; ask for at least one")
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, min(2000, round(0.05 * total)))

    start, resume_from = 0, None
    if config.resume and existing:
        found = training_state.newest_resumable(run)
        assert found is not None
        folder, meta = found
        start, resume_from = int(meta["step"]), str(folder)
    return RunPlan(config, world_size, total, steps_per_epoch, warmup, start, resume_from, data)


def _check_memory(
    config: PretrainConfig, data: DataFacts, model: Any, world_size: int, env: TorchrunEnv | None
) -> None:
    """InputError when one micro-batch of the largest chips would not fit on one rank's device."""
    from salibi.train.memory import check_step_memory, count_parameters, device_memory, estimate_step_memory

    micro_batch = config.batch_size // (world_size * config.accumulate)
    amp = config.amp if config.amp is not None else config.use_cuda
    local_ranks = env.local_world_size if env is not None else config.local_ranks
    available, where = device_memory(config.use_cuda, local_ranks)
    build = dataclasses.replace(
        model, modalities=data.modalities, channels={m: data.files[0].modalities[m].channels for m in data.modalities}
    )
    parameters = count_parameters(build)
    import torch

    from salibi.models.flex import resolve_attention

    flex = resolve_attention(config.attention, torch.device("cuda" if config.use_cuda else "cpu")) == "flex"
    for f in data.files:
        chips = {m: f.modalities[m].chip for m in data.modalities}
        estimate = estimate_step_memory(
            build,
            chips,
            config.mask_ratio,
            micro_batch,
            2 if amp else 4,
            parameters,
            materialised_biases=not flex,
            gsd_per_chip=any(f.modalities[m].gsd_per_chip for m in data.modalities),
        )
        check_step_memory(estimate, available, where, config.model, flex_possible=config.use_cuda and not flex)


def _check_resumed_data(given: list[str], data: DataFacts, document: dict[str, Any], run: Path) -> None:
    """InputError unless the files given are the data ``run`` was trained on, in the same order:
    the same headers (chips, GSDs, bands, statistics) wherever they now lie. A run described
    before fingerprints were stored must be given the very paths it recorded."""
    stored_paths = list(document["config"].get("data") or [])
    stored = document.get("data_fingerprint")
    same = data.fingerprint() == stored if stored is not None else [str(p) for p in given] == stored_paths
    if not same:
        raise InputError(
            f"--resume: {', '.join(map(str, given))} are not the data {run} was trained on "
            f"({', '.join(stored_paths)}: the number of files, their order, chips, GSDs, bands or statistics differ); "
            "give the run's files in the same order, or start a new run with another --out"
        )


def _resumed_config(
    config: PretrainConfig, stored: dict[str, Any], explicit: set[str] | None, run: Path
) -> PretrainConfig:
    """``config`` with the run-defining settings ``run`` was started with; InputError when the
    user set one of them (``explicit``) to another value."""
    conflicts = [
        f"--{name.replace('_', '-')} {getattr(config, name)!r} (the run has {stored[name]!r})"
        for name in RUN_DEFINING
        if explicit is not None and name in explicit and name != "data" and stored.get(name) != getattr(config, name)
    ]
    if conflicts:
        raise InputError(
            f"{run} was started with other settings: {'; '.join(conflicts)}. "
            "Drop those options to resume it, or start a new run with another --out"
        )
    # The data are the files given (checked against the run's by _check_resumed_data): they may have moved.
    kept = {name: stored[name] for name in RUN_DEFINING if name in stored and name != "data"}
    return dataclasses.replace(config, **kept)
