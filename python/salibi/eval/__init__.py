"""Frozen-encoder evaluation on GEO-Bench (``salibi eval geobench``).

::

    from salibi.eval.evaluate import evaluate_geobench            # the whole command as a call
    from salibi.eval.geobench.tasks import discover_tasks, open_task  # the reader (no geobench package)
    from salibi.eval.geobench.sample_tasks import write_shipped_tasks  # the real-pixel tasks shipped with salibi
    from salibi.eval.scoring.bootstrap import bootstrap_interval, paired_bootstrap_difference  # intervals

Reading: :mod:`~salibi.eval.geobench.safe_pickle` (restricted unpickler for geobench metadata),
:mod:`~salibi.eval.geobench.pickle_writer` (its inverse) and :mod:`~salibi.eval.geobench.pickle_records` (the
inert records both use), :mod:`~salibi.eval.geobench.tasks` (tasks, specs, partitions, samples as
dicts), :mod:`~salibi.eval.band_matching` (task bands -> checkpoint modalities),
:mod:`~salibi.eval.features` (streamed, shape-batched encoding).

Protocols on arrays, independent of the reader: :mod:`~salibi.eval.protocols.registry` (the registry
and its parameters), :mod:`~salibi.eval.protocols.knn`, :mod:`~salibi.eval.protocols.linear_probe`,
:mod:`~salibi.eval.protocols.segmentation_heads`; :mod:`~salibi.eval.scoring.task_metrics` (every metric on any
resample of the test set) and :mod:`~salibi.eval.scoring.bootstrap` (bootstrap intervals, IQM).

Outputs: :mod:`~salibi.eval.evaluate` (the command as a call), :mod:`~salibi.eval.output.results` (the
results document and its runs), :mod:`~salibi.eval.output.report` (JSON, Markdown, PNG),
:mod:`~salibi.eval.output.csv_export` (torchgeo-bench's CSV), :mod:`~salibi.eval.scoring.aggregation`
(GEO-Bench's IQM aggregate) and :mod:`~salibi.eval.output.feature_store` (``--save-features``).
Nothing heavy is imported here.
"""
