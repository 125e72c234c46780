"""What ``salibi pretrain`` takes: :class:`PretrainConfig`, and which of its settings define a run."""

from __future__ import annotations

from dataclasses import dataclass, field

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

    @property
    def local_ranks(self) -> int:
        """The ranks ``pretrain`` starts itself when torchrun did not start it: ``gpus`` or
        ``cpu_procs``."""
        return self.gpus if self.gpus else self.cpu_procs
