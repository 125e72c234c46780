"""Frozen-encoder evaluation on GEO-Bench (``salibi eval geobench``).

::

    from salibi.eval.run import evaluate_geobench            # the whole command as a call
    from salibi.eval.geobench import discover_tasks, open_task  # the reader (no geobench package)
    from salibi.eval.sample_tasks import write_shipped_tasks  # the real-pixel tasks shipped with salibi

Modules: :mod:`~salibi.eval.safe_pickle` (restricted unpickler for geobench metadata),
:mod:`~salibi.eval.pickle_writer` (its inverse) and :mod:`~salibi.eval.pickle_records` (the
inert records both use), :mod:`~salibi.eval.geobench` (tasks, specs, partitions, samples as dicts),
:mod:`~salibi.eval.bands` (task bands -> checkpoint modalities), :mod:`~salibi.eval.features`
(streamed, shape-batched encoding), :mod:`~salibi.eval.protocols` (kNN, linear probe,
segmentation head, metrics), :mod:`~salibi.eval.run` and :mod:`~salibi.eval.report` (results
JSON, Markdown, PNG, comparisons). Nothing heavy is imported here.
"""
