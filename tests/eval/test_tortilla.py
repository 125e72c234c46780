"""The tortilla container: the genuine GEO-Bench-2 sample files read in place, and every offset and
length of a damaged or hostile file refused with one line before it is used."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from salibi.errors import DataFormatError, MissingInputError
from salibi.eval.geobench2 import tortilla as T
from salibi.eval.geobench2.payloads import read_geotiff, read_hdf5
from salibi.eval.geobench2.tortilla import HEADER_SIZE, Tortilla

from . import tortilla_writer as W

GENUINE = {
    "benv2/geobench_benv2.tortilla": (6, ["s1", "s2"]),
    "burn_scars/geobench_burn_scars.tortilla": (16, ["image", "label"]),
    "spacenet2/geobench_spacenet2.tortilla": (21, ["ps-ms", "pan", "semantic_mask", "instance_mask"]),
}


@pytest.fixture
def benv2(shared) -> Path:
    return shared("geobench2_samples", "benv2", "geobench_benv2.tortilla")


@pytest.mark.parametrize("name", sorted(GENUINE))
def test_genuine_files_nest_samples_within_their_bytes(shared, name):
    path = shared("geobench2_samples", *name.split("/"))
    count, items = GENUINE[name]
    outer = Tortilla.open(path)
    assert len(outer) == count
    size = path.stat().st_size
    for entry in outer.entries:
        assert entry.file_format == "TORTILLA" and entry.id.startswith("sample_")
        assert HEADER_SIZE <= entry.offset and entry.offset + entry.length <= size
        inner = Tortilla.nested(entry)
        assert [e.id for e in inner.entries] == items
        for item in inner.entries:  # inner offsets were made absolute: inside the sample's own bytes
            assert entry.offset + HEADER_SIZE <= item.offset
            assert item.offset + item.length <= entry.offset + entry.length
            assert item.vsisubfile == f"/vsisubfile/{item.offset}_{item.length},{path}"


def test_genuine_benv2_footer_columns_and_payloads(benv2):
    outer = Tortilla.open(benv2)
    splits = [e.split for e in outer.entries]
    assert sorted(splits) == ["test", "test", "train", "train", "validation", "validation"]
    first = Tortilla.nested(outer.entries[0])
    s1, s2 = first.entries
    assert first.entries[0].fields["labels"] == ["Arable land", "Pastures"]
    assert s1.fields["stac:crs"] == "EPSG:32629" and s1.fields["stac:raster_shape"] == [120, 120]
    radar, optical = read_geotiff(s1), read_geotiff(s2)
    assert radar.data.shape == (2, 120, 120) and radar.data.dtype == np.float32
    assert optical.data.shape == (12, 120, 120) and optical.data.dtype == np.uint16
    assert radar.gsd == 10.0
    assert optical.gsd == 60.0  # the quirk: B01's geotransform on a 10 m grid (the reader corrects it)
    # The payload is the GeoTIFF itself: its bytes start with a TIFF signature.
    with open(benv2, "rb") as f:
        f.seek(s1.offset)
        assert f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00")


def test_genuine_header_is_exactly_as_documented(benv2):
    data = benv2.read_bytes()
    magic, offset, length, parts = struct.unpack("<2sQQQ", data[:26])
    assert (magic, parts) == (b"#y", 1) and set(data[26:HEADER_SIZE]) == {0}
    assert offset + length == len(data)  # the footer ends the file


# -- damaged and hostile files ------------------------------------------------------------------


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes())
    return target


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(DataFormatError) as caught:
        tortilla = Tortilla.open(path)
        for entry in tortilla.entries:
            Tortilla.nested(entry)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_wrong_magic(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    data = bytearray(path.read_bytes())
    data[:2] = b"PK"
    path.write_bytes(bytes(data))
    _refused(path, "not a tortilla", "magic")
    data[:2] = b"WX"
    path.write_bytes(bytes(data))
    _refused(path, "TACO")


def test_footer_offset_past_the_end(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    data = bytearray(path.read_bytes())
    data[2:10] = struct.pack("<Q", len(data) + 10)
    path.write_bytes(bytes(data))
    _refused(path, "outside")


def test_footer_length_overflowing_the_file(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    data = bytearray(path.read_bytes())
    data[10:18] = struct.pack("<Q", 2**63)
    path.write_bytes(bytes(data))
    _refused(path, "outside")


def test_footer_inside_the_header_is_refused(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    data = bytearray(path.read_bytes())
    data[2:10] = struct.pack("<Q", 8)
    path.write_bytes(bytes(data))
    _refused(path, "outside")


def test_truncated_file(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    path.write_bytes(benv2.read_bytes()[:-100])
    _refused(path, "outside")
    path.write_bytes(benv2.read_bytes()[:120])
    _refused(path, "shorter than the 200-byte")


def test_garbage_footer(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    data = bytearray(path.read_bytes())
    offset, length = struct.unpack("<QQ", data[2:18])
    data[offset : offset + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    _refused(path, "not a readable Parquet")


def test_inner_sample_header_damaged(benv2, tmp_path):
    path = _copy(benv2, tmp_path)
    first = Tortilla.open(benv2).entries[0]
    data = bytearray(path.read_bytes())
    data[first.offset + 2 : first.offset + 10] = struct.pack("<Q", first.length)  # footer past the sample's end
    path.write_bytes(bytes(data))
    message = _refused(path, "item 'sample_0'", "outside")
    assert f"bytes {first.offset}..{first.offset + first.length}" in message


def test_sample_offset_outside_the_payloads(tmp_path):
    good = W.sample("sample_0", "train", [W.Item("s1", "GTiff", W.geotiff(W.banded(2)))])
    lying = W.Item("sample_1", "TORTILLA", good.data, "train", offset=10**9)
    path = W.write_dataset(tmp_path, "x.tortilla", [good, lying])
    _refused(path, "'sample_1'", "outside the payloads")
    negative = W.Item("sample_1", "TORTILLA", good.data, "train", length=-5)
    path = W.write_dataset(tmp_path, "y.tortilla", [good, negative])
    _refused(path, "'sample_1'")


def test_item_overlapping_the_footer_of_its_sample(tmp_path):
    image = W.geotiff(W.banded(2))
    bad = W.sample("sample_0", "train", [W.Item("s1", "GTiff", image, length=len(image) + 50)])
    path = W.write_dataset(tmp_path, "x.tortilla", [bad])
    _refused(path, "item 's1'", "outside the payloads")


def test_footer_missing_columns_or_wrong_types(tmp_path):
    table = W.footer([{"tortilla:id": "a", "tortilla:file_format": "GTiff"}])
    path = tmp_path / "x.tortilla"
    path.write_bytes(W.header(HEADER_SIZE, len(table)) + table)
    _refused(path, "lacks column", "tortilla:offset")
    table = W.footer(
        [{"tortilla:id": "a", "tortilla:file_format": "GTiff", "tortilla:offset": "200", "tortilla:length": "1"}]
    )
    path.write_bytes(W.header(HEADER_SIZE, len(table)) + table)
    _refused(path, "not integers")


def test_footer_promising_too_much_is_not_expanded(tmp_path, monkeypatch):
    rows = [{"tortilla:id": f"s{i}", "tortilla:file_format": "GTiff", "tortilla:offset": 200, "tortilla:length": 0}
            for i in range(2000)]  # fmt: skip
    table = W.footer(rows)
    path = tmp_path / "x.tortilla"
    path.write_bytes(W.header(HEADER_SIZE, len(table)) + table)
    assert len(Tortilla.open(path)) == 2000
    monkeypatch.setattr(T, "MAX_FOOTER_BYTES", 1000)
    _refused(path, "would expand")


def test_missing_file(tmp_path):
    with pytest.raises(MissingInputError, match="does not exist"):
        Tortilla.open(tmp_path / "none.tortilla")


# -- payloads --------------------------------------------------------------------------------------


def _one_item(tmp_path: Path, item: W.Item) -> T.Entry:
    path = W.write_dataset(tmp_path, "p.tortilla", [W.sample("sample_0", "train", [item])])
    return Tortilla.nested(Tortilla.open(path).entries[0]).entries[0]


def test_geotiff_payload_read_in_place(tmp_path):
    array = W.banded(3, size=8, dtype="int16")
    entry = _one_item(tmp_path, W.Item("x", "GTiff", W.geotiff(array, gsd=2.5)))
    raster = read_geotiff(entry)
    np.testing.assert_array_equal(raster.data, array)
    assert raster.gsd == 2.5
    assert read_geotiff(entry, [3]).data[0, 0, 0] == 300
    with pytest.raises(DataFormatError, match="has 3 band"):
        read_geotiff(entry, [4])


def test_garbage_geotiff_payload(tmp_path):
    entry = _one_item(tmp_path, W.Item("x", "GTiff", b"II*\x00" + bytes(range(256)) * 4))
    with pytest.raises(DataFormatError, match="not a readable GeoTIFF") as caught:
        read_geotiff(entry)
    assert "item 'x'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_geotiff_declaring_a_huge_raster_is_refused_before_decoding(tmp_path):
    from rasterio.io import MemoryFile

    with MemoryFile() as memory:
        profile = {"driver": "GTiff", "count": 12, "height": 200_000, "width": 200_000, "dtype": "uint16"}
        with memory.open(**profile, tiled=True, compress="deflate", sparse_ok=True):
            pass  # nothing written: a few kB on disk, 960 GB decoded
        data = bytes(memory.read())
    assert len(data) < 10_000_000
    entry = _one_item(tmp_path, W.Item("x", "GTiff", data))
    with pytest.raises(DataFormatError, match="larger than the"):
        read_geotiff(entry)


def test_hdf5_payload_one_step(tmp_path):
    series = np.arange(3 * 2 * 4 * 4, dtype=np.float32).reshape(3, 2, 4, 4)
    entry = _one_item(tmp_path, W.Item("x", "HDF5", W.hdf5(series)))
    np.testing.assert_array_equal(read_hdf5(entry), series)
    np.testing.assert_array_equal(read_hdf5(entry, index=1), series[1])
    with pytest.raises(DataFormatError, match="no step 3"):
        read_hdf5(entry, index=3)
    with pytest.raises(DataFormatError, match="no dataset 'other'"):
        read_hdf5(entry, dataset="other")


def test_garbage_hdf5_payload_and_wrong_format(tmp_path):
    entry = _one_item(tmp_path, W.Item("x", "HDF5", b"\x89HDF\r\n\x1a\n" + bytes(500)))
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        read_hdf5(entry)
    with pytest.raises(DataFormatError, match="expected a GTiff"):
        read_geotiff(entry)
