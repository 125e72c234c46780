"""GEO-Bench (v1): the task folders of the official layout, read without the geobench package.

- :mod:`~salibi.eval.geobench.tasks`: tasks, their specs, partitions and samples as dicts;
- :mod:`~salibi.eval.geobench.safe_pickle`: the restricted unpickler of geobench's metadata,
  :mod:`~salibi.eval.geobench.pickle_writer` its inverse and
  :mod:`~salibi.eval.geobench.pickle_records` the inert records both use;
- :mod:`~salibi.eval.geobench.sample_tasks`: real-pixel tasks written in this layout (the ones
  shipped with salibi, and Sen1Floods11's).

Nothing is imported here.
"""
