"""Frozen-encoder evaluation on GEO-Bench and GEO-Bench-2 (``salibi eval geobench``).

::

    from salibi.eval.evaluate import evaluate_geobench                 # the evaluation as a call
    from salibi.eval.settings import GeoBenchSettings                  # what it evaluates, and how
    from salibi.eval.geobench.sample_tasks import write_shipped_tasks  # the real-pixel tasks shipped with salibi
    from salibi.eval.scoring.bootstrap import bootstrap_interval, paired_bootstrap_difference  # intervals

At this level, the evaluation itself: :mod:`~salibi.eval.settings` (:class:`GeoBenchSettings`,
light enough for the command line's defaults), :mod:`~salibi.eval.evaluate` (every task,
partition, protocol and seed into one results document), :mod:`~salibi.eval.command` (the
command as calls: resumed, written to its files, the random-init baseline beside it),
:mod:`~salibi.eval.benchmarks` (which benchmark a root holds), :mod:`~salibi.eval.band_matching`
(task bands -> checkpoint modalities), :mod:`~salibi.eval.partitions` (which training samples
each partition uses), :mod:`~salibi.eval.model_inputs` (samples as normalised model inputs),
:mod:`~salibi.eval.features` (streamed, shape-batched encoding, pooled as the model pools) and
:mod:`~salibi.eval.baseline` (the same model untrained, the reference every number needs).

Its rooms: :mod:`~salibi.eval.geobench` (GEO-Bench v1 task folders, the safe unpickler, the
shipped tasks), :mod:`~salibi.eval.geobench2` (tortilla files, dataset conventions, sensor
routing), :mod:`~salibi.eval.protocols` (knn, linear probe, segmentation heads, on arrays),
:mod:`~salibi.eval.scoring` (metrics, bootstrap intervals, paired differences, GEO-Bench's
aggregate), :mod:`~salibi.eval.output` (the results document, its files, tables and charts,
the CSV and the saved features) and :mod:`~salibi.eval.retrieval` (``salibi eval retrieval``:
cross-modal retrieval on aligned sets in the shared contrastive space). Nothing is imported here.
"""
