"""salibi: Scale-ALiBi for remote sensing.

One transformer that learns from high-resolution optical, Sentinel-2 and Sentinel-1 imagery of
the same place, with attention biased by the *ground* distance between patches.

Submodules are imported on demand (``salibi.bias``, ``salibi.models``, ``salibi.data``, ...),
so ``import salibi`` and ``salibi --help`` stay instant.
"""

__version__ = "0.1.0"
