"""What one ``salibi eval retrieval`` evaluates, and how: :class:`RetrievalSettings`.

Its field defaults are the command's option defaults (``cli/eval_retrieval.py`` reads them from
here), so this module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

from salibi.errors import InputError
from salibi.vocabulary import RANDOM_INIT

__all__ = ["ALL_CHIPS", "RETRIEVAL_SPLITS", "RetrievalSettings"]

#: The split that means every chip of the sets, whatever its split.
ALL_CHIPS = "all"
#: Which chips of the aligned sets are queried (``all``: every chip).
RETRIEVAL_SPLITS: tuple[str, ...] = ("train", "validation", "test", ALL_CHIPS)


@dataclass(frozen=True)
class RetrievalSettings:
    """Every setting of one retrieval evaluation (:func:`salibi.eval.retrieval.evaluate.evaluate_retrieval`).

    - ``split``: the chips queried (a split of the aligned sets, or ``all``); pretraining used the
      training split, so ``validation`` measures what generalises.
    - ``baseline``: ``random-init`` to evaluate the untrained twin beside the checkpoint (paired
      differences on the same resamples of the queries), or None.
    - ``batch_size``, ``device`` (``auto``, ``cpu``, ``cuda``) and ``attention`` (``auto``,
      ``sdpa``, ``flex``): how the model is run.
    """

    split: str = "validation"
    baseline: str | None = None
    batch_size: int = 64
    device: str = "auto"
    attention: str = "auto"

    def __post_init__(self) -> None:
        if self.split not in RETRIEVAL_SPLITS:
            raise InputError(f"--split {self.split}: choose one of {', '.join(RETRIEVAL_SPLITS)}")
        if self.baseline not in (None, RANDOM_INIT):
            raise InputError(f"--baseline {self.baseline}: the one baseline is {RANDOM_INIT}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be at least 1")

    @property
    def dataset_split(self) -> str | None:
        """The split :class:`salibi.data.AlignedDataset` takes (None: every chip)."""
        return None if self.split == ALL_CHIPS else self.split
