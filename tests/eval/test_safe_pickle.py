"""The restricted unpickler: real geobench pickles load as records, hostile ones never run."""

from __future__ import annotations

import datetime
import io
import os
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest

from salibi.errors import DataFormatError, UnsafePickleError
from salibi.eval.geobench import safe_pickle
from salibi.eval.geobench.safe_pickle import AffineRecord, CRSRecord, Record, make_record

from .conftest import REAL


class _RunsCommand:
    """Pickles as a call to ``function(command)``: the classic pickle exploit."""

    def __init__(self, function, command):
        self.function, self.command = function, command

    def __reduce__(self):
        return (self.function, (self.command,))


def _touch_command(marker: Path) -> str:
    return f"touch {marker}"


# -- real files ---------------------------------------------------------------------------


def test_real_task_specs_load_as_records():
    specs = safe_pickle.loads((REAL / "classification_v1.0/m-eurosat/task_specs.pkl").read_bytes(), "task_specs.pkl")
    assert isinstance(specs, Record)
    assert specs.class_path == "geobench.io.task.TaskSpecifications"
    assert specs.get("patch_size") == (64, 64)
    bands = specs.get("bands_info")
    assert [b.class_name for b in bands] == ["Sentinel2"] * 13
    assert bands[3].get("name") == "04 - Red" and bands[3].get("wavelength") == pytest.approx(0.665)
    assert specs.get("label_type").get("n_classes") == 10


def test_old_ccb_task_specs_with_class_reference_load():
    specs = safe_pickle.loads((REAL / "official_tests/brick_kiln_v1.0/task_specs.pkl").read_bytes())
    assert specs.class_path == "ccb.io.task.TaskSpecifications"
    # eval_loss is a class object itself in these old files: it becomes the record type.
    assert isinstance(specs.get("eval_loss"), type) and issubclass(specs.get("eval_loss"), Record)
    assert specs.get("label_type").class_path == "ccb.io.label.Classification"
    assert len(specs.get("label_map")["0"]) > 1000


def test_sample_attribute_decodes_from_bytes_literal_text():
    import h5py

    with h5py.File(REAL / "classification_v1.0/m-eurosat/id_0002.hdf5") as f:
        text = f.attrs["pickle"]
    assert isinstance(text, str) and text.startswith("b")
    attrs = safe_pickle.loads_attribute(text, "id_0002.hdf5")
    assert isinstance(attrs["label"], int)
    assert attrs["bands_order"][0] == "01 - Coastal aerosol"
    assert attrs["02 - Blue"]["band_info"].class_path == "geobench.io.dataset.Sentinel2"


# -- numpy, dates, affine, CRS ------------------------------------------------------------


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype="<i2").reshape(2, 3),
        np.eye(43, dtype=np.int64)[7],
        np.array(["ab", "c"]),
        np.ones((2, 3), dtype=">f4"),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array([True, False]),
    ],
    ids=["int16", "multi-hot", "unicode", "big-endian", "fortran", "bool"],
)
def test_numpy_arrays_pickled_by_numpy_are_rebuilt(array, protocol):
    loaded = safe_pickle.loads(pickle.dumps(array, protocol=protocol))
    assert isinstance(loaded, np.ndarray)
    assert loaded.shape == array.shape and loaded.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(loaded, array)


def test_numpy_scalars_and_dates():
    value = {
        "label": np.int64(7),
        "x": np.float32(2.5),
        "d": datetime.date(2020, 1, 5),
        "t": datetime.datetime(2020, 1, 5, 3, 4, 5),
    }
    loaded = safe_pickle.loads(pickle.dumps(value))
    assert loaded["label"] == 7 and int(loaded["label"]) == 7
    assert loaded["x"] == pytest.approx(2.5)
    assert loaded["d"] == datetime.date(2020, 1, 5) and loaded["t"] == datetime.datetime(2020, 1, 5, 3, 4, 5)


def test_affine_and_crs_become_plain_records():
    import affine
    from rasterio.crs import CRS

    loaded = safe_pickle.loads(
        pickle.dumps({"transform": affine.Affine(10, 0, 5e5, 0, -10, 4e6), "crs": CRS.from_epsg(32631)})
    )
    assert isinstance(loaded["transform"], AffineRecord) and tuple(loaded["transform"]) == (10, 0, 5e5, 0, -10, 4e6)
    assert isinstance(loaded["crs"], CRSRecord) and 'AUTHORITY["EPSG","32631"]' in loaded["crs"].wkt


def test_affine2_namedtuple_pickle_with_nine_values():
    # affine 2.x was a namedtuple: NEWOBJ with its nine values (older releases), no state.
    def text(value: str) -> bytes:
        return b"\x8c" + bytes([len(value)]) + value.encode()

    nine = (10.0, 0.0, 5e5, 0.0, -10.0, 4e6, 0.0, 0.0, 1.0)
    data = (
        b"\x80\x04"
        + text("affine")
        + text("Affine")
        + b"\x93("
        + b"".join(b"G" + struct.pack(">d", v) for v in nine)
        + b"t\x81."
    )
    pickletools.dis(data, out=io.StringIO())  # a well-formed stream
    assert tuple(safe_pickle.loads(data)) == nine[:6]


# -- the writer ---------------------------------------------------------------------------


def test_writer_output_reads_back_with_both_loaders(fixture_generator):
    record = make_record(
        "geobench.dataset.Sentinel2",
        name="04 - Red",
        alt_names=("4", "04", "red"),
        spatial_resolution=10,
        wavelength=0.665,
    )
    value = {
        "band": record,
        "label": np.array([0, 1, 1, 0], dtype=np.int64),
        "date": datetime.date(2019, 9, 18),
        "numbers": [1, -5, 2**40, 1.5, None, True, "x" * 300, (1, 2)],
    }
    geo = {"transform": AffineRecord(10.0, 0.0, 5e5, 0.0, -10.0, 4e6), "crs": CRSRecord("EPSG:32631")}
    loaded = safe_pickle.loads(safe_pickle.dumps({**value, **geo}))
    np.testing.assert_array_equal(loaded["label"], value["label"])
    assert loaded["band"] == record and loaded["date"] == value["date"] and loaded["numbers"] == value["numbers"]
    assert tuple(loaded["transform"]) == tuple(geo["transform"]) and loaded["crs"].wkt == "EPSG:32631"

    # The standard loader reads it too, given classes at geobench's paths: it is what geobench writes.
    with fixture_generator.geobench_modules("geobench") as gb:
        plain = pickle.loads(safe_pickle.dumps(value))
    assert isinstance(plain["band"], gb.Sentinel2)
    assert plain["band"].name == "04 - Red" and plain["band"].wavelength == pytest.approx(0.665)
    np.testing.assert_array_equal(plain["label"], value["label"])
    assert plain["date"] == value["date"] and plain["numbers"] == value["numbers"]


# -- hostile pickles ----------------------------------------------------------------------


def test_os_system_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RunsCommand(os.system, _touch_command(marker)))
    with pytest.raises(UnsafePickleError) as err:
        safe_pickle.loads(data, source="task_specs.pkl")
    assert "system" in str(err.value) and "task_specs.pkl" in str(err.value)
    assert not marker.exists()


def test_protocol0_os_system_names_the_callable(tmp_path):
    marker = tmp_path / "pwned"
    data = f"cos\nsystem\n(V{_touch_command(marker)}\ntR.".encode()
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle os\.system from task_specs\.pkl"):
        safe_pickle.loads(data, source="task_specs.pkl")
    assert not marker.exists()


def test_builtins_eval_inside_a_geobench_record_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    record = make_record("geobench.dataset.Sentinel2", name="x")
    record.fields["wavelength"] = 1.0
    data = safe_pickle.dumps({"band": record})
    # Protocol 3: no frames or memo clashes, so its opcodes (without PROTO and STOP) splice in.
    hostile = pickle.dumps(_RunsCommand(eval, f"open({str(marker)!r}, 'w')"), protocol=3)[2:-1]
    data = data.replace(b"G?\xf0\x00\x00\x00\x00\x00\x00", hostile)  # the float 1.0 -> eval(...)
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        safe_pickle.loads(data, source="id_0000.hdf5")
    assert not marker.exists()


def test_numpy_object_arrays_are_refused():
    data = pickle.dumps(np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UnsafePickleError, match="dtype"):
        safe_pickle.loads(data)


def test_ndarray_subclass_is_refused():
    data = pickle.dumps(np.ma.masked_array([1, 2, 3]))
    with pytest.raises(UnsafePickleError, match="numpy"):
        safe_pickle.loads(data)


@pytest.mark.parametrize(
    "module,name",
    [
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("geobench.dataset.os", "system"),
        ("builtins", "getattr"),
        ("posix", "system"),
    ],
)
def test_other_globals_are_refused(module, name):
    data = f"c{module}\n{name}\n.".encode()
    with pytest.raises(UnsafePickleError, match=f"refusing to unpickle {module}.{name}"):
        safe_pickle.loads(data, source="x.pkl")


def test_damaged_pickles_are_format_errors():
    good = safe_pickle.dumps({"a": [1, 2, 3]})
    with pytest.raises(DataFormatError, match="damaged pickle"):
        safe_pickle.loads(good[: len(good) // 2], source="task_specs.pkl")
    with pytest.raises(DataFormatError, match="not a Python bytes literal"):
        safe_pickle.loads_attribute("b'\\x80\\x04", source="id.hdf5")
    with pytest.raises(DataFormatError, match="expected bytes"):
        safe_pickle.loads_attribute("[1, 2]", source="id.hdf5")


# -- no more than geobench 1.1.0 accepts, and nothing changed for the rest of the process ----


def test_build_on_an_allowed_function_is_refused_and_changes_nothing():
    """Defect 7: BUILD with slot state used to setattr on the module-level _scalar itself."""
    scalar = safe_pickle._GLOBALS[("numpy.core.multiarray", "scalar")]
    data = b"cnumpy.core.multiarray\nscalar\n(N}V__defaults__\n(I1\ntstb."
    pickletools.dis(data, out=io.StringIO())  # a well-formed stream
    with pytest.raises(UnsafePickleError, match="refusing to set state on numpy.core.multiarray.scalar"):
        safe_pickle.loads(data, source="id_0001.hdf5")
    assert safe_pickle._scalar.__defaults__ == (None,) and not hasattr(scalar, "__defaults__")
    assert safe_pickle.loads(pickle.dumps(np.float32(2.5))) == pytest.approx(2.5)  # still works


def test_build_on_a_record_class_changes_nothing():
    cls = safe_pickle.record_class("geobench.dataset.Sentinel2")
    data = b"cgeobench.dataset\nSentinel2\n(N}Vclass_path\nVos.system\nstb."
    with pytest.raises(DataFormatError):
        safe_pickle.loads(data)
    assert cls.class_path == "geobench.dataset.Sentinel2"


@pytest.mark.parametrize(
    "module,name",
    [
        ("builtins", "bytearray"),  # bytearray(10**12): memory exhaustion with one opcode
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "object"),
        ("__builtin__", "set"),
        ("_codecs", "encode"),
        ("copyreg", "_reconstructor"),
        ("geobench.label_map", "LabelMap"),
        ("geobench.bandstats", "Stats"),
        ("geobench.dataset", "Evil"),
        ("geobench.label", "Sample"),  # a geobench class, but not one geobench.label has
        ("geobench.config", "GEO_BENCH_DIR"),
        ("ccb.io.dataset", "os"),
    ],
)
def test_what_geobench_1_1_0_refuses_is_refused(module, name):
    with pytest.raises(UnsafePickleError, match=f"refusing to unpickle {module}.{name}"):
        safe_pickle.loads(f"c{module}\n{name}\n.".encode(), source="x.pkl")


def test_one_opcode_bytearray_allocates_nothing():
    data = b"cbuiltins\nbytearray\n(I1000000000000\ntR."
    with pytest.raises(UnsafePickleError, match="bytearray"):
        safe_pickle.loads(data)


@pytest.mark.parametrize(
    "module,name",
    [
        ("geobench.dataset", "Sentinel2"),
        ("geobench.io.dataset", "SegmentationClasses"),
        ("ccb.io.label", "Classification"),
        ("ccb.io.task", "TaskSpecifications"),
        ("geobench.task", "Sample"),  # imported into geobench/task.py: geobench accepts it there
        ("geobench", "MultiLabelClassification"),
        ("ccb", "Band"),
    ],
)
def test_what_geobench_1_1_0_accepts_loads_as_records(module, name):
    loaded = safe_pickle.loads(f"c{module}\n{name}\n".encode() + b")\x81.")  # NEWOBJ, no arguments
    assert isinstance(loaded, Record) and loaded.class_path == f"{module}.{name}"


def test_protocol_2_bytes_need_codecs_encode_which_geobench_refuses():
    with pytest.raises(UnsafePickleError, match="_codecs.encode"):
        safe_pickle.loads(pickle.dumps(np.arange(3, dtype=np.int16), protocol=2))
