"""Local ranks started the PyTorch way: torch's elastic launcher, the engine behind ``torchrun``.

``salibi pretrain --gpus N`` / ``--cpu-procs N`` and ``salibi embed --gpus N`` / ``--cpu-procs N``
start their ranks with :func:`launch_local`; each rank then reads the torchrun environment the
launcher set (:class:`salibi.distributed.ranks.TorchrunEnv`) as it would under torchrun.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["launch_local"]


def launch_local(
    entrypoint: Callable[..., Any], args: tuple[Any, ...], nprocs: int, handle_stop_signals: bool = True
) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` on ``nprocs`` local ranks with torch's elastic launcher
    (standalone rendezvous on a free local port, no restarts). Returns each rank's result.

    ``handle_stop_signals=False``: the caller takes SIGINT and SIGTERM itself (as
    :class:`salibi.distributed.stopping.StopRelay` does) and torch's agent handles only SIGHUP and
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
