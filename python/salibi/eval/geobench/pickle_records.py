"""Inert stand-ins for the objects in GEO-Bench's pickled metadata.

A :class:`Record` holds one geobench object's pickled fields under the class path it was
pickled as (``geobench.dataset.Sentinel2``, ``ccb.io.label.Classification``, ...);
:class:`AffineRecord` stands for an ``affine.Affine`` transform and :class:`CRSRecord` for a
``rasterio.crs.CRS``. :mod:`salibi.eval.geobench.safe_pickle` loads pickles into them and
:mod:`salibi.eval.geobench.pickle_writer` writes them back; nothing of the original classes runs.
"""

from __future__ import annotations

from typing import Any

from salibi.errors import DataFormatError

__all__ = ["AffineRecord", "CRSRecord", "Record", "make_record", "record_class"]


class Record:
    """An inert stand-in for one pickled geobench object.

    ``class_path`` is the class the pickle names (e.g. ``"geobench.dataset.Sentinel2"``),
    ``fields`` the object's pickled ``__dict__``, ``args`` any constructor arguments the
    pickle carried. Nothing of the original class runs.
    """

    class_path: str = "geobench.Record"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    fields: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Record:
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.fields = {}
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # REDUCE calls cls(*args): the arguments were stored by __new__.
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ values)
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        if isinstance(state, dict):
            self.fields.update({str(k): v for k, v in state.items()})
        else:
            self.fields["__state__"] = state

    @property
    def class_name(self) -> str:
        return self.class_path.rsplit(".", 1)[-1]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Record)
            and other.class_path == self.class_path
            and other.fields == self.fields
            and other.args == self.args
        )

    def __hash__(self) -> int:
        return hash((self.class_path, self.fields.get("name")))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"Record<{self.class_path}>({inner})"


_RECORD_CLASSES: dict[str, type[Record]] = {}


def record_class(class_path: str) -> type[Record]:
    """The :class:`Record` subclass standing for the geobench class ``class_path``.

    One class per path, so that records of one kind share a type (and pickles that refer to
    a class object itself, as old task specs do for ``eval_loss``, get a stable value).
    """
    cls = _RECORD_CLASSES.get(class_path)
    if cls is None:
        name = class_path.rsplit(".", 1)[-1]
        cls = type(name, (Record,), {"class_path": class_path, "__module__": __name__})
        _RECORD_CLASSES[class_path] = cls
    return cls


def make_record(class_path: str, **fields: Any) -> Record:
    """A record as geobench would have pickled it: class ``class_path`` with ``fields``."""
    record = record_class(class_path)()
    record.fields.update(fields)
    return record


class AffineRecord(tuple):
    """An ``affine.Affine`` transform as the plain tuple ``(a, b, c, d, e, f)``."""

    def __new__(cls, *values: Any) -> AffineRecord:
        if len(values) not in (6, 9) or not all(isinstance(v, (int, float)) for v in values):
            raise DataFormatError(f"affine.Affine with {len(values)} values {values!r}: expected 6 or 9 numbers")
        return super().__new__(cls, (float(v) for v in values[:6]))

    def __setstate__(self, state: Any) -> None:
        # affine 3.x pickles carry their fields again as state; the tuple already has them.
        pass


class CRSRecord:
    """A ``rasterio.crs.CRS`` as its WKT (or PROJ/EPSG text); never parsed while loading."""

    def __init__(self, wkt: str = "") -> None:
        self.wkt = wkt

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            state = state.get("wkt") or state.get("_wkt") or state.get("init") or ""
        if isinstance(state, bytes):
            state = state.decode("utf-8", "replace")
        self.wkt = str(state) if state is not None else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CRSRecord) and other.wkt == self.wkt

    def __hash__(self) -> int:
        return hash(self.wkt)

    def __repr__(self) -> str:
        return f"CRSRecord({self.wkt[:40]!r}{'...' if len(self.wkt) > 40 else ''})"
