"""Where the sample data shipped with salibi lies (see ``data/README.md``).

The samples are package data (``salibi/sample_data``, which ``data/samples`` of a source
checkout links to), so an installed wheel has them too. ``$SALIBI_SAMPLES`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from salibi.errors import MissingInputError

__all__ = ["samples_dir", "sample_path"]

_PACKAGE_COPY = Path(__file__).resolve().parent / "sample_data"
_WHERE = (
    "the samples ship in salibi's wheel and source checkout (python/salibi/sample_data); rebuild them with "
    "`python data/make_samples.py` from the repository, or point SALIBI_SAMPLES at a copy"
)


def samples_dir() -> Path:
    """The folder holding the sample data, or :class:`MissingInputError` saying how to get it."""
    override = os.environ.get("SALIBI_SAMPLES")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise MissingInputError(f"SALIBI_SAMPLES={override}: not a folder; {_WHERE}")
        return path
    if (_PACKAGE_COPY / "SHA256SUMS").is_file():
        return _PACKAGE_COPY
    raise MissingInputError(f"sample data not found in {_PACKAGE_COPY}; {_WHERE}")


def sample_path(*parts: str) -> Path:
    """``samples_dir() / parts``, which must exist."""
    path = samples_dir().joinpath(*parts)
    if not path.exists():
        raise MissingInputError(f"{path}: not in the sample data; {_WHERE}")
    return path
