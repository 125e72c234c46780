"""Read GEO-Bench's pickled metadata without running anything.

GEO-Bench stores task specifications (``task_specs.pkl``) and per-sample band metadata (the
``pickle`` attribute of each sample HDF5 file) as pickles of geobench objects. These files
come from a download, and a pickle can call any importable function while it loads, so the
standard loader must never see them.

It accepts no more than geobench 1.1.0's own restricted unpickler (``geobench/_safe_pickle.py``)
accepts, and builds less. :func:`loads`'s ``find_class`` never imports anything:

- the classes of geobench 1.1.0 (:data:`GEOBENCH_CLASSES`), under the module paths geobench
  resolves them from (``geobench``, ``geobench.dataset``, ``geobench.label``, ``geobench.task``,
  the historic ``geobench.io.*`` and ``ccb.io.*``), become inert
  :class:`~salibi.eval.geobench.pickle_records.Record` objects holding the pickled fields;
- ``affine.Affine`` becomes an :class:`~salibi.eval.geobench.pickle_records.AffineRecord` (a plain
  6-tuple ``a, b, c, d, e, f``; affine 3.x cannot restore affine-2 pickles) and
  ``rasterio.crs.CRS`` a :class:`~salibi.eval.geobench.pickle_records.CRSRecord` holding the WKT text;
- numpy arrays, numpy scalars and dtypes are rebuilt by this module from the pickled bytes
  with ``numpy.frombuffer`` (plain numeric and string dtypes only: object dtypes would make
  numpy call the standard unpickler itself);
- ``datetime`` values and ``collections.OrderedDict`` load as usual.

Everything else raises :class:`salibi.errors.UnsafePickleError`, e.g. "refusing to unpickle
os.system from task_specs.pkl", before it is called -- builtins such as ``bytearray`` (one
opcode could ask for terabytes), ``set``, ``_codecs.encode`` and ``copyreg._reconstructor``
included, as in geobench 1.1.0. The functions a pickle may call are wrapped, so a BUILD opcode
aimed at one of them (to set ``__defaults__``, say) is refused instead of changing it for the
rest of the process.

The writer is :mod:`salibi.eval.geobench.pickle_writer`, the records :mod:`salibi.eval.geobench.pickle_records`;
both are importable from here too (``from salibi.eval.geobench.safe_pickle import loads, dumps,
make_record, Record, ...``).
"""

from __future__ import annotations

import ast
import datetime
import io
import pickle
import re
from collections import OrderedDict
from typing import Any

import numpy as np

from salibi.errors import DataFormatError, UnsafePickleError
from salibi.eval.geobench.pickle_records import AffineRecord, CRSRecord, Record, make_record, record_class
from salibi.eval.geobench.pickle_writer import dumps, dumps_attribute

__all__ = [
    "AffineRecord",
    "CRSRecord",
    "Record",
    "dumps",
    "dumps_attribute",
    "loads",
    "loads_attribute",
    "make_record",
    "record_class",
]

# The classes geobench 1.1.0's restricted unpickler accepts: a class defined in (or imported
# into) geobench/dataset.py, label.py or task.py, looked up under a module path geobench maps
# to that file; the package paths (``import *`` of all three) accept any of them.
_DATASET_CLASSES = frozenset(
    {
        "BandInfo",
        "SpectralBand",
        "Sentinel1",
        "Sentinel2",
        "Landsat8",
        "Mask",
        "ElevationBand",
        "MultiBand",
        "HyperSpectralBands",
        "CloudProbability",
        "SegmentationClasses",
        "Band",
        "Sample",
        "Partition",
        "GeneratorWithLength",
        "GeobenchDataset",
        "Stats",
        "LabelType",  # imported from geobench.label
    }
)
_LABEL_CLASSES = frozenset(
    {"LabelType", "Classification", "SemanticSegmentation", "MultiLabelClassification", "Detection"}
)
_TASK_CLASSES = frozenset(
    {"TaskSpecifications", "SegmentationAccuracy", "Accuracy", "MultilabelAccuracy", "GeobenchDataset", "Sample"}
)
_PACKAGE_CLASSES = _DATASET_CLASSES | _LABEL_CLASSES | _TASK_CLASSES
#: module path -> the geobench 1.1.0 class names a pickle may name there.
GEOBENCH_CLASSES: dict[str, frozenset[str]] = {
    **{f"{root}.dataset": _DATASET_CLASSES for root in ("geobench", "geobench.io", "ccb.io")},
    **{f"{root}.label": _LABEL_CLASSES for root in ("geobench", "geobench.io", "ccb.io")},
    **{f"{root}.task": _TASK_CLASSES for root in ("geobench", "geobench.io", "ccb.io")},
    **{root: _PACKAGE_CLASSES for root in ("geobench", "geobench.io", "ccb", "ccb.io")},
}


# -- numpy, rebuilt from bytes ------------------------------------------------------------

_SIMPLE_DTYPE = re.compile(r"^[<>|=]?([biufcUS])(\d*)$")


class _Callable:
    """A function a pickle may call (REDUCE), and nothing more: a BUILD opcode aimed at it is
    refused, where on a plain function it would set attributes such as ``__defaults__`` for the
    rest of the process. ``function=None``: a tag that is not callable at all."""

    __slots__ = ("function", "name")

    def __init__(self, name: str, function: Any = None) -> None:
        self.name, self.function = name, function

    def __call__(self, *args: Any) -> Any:
        if self.function is None:
            raise UnsafePickleError(f"refusing to call {self.name}")
        return self.function(*args)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refusing to set state on {self.name}")


#: What ``numpy.ndarray`` resolves to: only a tag for ``_reconstruct``'s first argument.
_NDARRAY = _Callable("numpy.ndarray")


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
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"refusing to rebuild a numpy array of type {subtype!r}: only numpy.ndarray is allowed")
    return _PendingArray()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _array_from_bytes(buffer, _as_dtype(dtype), tuple(shape), order == "F")


def _scalar(dtype: Any, raw: Any = None) -> Any:
    return _array_from_bytes(raw, _as_dtype(dtype), (), False)[()]


#: (module, name) -> what the pickle gets for that global. Only what geobench 1.1.0 accepts.
_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Callable("numpy.dtype", _PendingDtype),
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("collections", "OrderedDict"): OrderedDict,
    ("affine", "Affine"): AffineRecord,
    ("rasterio.crs", "CRS"): CRSRecord,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _GLOBALS[(_module, "_reconstruct")] = _Callable(f"{_module}._reconstruct", _reconstruct)
    _GLOBALS[(_module, "scalar")] = _Callable(f"{_module}.scalar", _scalar)
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _GLOBALS[(_module, "_frombuffer")] = _Callable(f"{_module}._frombuffer", _frombuffer)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is not None:
            return found
        if name in GEOBENCH_CLASSES.get(module, ()):
            # A type (NEWOBJ needs one); BUILD on it calls Record.__setstate__ unbound and fails.
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
