"""Cross-modal retrieval (``salibi eval retrieval``): what the contrastive objective learned, measured.

For every ordered pair ``a->b`` of the modalities an aligned set and a checkpoint share, chip ``i``
in modality ``a`` is the query and chip ``i`` in modality ``b`` the one right answer among all
chips of ``b``: recall@1, @5, @10 and the median rank, by cosine similarity in the shared space
the InfoNCE loss compares (:meth:`~salibi.models.ScaleAlibiModel.project`), each with its 95 %
bootstrap interval over queries, chance beside it, and -- against the untrained twin
(:mod:`salibi.eval.baseline`) -- the paired difference on the same resamples.

::

    from salibi.eval.retrieval.evaluate import evaluate_retrieval
    from salibi.eval.retrieval.settings import RetrievalSettings
    document = evaluate_retrieval(["set.h5"], "runs/first", RetrievalSettings(baseline="random-init"))
    document["results"]["lores->hires"]["recall@1"]

Modules: :mod:`~salibi.eval.retrieval.settings` (:class:`RetrievalSettings`, the command's
option defaults), :mod:`~salibi.eval.retrieval.projections` (the sets read, bands matched, every
chip projected per modality, batched on the model's device), :mod:`~salibi.eval.retrieval.recall`
(ranks, recall@k, median rank, chance, bootstrap replicates over queries),
:mod:`~salibi.eval.retrieval.report` (the ``salibi-retrieval`` JSON document and its Markdown
table) and :mod:`~salibi.eval.retrieval.evaluate` (the evaluation as one call). Intervals and
paired differences are :mod:`salibi.eval.scoring`'s, as for GEO-Bench. Nothing is imported here.
"""
