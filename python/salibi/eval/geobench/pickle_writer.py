"""Write GEO-Bench metadata pickles without geobench: the inverse of :mod:`salibi.eval.geobench.safe_pickle`.

:func:`dumps` writes the protocol-4 opcodes itself, for the value types that occur in GEO-Bench
metadata (dicts, lists, tuples, numbers, text, bytes, dates, numpy arrays and the records of
:mod:`salibi.eval.geobench.pickle_records`, each under its geobench class path), so a task written by
:mod:`salibi.eval.geobench.sample_tasks` reads back like one written by geobench, with
:func:`salibi.eval.geobench.safe_pickle.loads` or geobench's own loader.
"""

from __future__ import annotations

import datetime
import io
import pickle
import struct
from typing import Any

import numpy as np

from salibi.eval.geobench.pickle_records import AffineRecord, CRSRecord, Record

__all__ = ["dumps", "dumps_attribute"]


class _Writer:
    """Protocol-4 opcodes for the value types that occur in GEO-Bench metadata."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def op(self, code: bytes, payload: bytes = b"") -> None:
        self.out.write(code + payload)

    def global_(self, module: str, name: str) -> None:
        self.str_(module)
        self.str_(name)
        self.op(pickle.STACK_GLOBAL)

    def str_(self, text: str) -> None:
        raw = text.encode("utf-8")
        if len(raw) < 256:
            self.op(pickle.SHORT_BINUNICODE, bytes([len(raw)]) + raw)
        else:
            self.op(pickle.BINUNICODE, struct.pack("<I", len(raw)) + raw)

    def bytes_(self, raw: bytes) -> None:
        if len(raw) < 256:
            self.op(pickle.SHORT_BINBYTES, bytes([len(raw)]) + raw)
        else:
            self.op(pickle.BINBYTES, struct.pack("<I", len(raw)) + raw)

    def tuple_(self, items: tuple[Any, ...] | list[Any]) -> None:
        self.op(pickle.MARK)
        for item in items:
            self.value(item)
        self.op(pickle.TUPLE)

    def value(self, v: Any) -> None:
        if v is None:
            self.op(pickle.NONE)
        elif v is True:
            self.op(pickle.NEWTRUE)
        elif v is False:
            self.op(pickle.NEWFALSE)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = int(v)
            if -(2**31) <= v < 2**31:
                self.op(pickle.BININT, struct.pack("<i", v))
            else:
                raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
                self.op(pickle.LONG1, bytes([len(raw)]) + raw)
        elif isinstance(v, (float, np.floating)):
            self.op(pickle.BINFLOAT, struct.pack(">d", float(v)))
        elif isinstance(v, str):
            self.str_(v)
        elif isinstance(v, bytes):
            self.bytes_(v)
        elif isinstance(v, AffineRecord):
            self.global_("affine", "Affine")
            self.tuple_(tuple(v))
            self.op(pickle.NEWOBJ)
        elif isinstance(v, CRSRecord):
            self.global_("rasterio.crs", "CRS")
            self.op(pickle.EMPTY_TUPLE)
            self.op(pickle.NEWOBJ)
            self.str_(v.wkt)
            self.op(pickle.BUILD)
        elif isinstance(v, Record):
            module, _, name = v.class_path.rpartition(".")
            self.global_(module, name)
            self.tuple_(v.args)
            self.op(pickle.NEWOBJ)
            self.value(dict(v.fields))
            self.op(pickle.BUILD)
        elif isinstance(v, tuple):
            self.tuple_(v)
        elif isinstance(v, list):
            self.op(pickle.EMPTY_LIST)
            if v:
                self.op(pickle.MARK)
                for item in v:
                    self.value(item)
                self.op(pickle.APPENDS)
        elif isinstance(v, dict):
            self.op(pickle.EMPTY_DICT)
            if v:
                self.op(pickle.MARK)
                for key, item in v.items():
                    self.value(key)
                    self.value(item)
                self.op(pickle.SETITEMS)
        elif isinstance(v, (datetime.datetime, datetime.date)):
            # The same (class, (packed bytes,)) reduction the standard library uses.
            packed: Any = v.__reduce__()[1]  # (bytes,) or (bytes, tzinfo)
            self.global_("datetime", type(v).__name__)
            self.tuple_(packed)
            self.op(pickle.REDUCE)
        elif isinstance(v, np.ndarray):
            self.array(v)
        else:
            raise TypeError(f"cannot write {type(v).__name__} into GEO-Bench metadata")

    def dtype(self, dtype: np.dtype) -> None:
        self.global_("numpy", "dtype")
        self.tuple_((f"{dtype.kind}{dtype.itemsize // (4 if dtype.kind == 'U' else 1)}", False, True))
        self.op(pickle.REDUCE)
        endian = "|" if dtype.itemsize == 1 or dtype.kind in "S" else ("<" if dtype.byteorder in "<=" else ">")
        elsize = dtype.itemsize if dtype.kind in "US" else -1
        self.tuple_(
            (3, endian, None, None, None, elsize, 4 if dtype.kind == "U" else -1, 8 if dtype.kind == "U" else 0)
        )
        self.op(pickle.BUILD)

    def array(self, a: np.ndarray) -> None:
        if a.dtype.kind not in "biufcUS":
            raise TypeError(f"cannot write a numpy array of dtype {a.dtype} into GEO-Bench metadata")
        a = np.ascontiguousarray(a)
        # numpy 1.x's own layout, which is what geobench 1.0 files contain.
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.op(pickle.MARK)
        self.global_("numpy", "ndarray")
        self.value((0,))
        self.value(b"b")
        self.op(pickle.TUPLE)
        self.op(pickle.REDUCE)
        self.op(pickle.MARK)
        self.value(1)
        self.value(tuple(a.shape))
        self.dtype(a.dtype)
        self.value(False)
        self.bytes_(a.tobytes())
        self.op(pickle.TUPLE)
        self.op(pickle.BUILD)


def dumps(value: Any) -> bytes:
    """Pickle ``value`` (dicts, lists, tuples, numbers, text, dates, numpy arrays, records).

    Records are written under their ``class_path``, so the output is what geobench itself
    would have written and reads back with :func:`loads` (or geobench's own loader).
    """
    writer = _Writer()
    writer.op(pickle.PROTO, b"\x04")
    writer.value(value)
    writer.op(pickle.STOP)
    return writer.out.getvalue()


def dumps_attribute(value: Any) -> str:
    """``dumps(value)`` as the text geobench stores in a sample's ``pickle`` attribute."""
    return str(dumps(value))
