"""Where the sample data shipped with salibi lies (``data/samples``; see ``data/README.md``).

Looked up, in order: ``$SALIBI_SAMPLES``; the copy inside the installed package
(``salibi/sample_data``, present in wheels); ``data/samples`` of a source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from salibi.errors import MissingInputError

__all__ = ["samples_dir", "sample_path"]

_PACKAGE_COPY = Path(__file__).resolve().parent / "sample_data"
_CHECKOUT_COPY = Path(__file__).resolve().parents[2] / "data" / "samples"
_WHERE = (
    "the samples ship in salibi's wheel and in a source checkout (data/samples); rebuild them with "
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
    for candidate in (_PACKAGE_COPY, _CHECKOUT_COPY):
        if (candidate / "SHA256SUMS").is_file():
            return candidate
    raise MissingInputError(f"sample data not found (looked in {_PACKAGE_COPY} and {_CHECKOUT_COPY}); {_WHERE}")


def sample_path(*parts: str) -> Path:
    """``samples_dir() / parts``, which must exist."""
    path = samples_dir().joinpath(*parts)
    if not path.exists():
        raise MissingInputError(f"{path}: not in the sample data; {_WHERE}")
    return path
