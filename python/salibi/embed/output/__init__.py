"""What ``salibi embed`` writes and how it is read back: the crash-safe store and its part files
(:mod:`.store`), the HDF5 (:mod:`.hdf5`) and GeoParquet (:mod:`.geoparquet`) layouts, the
one-pass merge of parts (:mod:`.merge`), and any output read into memory (:mod:`.embeddings`)."""
