"""The entry point, :func:`pretrain`: plan the run, describe it in ``run.json``, start the ranks.

Started by torchrun, this process is one rank of that job and trains as such; otherwise it
starts ``--gpus``/``--cpu-procs`` local ranks itself through torch's elastic launcher (or trains
in-process when that is one rank). While its ranks run, it takes SIGINT and SIGTERM itself
(:class:`~salibi.distributed.stopping.StopRelay`): the ranks finish their step, save and return, and a
rank that fails is reported as one line naming the newest complete checkpoint.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salibi.errors import SalibiError
from salibi.train.config import PretrainConfig
from salibi.train.run_plan import RunPlan, plan_run, write_run

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from salibi.distributed.stopping import StopRelay


def pretrain(config: PretrainConfig, explicit: set[str] | None = None) -> dict[str, Any]:
    """Run (or resume) a pretraining run; returns this process's summary (``rank`` 0's when it
    started the ranks itself). Acts as one rank when started by torchrun; otherwise starts
    ``--gpus``/``--cpu-procs`` local ranks itself. ``explicit``: option names the user set (a
    resumed run refuses other values for its run-defining settings). ``config`` itself is left
    as it is."""
    from salibi.distributed.ranks import TorchrunEnv
    from salibi.train.loop import run_rank

    env = TorchrunEnv.from_environ()
    plan = plan_run(config, explicit, env)
    if plan.start_step >= plan.total_steps:
        return {
            "rank": env.rank if env is not None else 0,
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
        result = _run_local_ranks(plan)
    result["total_steps"] = plan.total_steps
    if result.get("rank", 0) == 0:
        _check_saved(result, Path(plan.config.out))
    return result


def _check_saved(result: dict[str, Any], run: Path) -> None:
    """Before anything says it: the checkpoint rank 0's summary names must be on disk as its saver
    wrote it (:func:`~salibi.train.training_state.verify_saved`) and hold the step the run reached;
    else a SalibiError that says what was not saved and names the newest complete checkpoint."""
    from salibi.errors import DataFormatError, MissingInputError
    from salibi.train.training_state import describe_newest, verify_saved

    step, folder = int(result["step"]), result.get("checkpoint")
    try:
        if not folder:
            raise MissingInputError("no checkpoint was written")
        saved = verify_saved(Path(folder))
        if saved != step:
            raise DataFormatError(f"{folder} holds step {saved}")
    except (DataFormatError, MissingInputError) as err:
        how = f"stopped by {result['stopped_by']}" if result.get("stopped_by") else "trained"
        raise SalibiError(
            f"{how} after step {step}, but its checkpoint was not saved ({err}); {describe_newest(run)}: "
            "run the same command with --resume to continue from there"
        ) from None


def _run_local_ranks(plan: RunPlan) -> dict[str, Any]:
    """Start ``plan.world_size`` local ranks and wait for them; rank 0's summary."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from salibi.distributed.launcher import launch_local
    from salibi.distributed.stopping import StopRelay
    from salibi.train.loop import rank_main
    from salibi.train.training_state import describe_newest

    with StopRelay(plan.config.stop_grace) as relay:
        try:
            results = launch_local(rank_main, (plan, str(relay.folder)), plan.world_size, handle_stop_signals=False)
        except ChildFailedError as err:
            raise _rank_failure(err, relay, plan) from None
        except SignalException as err:  # SIGHUP or SIGQUIT: torch's agent shut the ranks down
            raise SalibiError(
                f"stopped by {err.sigval.name}: the ranks were shut down without saving; "
                f"{describe_newest(Path(plan.config.out))}: run the same command with --resume to continue"
            ) from None
    return dict(results[0])


def _rank_failure(err: ChildFailedError, relay: StopRelay, plan: RunPlan) -> SalibiError:
    """One line for a job whose ranks did not all finish: a user error one of them raised, a rank
    killed by a signal, the grace period or a second Ctrl-C running out, or a bug (whose traceback
    that rank printed)."""
    from salibi.train.training_state import describe_newest

    newest = describe_newest(Path(plan.config.out))
    again = "run the same command with --resume to continue"
    if relay.killed == "second SIGINT":
        return SalibiError(f"stopped at once by a second Ctrl-C (SIGINT); {newest}: {again}")
    if relay.killed == "grace":
        return SalibiError(
            f"stopped by {relay.signal_name}, but the ranks had not saved and exited {plan.config.stop_grace:g} s "
            f"later and were killed; {newest}: {again} (give saving more time with --stop-grace)"
        )
    errors = relay.rank_errors()
    for _, (kind, message) in sorted(errors.items()):
        if kind == "salibi":
            return SalibiError(message)
    signals = {rank: signal.Signals(-f.exitcode).name for rank, f in err.failures.items() if f.exitcode < 0}
    silent = [rank for rank in relay.ranks() if rank not in errors] or sorted(signals)
    if silent:  # died without a word: a signal (SIGKILL, the out-of-memory killer), or a hard crash
        rank = silent[0]
        how = f"was killed by {signals[rank]}" if rank in signals else "was killed (a signal such as SIGKILL)"
        return SalibiError(f"rank {rank} {how}; {newest}: {again}")
    bugs = [rank for rank, (kind, _) in sorted(errors.items()) if kind == "bug"]
    rank = bugs[0] if bugs else err.get_first_failure()[0]
    detail = errors[rank][1] if rank in errors else f"exit code {err.failures[rank].exitcode}"
    return SalibiError(f"rank {rank} failed ({detail}); its traceback is printed above; {newest}")
