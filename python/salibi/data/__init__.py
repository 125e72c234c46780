"""Reading the training sets ``salibi align`` writes.

    from salibi.data import AlignedDataset, open_aligned

``open_aligned(path)`` opens one aligned HDF5 file read-only after checking its format and
version; ``AlignedDataset(paths, split=...)`` is a torch ``Dataset`` over one or several of
them (see :mod:`salibi.data.aligned`).
"""

from salibi.data.aligned import AlignedDataset, open_aligned

__all__ = ["AlignedDataset", "open_aligned"]
