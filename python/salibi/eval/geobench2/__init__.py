"""GEO-Bench-2: its datasets read from the tortilla files the official reader finds after download.

- :mod:`~salibi.eval.geobench2.tortilla`: the tortilla container (header, footer, item table);
- :mod:`~salibi.eval.geobench2.payloads`: the GeoTIFF and HDF5 items inside it;
- :mod:`~salibi.eval.geobench2.conventions`: the vocabulary of a dataset's layout (sources,
  bands, labels), and :mod:`~salibi.eval.geobench2.datasets` every dataset written in it;
- :mod:`~salibi.eval.geobench2.reader`: the datasets under a root as tasks (:class:`~salibi.eval.geobench2.reader.GeoBench2Task`);
- :mod:`~salibi.eval.geobench2.modality_routing`: which encoders of a checkpoint a task feeds, and with which bands.

Nothing is imported here.
"""
