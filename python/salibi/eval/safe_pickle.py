"""Read (and write) GEO-Bench's pickled metadata without running anything.

GEO-Bench stores task specifications (``task_specs.pkl``) and per-sample band metadata (the
``pickle`` attribute of each sample HDF5 file) as pickles of geobench objects. These files
come from a download, and a pickle can call any importable function while it loads, so the
standard loader must never see them.

:func:`loads` uses a restricted unpickler whose ``find_class`` never imports anything:

- geobench classes, under every module path they were written from (``geobench.dataset``,
  ``geobench.label``, ``geobench.task``, the historic ``geobench.io.*`` and ``ccb.io.*``),
  become inert :class:`Record` objects holding the pickled fields;
- ``affine.Affine`` becomes an :class:`AffineRecord` (a plain 6-tuple ``a, b, c, d, e, f``;
  affine 3.x cannot restore affine-2 pickles) and ``rasterio.crs.CRS`` a :class:`CRSRecord`
  holding the WKT text;
- numpy arrays, numpy scalars and dtypes are rebuilt by this module from the pickled bytes
  with ``numpy.frombuffer`` (plain numeric and string dtypes only: object dtypes would make
  numpy call the standard unpickler itself);
- ``datetime`` values, ``collections.OrderedDict`` and a few builtin containers load as usual.

Everything else raises :class:`salibi.errors.UnsafePickleError`, e.g. "refusing to unpickle
os.system from task_specs.pkl", before it is called.

:func:`dumps` is the inverse for this module's own records: it writes the opcodes itself
(protocol 4, the geobench class paths given to each record), so a task written by
:mod:`salibi.eval.sample_tasks` reads back like one written by geobench.
"""

from __future__ import annotations

import ast
import datetime
import io
import pickle
import re
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, UnsafePickleError

__all__ = [
    "AffineRecord",
    "CRSRecord",
    "Record",
    "dumps",
    "loads",
    "loads_attribute",
    "record_class",
]

# Module paths geobench pickles were written under (current, historic, pre-release name).
_GEOBENCH_MODULE = re.compile(r"^(geobench|ccb)(\.io)?(\.(dataset|label|task|label_map|bandstats))?$")


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


# -- numpy, rebuilt from bytes ------------------------------------------------------------

_SIMPLE_DTYPE = re.compile(r"^[<>|=]?([biufcUS])(\d*)$")


class _NDArrayMarker:
    """What ``numpy.ndarray`` resolves to: only a tag for ``_reconstruct``'s first argument."""


class _PendingDtype:
    """``numpy.dtype(...)`` as pickled: arguments, then byte order and size from BUILD."""

    def __init__(self, spec: Any = None, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str) or not _SIMPLE_DTYPE.match(spec):
            raise UnsafePickleError(
                f"refusing numpy dtype {spec!r}: only plain numeric and string dtypes occur in GEO-Bench metadata"
            )
        self.spec = spec
        self.state: tuple[Any, ...] = ()

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 8:
            raise DataFormatError(f"numpy dtype state {state!r} has an unexpected form")
        if state[2] is not None or state[3] is not None or state[4] is not None:
            raise UnsafePickleError("refusing a structured numpy dtype: GEO-Bench metadata has none")
        self.state = state

    def resolve(self) -> np.dtype:
        match = _SIMPLE_DTYPE.match(self.spec)
        assert match is not None  # checked in __init__
        kind, size = match.group(1), match.group(2)
        endian: Any = self.state[1] if self.state else "="
        if kind in "US" and self.state and isinstance(self.state[5], int) and self.state[5] > 0:
            size = str(self.state[5] // (4 if kind == "U" else 1))
        dtype = np.dtype(kind + size)
        if endian in ("<", ">"):
            dtype = dtype.newbyteorder(endian)
        if dtype.hasobject:  # cannot happen for the kinds above; kept as the invariant
            raise UnsafePickleError("refusing an object numpy dtype")
        return dtype


def _as_dtype(value: Any) -> np.dtype:
    if isinstance(value, _PendingDtype):
        return value.resolve()
    if isinstance(value, str) and _SIMPLE_DTYPE.match(value):
        return np.dtype(value)
    raise UnsafePickleError(f"refusing numpy dtype {value!r}: only plain numeric and string dtypes are allowed")


def _array_from_bytes(raw: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    if isinstance(raw, (list, tuple)):
        raise UnsafePickleError("refusing a numpy array of Python objects")
    if isinstance(raw, str):  # protocol 0-2 pickles of numpy 1.x wrote the bytes as latin-1 text
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise DataFormatError(f"numpy array data of type {type(raw).__name__}: expected bytes")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DataFormatError(f"numpy array shape {shape!r} is not a tuple of sizes")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    data = bytes(raw)
    if count * dtype.itemsize != len(data):
        raise DataFormatError(
            f"numpy array of shape {shape} and dtype {dtype} needs "
            f"{count * dtype.itemsize} bytes, the pickle holds {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="))  # a native-order copy, as numpy's own loader gives


class _PendingArray:
    """``numpy.core.multiarray._reconstruct(ndarray, ...)``: becomes an array at BUILD."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DataFormatError(f"numpy array state of length {len(state) if isinstance(state, tuple) else '?'}")
        if len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data)
        shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, _as_dtype(dtype), tuple(shape), bool(fortran))


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
    if subtype is not _NDArrayMarker:
        raise UnsafePickleError(f"refusing to rebuild a numpy array of type {subtype!r}: only numpy.ndarray is allowed")
    return _PendingArray()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array_from_bytes(buffer, _as_dtype(dtype), tuple(shape), order == "F")


def _scalar(dtype: Any, raw: Any = None) -> Any:
    return _array_from_bytes(raw, _as_dtype(dtype), (), False)[()]


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol 2 pickles write bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 instances: copyreg._reconstructor(cls, object, None).
    if not (isinstance(cls, type) and issubclass(cls, Record)) or base is not object or state is not None:
        raise UnsafePickleError(f"refusing copyreg._reconstructor({cls!r}, {base!r}, ...)")
    return cls()


_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDArrayMarker, ("numpy", "dtype"): _PendingDtype}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY_GLOBALS[(_module, "_reconstruct")] = _reconstruct
    _NUMPY_GLOBALS[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _NUMPY_GLOBALS[(_module, "_frombuffer")] = _frombuffer

_PLAIN_GLOBALS: dict[tuple[str, str], Any] = {
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("__builtin__", "object"): object,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
    ("affine", "Affine"): AffineRecord,
    ("rasterio.crs", "CRS"): CRSRecord,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[key]
        if key in _PLAIN_GLOBALS:
            return _PLAIN_GLOBALS[key]
        if _GEOBENCH_MODULE.match(module) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            return record_class(f"{module}.{name}")
        raise UnsafePickleError(
            f"refusing to unpickle {module}.{name} from {self.source}: GEO-Bench metadata holds only geobench "
            "records, numpy arrays and dates, so this file was not written by geobench or was altered. "
            "Nothing was run. Re-download the task from the official source."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing a persistent reference in {self.source}")


def _resolve(value: Any, depth: int = 0) -> Any:
    """Replace pending arrays with the arrays they became (in place for mutable containers)."""
    if depth > 200:
        raise DataFormatError("pickle nests deeper than 200 levels")
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise DataFormatError("numpy array without data in pickle")
        return value.array
    if isinstance(value, _PendingDtype):
        return value.resolve()
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _resolve(value[key], depth + 1)
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _resolve(item, depth + 1)
        return value
    if type(value) is tuple:
        return tuple(_resolve(item, depth + 1) for item in value)
    if isinstance(value, Record):
        _resolve(value.fields, depth + 1)
        value.args = tuple(_resolve(a, depth + 1) for a in value.args)
        return value
    return value


def loads(data: bytes, source: str = "<pickle>") -> Any:
    """Unpickle GEO-Bench metadata from ``data`` without importing or calling anything unsafe.

    ``source`` names the file in error messages. Raises :class:`UnsafePickleError` for a
    reference outside the allowed classes and :class:`DataFormatError` for a damaged pickle.
    """
    try:
        result = _RestrictedUnpickler(io.BytesIO(data), source).load()
        return _resolve(result)
    except (UnsafePickleError, DataFormatError):
        raise
    except RecursionError:
        raise DataFormatError(f"{source}: the pickle nests too deeply to be GEO-Bench metadata") from None
    except Exception as err:  # any malformed stream: truncated, bad opcode, wrong arity
        raise DataFormatError(f"{source}: damaged pickle ({type(err).__name__}: {err}); re-download the file") from None


def loads_attribute(text: Any, source: str = "<attribute>") -> Any:
    """Decode a sample file's ``pickle`` attribute (the text ``str(pickle.dumps(...))``) and load it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFormatError(f"{source}: the 'pickle' attribute is not text") from None
    if isinstance(text, np.ndarray) and text.shape == ():
        text = text.item()
    if not isinstance(text, str):
        raise DataFormatError(f"{source}: the 'pickle' attribute is {type(text).__name__}, expected text")
    try:
        # A bytes literal: literal_eval evaluates no names and calls nothing.
        data = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise DataFormatError(f"{source}: the 'pickle' attribute is not a Python bytes literal") from None
    if not isinstance(data, bytes):
        raise DataFormatError(f"{source}: the 'pickle' attribute holds {type(data).__name__}, expected bytes")
    return loads(data, source)


# -- writer -------------------------------------------------------------------------------


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
