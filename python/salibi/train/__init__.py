"""Pretraining on aligned HDF5 sets: DDP over NCCL or gloo, exact resume, rank-0 logging.

    from salibi.train import PretrainConfig, pretrain
    summary = pretrain(PretrainConfig(data=["set.h5"], out="runs/first", max_steps=300))

One idea per module: :mod:`~salibi.train.config` (the settings), :mod:`~salibi.train.run_plan` (the
run plan and schedule, worked out before any rank starts), :mod:`~salibi.train.launch` (the
entry point that starts the ranks, through :mod:`salibi.distributed`),
:mod:`~salibi.train.sampler` (which samples form each step), :mod:`~salibi.train.loop` (the
step), :mod:`~salibi.train.metrics` (metrics.jsonl, TensorBoard, the console) and
:mod:`~salibi.train.training_state` (the run folder and exact resume).
"""

from salibi.train.config import PretrainConfig
from salibi.train.launch import pretrain

__all__ = ["PretrainConfig", "pretrain"]
