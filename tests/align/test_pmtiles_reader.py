"""salibi's own PMTiles v3 reader against archives the ``pmtiles`` package writes: tile ids,
directories with leaves and runs, bounds checks, and reading over HTTP with redirects."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
from pmtiles.writer import Writer

from salibi.align.pmtiles import archive as archive_module
from salibi.align.pmtiles.archive import Archive, gunzip
from salibi.align.pmtiles.sources import HttpSource, LocalSource
from salibi.align.pmtiles.web_mercator import ground_gsd, tile_bounds
from salibi.align.pmtiles.web_mercator import tileid_to_zxy as our_tileid_to_zxy
from salibi.align.pmtiles.web_mercator import zxy_to_tileid as our_zxy_to_tileid
from salibi.errors import DataFormatError, InputError, MissingInputError


def test_tile_ids_match_the_pmtiles_package_both_ways():
    rng = np.random.default_rng(0)
    for z in (0, 1, 7, 15, 16, 24, 31):
        x, y = rng.integers(0, 2**z, 64), rng.integers(0, 2**z, 64)
        ids = our_zxy_to_tileid(z, x, y)
        assert ids.tolist() == [zxy_to_tileid(z, int(a), int(b)) for a, b in zip(x, y)]
    mixed = np.array(
        [zxy_to_tileid(int(z), 0, 0) + int(k) for z, k in zip(rng.integers(1, 20, 200), rng.integers(0, 4, 200))],
        np.uint64,
    )
    z, x, y = our_tileid_to_zxy(mixed)
    assert list(zip(z.tolist(), x.tolist(), y.tolist())) == [tileid_to_zxy(int(i)) for i in mixed]


def test_bounds_and_ground_gsd_of_a_tile():
    """Zoom 15 at 34 deg N (the issue's figure): 3.96 m per pixel on the ground."""
    y = int((1 - np.log(np.tan(np.radians(34)) + 1 / np.cos(np.radians(34))) / np.pi) / 2 * 2**15)
    assert ground_gsd(15, np.array([y]))[0] == pytest.approx(3.96, abs=0.005)
    assert tile_bounds(0, np.array([0]), np.array([0]))[0] == pytest.approx(
        [-20037508.34, -20037508.34, 20037508.34, 20037508.34]
    )
    assert ground_gsd(15, np.array([2**14]), 512)[0] == pytest.approx(ground_gsd(15, np.array([2**14]))[0] / 2)


def write(path: Path, tiles: dict[int, bytes]) -> Path:
    with path.open("wb") as f:
        writer = Writer(f)
        for tile_id in sorted(tiles):
            writer.write_tile(tile_id, tiles[tile_id])
        writer.finalize({"tile_type": TileType.PNG, "tile_compression": Compression.NONE}, {"attribution": "test"})
    return path


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[Path, dict[int, bytes]]:
    """60 000 tiles of zoom 15 (leaf directories) in runs of repeated bytes, and two of zoom 16."""
    ids = [zxy_to_tileid(15, 16000 + k % 200, 12000 + k // 200) for k in range(60000)]
    ids += [zxy_to_tileid(16, 32000, 24000), zxy_to_tileid(16, 32001, 24000)]
    tiles = {tile_id: b"same" if k % 3 else f"tile {tile_id}".encode() for k, tile_id in enumerate(sorted(ids))}
    return write(tmp_path_factory.mktemp("pmtiles") / "many.pmtiles", tiles), tiles


def test_leaves_and_runs_index_every_tile(many):
    path, tiles = many
    archive = Archive(LocalSource(path, "--lores"))
    assert archive.header.leaf_length > 0, "the writer made no leaf directories: the test covers nothing"
    entries = archive.entries()
    assert (entries.runs > 1).any() and len(entries.ids) < len(tiles)
    assert entries.deepest_zoom() == 16
    index = archive.index(15)
    wanted = sorted(i for i in tiles if tileid_to_zxy(i)[0] == 15)
    assert index.ids.tolist() == wanted
    for k in np.random.default_rng(1).integers(0, len(wanted), 300):
        assert archive.read(int(index.offsets[k]), int(index.lengths[k]), "t") == tiles[wanted[k]]
    found, position = index.find(np.array([wanted[5], wanted[5] + 10**9], np.uint64))
    assert found.tolist() == [True, False] and index.ids[position[0]] == wanted[5]


def test_over_http_with_range_requests_and_redirects(many, http_server):
    path, tiles = many
    (http_server.root / path.name).write_bytes(path.read_bytes())
    source = HttpSource(http_server.redirect(path.name, hops=2), "--sar")
    archive = Archive(source)
    index = archive.index(16)
    assert [archive.read(int(o), int(n), "t") for o, n in zip(index.offsets, index.lengths)] == [
        tiles[int(i)] for i in index.ids
    ]
    statuses = [r.status for r in http_server.requests]
    assert statuses[:3] == [302, 302, 206] and set(statuses) == {302, 206}
    assert all(r.range for r in http_server.requests if r.status == 206), "a whole-file GET"
    assert statuses.count(302) == 2, "the final URL was not reused"
    # The final (signed) URL stops answering: the reader asks through the given URL again.
    http_server.fail[f"/{path.name}"] = 403
    with pytest.raises(InputError, match=r"--sar http://.*: access refused \(HTTP 403\)"):
        archive.read(int(index.offsets[0]), 10, "t")
    assert statuses.count(302) < [r.status for r in http_server.requests].count(302)
    with pytest.raises(
        MissingInputError, match=r"--lores http://127\.0\.0\.1:\d+/nothing\.pmtiles: not found \(HTTP 404\)"
    ):
        HttpSource(http_server.url("nothing.pmtiles"), "--lores")


def test_redirects_are_bounded(many, http_server):
    path, _ = many
    (http_server.root / path.name).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="HTTP 302"):
        HttpSource(http_server.redirect(path.name, hops=8), "--sar")


def test_spans_outside_the_file_are_refused_before_reading(many, tmp_path):
    path, _ = many
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, 64, len(data))  # tile data length: past the end of the file
    bad = tmp_path / "long.pmtiles"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        DataFormatError, match=r"the tile data \(as the header says\) at bytes \d+\.\.\d+ lies outside the file"
    ):
        Archive(LocalSource(bad, "--lores"))
    cut = tmp_path / "cut.pmtiles"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataFormatError, match="shorter than the 127-byte header"):
        Archive(LocalSource(cut, "--lores"))


def test_directory_bombs_and_damaged_gzip_are_refused(monkeypatch):
    bomb = gzip.compress(bytes(2**20))
    monkeypatch.setattr(archive_module, "MAX_DIRECTORY_BYTES", 2**19)
    with pytest.raises(DataFormatError, match="expands to more than 524288 bytes"):
        gunzip(bomb, 2**19, "x")
    assert gunzip(bomb, 2**20, "x") == bytes(2**20)
    with pytest.raises(DataFormatError, match="cut short"):
        gunzip(bomb[: len(bomb) // 2], 2**20, "x")


def test_varints_over_64_bits_or_cut_short_are_refused():
    assert archive_module._varints(b"\x96\x01\x00\x7f", "a", "d").tolist() == [150, 0, 127]
    assert archive_module._varints(b"\xff" * 9 + b"\x01", "a", "d").tolist() == [2**64 - 1]
    with pytest.raises(DataFormatError, match="over 64 bits"):
        archive_module._varints(b"\xff" * 9 + b"\x02", "a", "d")
    with pytest.raises(DataFormatError, match="ends inside a number"):
        archive_module._varints(b"\x01\x81", "a", "d")
