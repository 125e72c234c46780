"""Pretraining on aligned HDF5 sets: DDP over NCCL or gloo, exact resume, rank-0 logging.

    from salibi.train import PretrainConfig, pretrain
    summary = pretrain(PretrainConfig(data=["set.h5"], out="runs/first", max_steps=300))

See :mod:`salibi.train.loop` for the step, :mod:`salibi.train.checkpoints` for the run folder.
"""

from salibi.train.loop import PretrainConfig, pretrain

__all__ = ["PretrainConfig", "pretrain"]
