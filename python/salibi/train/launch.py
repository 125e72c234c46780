"""The entry point, :func:`pretrain`: plan the run, describe it in ``run.json``, start the ranks.

Started by torchrun, this process is one rank of that job and trains as such; otherwise it
starts ``--gpus``/``--cpu-procs`` local ranks itself through torch's elastic launcher (or trains
in-process when that is one rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salibi.errors import SalibiError
from salibi.train.config import PretrainConfig
from salibi.train.plan import plan_run, write_run


def pretrain(config: PretrainConfig, explicit: set[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a pretraining run; returns rank 0's summary. Acts as one rank when
    started by torchrun; otherwise starts ``--gpus``/``--cpu-procs`` local ranks itself.
    ``explicit``: option names the user set (a resumed run refuses other values for its
    run-defining settings). ``config`` itself is left as it is."""
    from salibi.train import distributed
    from salibi.train.loop import rank_main, run_rank

    env = distributed.TorchrunEnv.from_environ()
    plan = plan_run(config, explicit, env)
    if plan.start_step >= plan.total_steps:
        return {
            "step": plan.start_step,
            "stopped_by": None,
            "already_complete": True,
            "checkpoint": plan.resume_from,
            "total_steps": plan.total_steps,
        }
    if env is None or env.rank == 0:
        write_run(plan)
    if env is not None or plan.world_size == 1:
        result = run_rank(plan, env)
    else:
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        try:
            results = distributed.launch_local(rank_main, (plan,), plan.world_size)
        except ChildFailedError as err:
            rank, failure = err.get_first_failure()
            raise SalibiError(
                f"rank {rank} failed (exit code {failure.exitcode}); its traceback is printed above"
            ) from None
        except SignalException as err:
            # The launcher forwarded the signal; the ranks saved a checkpoint before exiting.
            step, folder = newest_checkpoint(Path(plan.config.out))
            return {"step": step, "stopped_by": err.sigval.name, "checkpoint": folder, "total_steps": plan.total_steps}
        result = results[0]
    result["total_steps"] = plan.total_steps
    return result


def newest_checkpoint(run: Path) -> tuple[int, str | None]:
    """``(step, folder)`` of the run's newest checkpoint folder; ``(0, None)`` when none."""
    from salibi.runs import step_checkpoints

    found = step_checkpoints(run)
    return (found[-1][0], str(found[-1][1])) if found else (0, None)
