"""Process groups the PyTorch way: torchrun's environment, or torch's own elastic launcher.

``salibi pretrain`` runs as

- one process (CPU or one GPU);
- N local ranks it starts itself (``--gpus N`` over NCCL, ``--cpu-procs N`` over gloo) through
  ``torch.distributed.launcher.elastic_launch`` -- the engine behind ``torchrun --standalone``;
- one rank of a larger job when started by torchrun (or SLURM + torchrun): ``RANK``,
  ``WORLD_SIZE`` and ``LOCAL_RANK`` are set, so it joins that job's process group.

The environment is read once per process, into a :class:`TorchrunEnv`, and passed on from there.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from salibi.errors import DeviceError


@dataclass(frozen=True)
class TorchrunEnv:
    """The torchrun environment of a process that torchrun (or our own launcher) started as one
    rank of a job: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TorchrunEnv | None:
        """This process's torchrun environment (``os.environ`` by default); None when the
        process was not started as a rank (``RANK``, ``WORLD_SIZE`` or ``LOCAL_RANK`` unset)."""
        env = os.environ if environ is None else environ
        if not all(name in env for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
            return None
        world_size = int(env["WORLD_SIZE"])
        return cls(
            rank=int(env["RANK"]),
            world_size=world_size,
            local_rank=int(env["LOCAL_RANK"]),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
        )


@dataclass(frozen=True)
class Rank:
    """Where this process stands in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_gpus(requested: int) -> None:
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested > available:
        raise DeviceError(
            f"--gpus {requested}: this machine has {available} usable CUDA GPU(s)"
            + ("; train on CPU with --cpu-procs N instead" if available == 0 else f"; use --gpus {available} or fewer")
        )


def setup(env: TorchrunEnv | None, use_cuda: bool) -> Rank:
    """Join the job's process group (if any) and pick this rank's device."""
    if env is None or env.world_size == 1:
        device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        return Rank(0, 0, 1, device)
    rank, world_size, local_rank = env.rank, env.world_size, env.local_rank
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(f"LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        # Share the cores between the local ranks instead of oversubscribing them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // env.local_world_size))
        dist.init_process_group("gloo")
    return Rank(rank, local_rank, world_size, device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch_local(
    entrypoint: Callable[..., Any], args: tuple[Any, ...], nprocs: int, handle_stop_signals: bool = True
) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` on ``nprocs`` local ranks with torch's elastic launcher
    (standalone rendezvous on a free local port, no restarts). Returns each rank's result.

    ``handle_stop_signals=False``: the caller takes SIGINT and SIGTERM itself (as
    :class:`salibi.train.stopping.StopRelay` does) and torch's agent handles only SIGHUP and
    SIGQUIT -- otherwise the agent forwards SIGINT/SIGTERM to the ranks, which a terminal's
    Ctrl-C or a process-group signal has already reached, and kills them 30 s later."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    signals = "SIGTERM,SIGINT,SIGHUP,SIGQUIT" if handle_stop_signals else "SIGHUP,SIGQUIT"

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nprocs,
        run_id=f"salibi-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
        signals_to_handle=signals,
    )
    if handle_stop_signals:
        return elastic_launch(config, entrypoint)(*args)
    # The caller reports failed ranks as one line: the agent's own log of them is noise then, and
    # so is the resource tracker's note (at exit) on the semaphores of ranks that were killed.
    quiet_tracker = "ignore:resource_tracker:UserWarning"
    if quiet_tracker not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), quiet_tracker)))
    with _quiet_loggers(("torch.distributed.elastic", "torch.multiprocessing")):
        return elastic_launch(config, entrypoint)(*args)


@contextlib.contextmanager
def _quiet_loggers(prefixes: tuple[str, ...]) -> Iterator[None]:
    import logging

    names = [name for name in logging.Logger.manager.loggerDict if name.startswith(prefixes)]
    loggers = [logging.getLogger(name) for name in names]
    states = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, state in zip(loggers, states):
            logger.disabled = state


def any_rank(flag: bool, rank: Rank) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop request)."""
    return max_over_ranks(1 if flag else 0, rank) > 0


def max_over_ranks(value: int, rank: Rank) -> int:
    """The largest of every rank's ``value`` (a small integer, e.g. a signal number), on every rank."""
    if not rank.distributed:
        return value
    tensor = torch.tensor([float(value)], device=rank.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def gather_rng_states(rank: Rank) -> dict[str, torch.Tensor]:
    """Every rank's torch (and CUDA) generator state, gathered on all ranks."""
    states = {"cpu": torch.get_rng_state()}
    if rank.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(rank.device)
    if not rank.distributed:
        return {f"rng.{kind}.rank0": state for kind, state in states.items()}
    gathered: dict[str, torch.Tensor] = {}
    for kind, state in states.items():
        local = state.to(rank.device)
        parts = [torch.empty_like(local) for _ in range(rank.world_size)]
        dist.all_gather(parts, local)
        gathered.update({f"rng.{kind}.rank{r}": part.cpu() for r, part in enumerate(parts)})
    return gathered


def restore_rng_state(states: dict[str, torch.Tensor], rank: Rank) -> bool:
    """Restore this rank's generators; False when the checkpoint has none for this rank."""
    cpu = states.get(f"rng.cpu.rank{rank.rank}")
    if cpu is None:
        return False
    torch.set_rng_state(cpu)
    cuda = states.get(f"rng.cuda.rank{rank.rank}")
    if cuda is not None and rank.device.type == "cuda":
        torch.cuda.set_rng_state(cuda, rank.device)
    return True
