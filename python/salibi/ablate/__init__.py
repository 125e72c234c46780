"""``salibi ablate``: the position-information ablation the Scale-ALiBi paper's referee asked for.

For each variant (``scale-alibi``, ``alibi``, ``sincos``, ``none``) and seed, one ``salibi
pretrain`` run identical in everything but ``--variant`` (data order, masks, schedule and the
initial weights of every shared parameter: checked, digest by digest), then ``salibi eval
geobench`` of its final checkpoint; the same model untrained (``random-init``,
:mod:`salibi.eval.baseline`) through the same evaluation; every variant's difference from
``scale-alibi`` with a paired bootstrap interval over the same test samples (and seeds), from the
evaluations' bootstrap replicates (:mod:`salibi.eval.scoring.differences`). Modules:

- :mod:`~salibi.ablate.study_plan`: :class:`AblationSettings`, the study folder, the run commands;
- :mod:`~salibi.ablate.training`: shared initialisation checks, runs trained/resumed/skipped, the untrained model;
- :mod:`~salibi.ablate.report`: ``ablation.json``, ``ablation.md``, ``ablation.png``;
- :mod:`~salibi.ablate.study`: :func:`run_ablation`, the whole study, resumable.

docs/ABLATION.md describes the study and how to read it.
"""

from __future__ import annotations

from salibi.ablate.study import AblationStudy, run_ablation
from salibi.ablate.study_plan import REFERENCE, AblationSettings

__all__ = ["REFERENCE", "AblationSettings", "AblationStudy", "run_ablation"]
