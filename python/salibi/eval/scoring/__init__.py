"""Scoring evaluation outputs: every number with its interval.

- :mod:`~salibi.eval.scoring.task_metrics`: the metrics of each kind of task (and its headline
  one), computable on any resample of the test samples;
- :mod:`~salibi.eval.scoring.bootstrap`: bootstrap intervals over test samples, paired
  differences, the interquartile mean and its stratified bootstrap (the one confidence level,
  :data:`~salibi.eval.scoring.bootstrap.CONFIDENCE`);
- :mod:`~salibi.eval.scoring.differences`: values and paired differences of results documents,
  over pretraining seeds and test samples, from their stored bootstrap replicates;
- :mod:`~salibi.eval.scoring.aggregation`: GEO-Bench's IQM aggregate over tasks.

Nothing is imported here.
"""
