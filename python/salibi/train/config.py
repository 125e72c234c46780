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
    #: seconds the ranks get to finish their step and save after a stop signal, before they are killed
    stop_grace: float = 120.0
    #: the model's attention backend (auto, sdpa, flex; salibi.models.build): not run-defining,
    #: every backend gives the same numbers
    attention: str = "auto"

    @property
    def use_cuda(self) -> bool:
        return bool(self.gpus)

    @property
    def local_ranks(self) -> int:
        """The ranks ``pretrain`` starts itself when torchrun did not start it: ``gpus`` or
        ``cpu_procs``."""
        return self.gpus if self.gpus else self.cpu_procs


def choose_devices(gpus: int | None, cpu_procs: int | None, cuda_devices: int) -> tuple[int, int]:
    """``(gpus, cpu_procs)`` a run uses, given the options (None: not given) and the number of
    CUDA devices this machine has. ``--cpu-procs N`` always means N CPU ranks over gloo, GPUs or
    not (it used to be ignored where a GPU was); without either option: one GPU if there is one,
    else one CPU process. Giving both is a usage error the CLI reports (ValueError here)."""
    if gpus and cpu_procs is not None:
        raise ValueError("--gpus and --cpu-procs choose different devices: give one of them")
    if cpu_procs is not None:
        return 0, cpu_procs
    if gpus is None:
        gpus = 1 if cuda_devices > 0 else 0
    return gpus, 1
