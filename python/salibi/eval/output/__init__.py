"""What an evaluation leaves: the results document and the files and tables made from it.

- :mod:`~salibi.eval.output.results`: the results document (format ``salibi-eval-results``):
  its runs, summaries, resuming, reading and writing;
- :mod:`~salibi.eval.output.files`: the files one evaluation writes beside ``--output``;
- :mod:`~salibi.eval.output.report`: Markdown tables (results, data efficiency, comparison,
  GEO-Bench's aggregate) and PNG charts;
- :mod:`~salibi.eval.output.csv_export`: the runs as torchgeo-bench's CSV rows;
- :mod:`~salibi.eval.output.feature_store`: ``--save-features``, one HDF5 file per task and split.

Nothing is imported here.
"""
