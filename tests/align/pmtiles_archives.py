"""PMTiles archives in the exact format of the Scale-ALiBi authors' released dataset, made from real
pixels of ../shared/data with rasterio and the ``pmtiles`` package's writer (never salibi's code).

- ``sar_tiles.pmtile``: Sentinel-1 of Sen1Floods11 (Spain_7370579, VV/VH in dB) as the authors
  stored raw GRD: RGBA PNG [unused, VV, VH, alpha], value ``uint8(min(max(DN / 1000, 0), 1) * 256)``
  of a digital number ``DN = 10^(dB / 20) * DN_PER_AMPLITUDE`` (bright pixels reach 1000 and wrap to 0);
- ``visual_tiles.pmtile``: Sentinel-2 of the same chip as the TCI (B04, B03, B02, reflectance 0..0.2
  -> 0..255), RGBA PNG, alpha = valid;
- ``hires_visual_tiles.pmtile``: NAIP (North Dakota, 2020, RGB of 4 bands) -- the one real aerial
  image here; no NAIP covers the Spanish chip, so its pixels are *placed* over it (a GeoTIFF in
  EPSG:3857 with NAIP's pixels at PLACED_NAIP_M mercator metres, written beside the archives):
  each tile of the chip zoom and its four children, JPEG where a tile is fully covered (the
  header still says PNG, as in the released archives) and RGBA PNG where partly.

Tiles are web-mercator XYZ of 256 px (y from the north), reprojected with nearest-neighbour
resampling onto each zoom's pixel grid; ids by ``pmtiles.tile.zxy_to_tileid``; metadata an
attribution and a centre with latitude and longitude swapped, as released.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HALF = math.pi * 6378137.0  # half the web-mercator world, metres
ZOOM = 15  # the released Small set's zoom
DN_PER_AMPLITUDE = 1000.0  # DN = amplitude * this: VV above 0 dB (about 1.5% of the pixels) saturates
PLACED_NAIP_M = 7.5  # mercator metres per NAIP pixel where it is placed (5.9 m on the ground at 38 N)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    side = 2 * HALF / 2**z
    return (x * side - HALF, HALF - (y + 1) * side, (x + 1) * side - HALF, HALF - y * side)


def tile_range(bounds_3857: tuple[float, float, float, float], z: int) -> tuple[range, range]:
    side = 2 * HALF / 2**z
    x0, y0, x1, y1 = bounds_3857
    xs = range(int((x0 + HALF) // side), int((x1 + HALF) // side) + 1)
    ys = range(int((HALF - y1) // side), int((HALF - y0) // side) + 1)
    return xs, ys


def reproject_to_tiles(source, bands: list[int], z: int, xs: range, ys: range, valid=None) -> np.ndarray:
    """(len(bands) + 1, H, W) float32 of ``source`` (an open rasterio dataset) on zoom ``z``'s pixel
    grid over tiles ``xs`` x ``ys``, nearest neighbour; the last band 1 where a source pixel is valid."""
    from rasterio.crs import CRS
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject

    x0, _, _, y1 = tile_bounds(z, xs.start, ys.start)
    _, y0, x1, _ = tile_bounds(z, xs.stop - 1, ys.stop - 1)
    width, height = 256 * len(xs), 256 * len(ys)
    transform = from_bounds(x0, y0, x1, y1, width, height)
    data = source.read(bands).astype(np.float32)
    ok = np.isfinite(data).all(axis=0) if valid is None else valid(data)
    stack = np.concatenate([np.where(np.isfinite(data), data, 0), ok[None].astype(np.float32)])
    out = np.zeros((stack.shape[0], height, width), np.float32)
    for k in range(stack.shape[0]):
        reproject(stack[k], out[k], src_transform=source.transform, src_crs=source.crs, dst_transform=transform,
                  dst_crs=CRS.from_epsg(3857), resampling=Resampling.nearest, src_nodata=None, dst_nodata=0)  # fmt: skip
    return out


def encode(rgba: np.ndarray, kind: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    if kind == "JPEG":
        Image.fromarray(rgba[..., :3], "RGB").save(buffer, "JPEG", quality=95)
    else:
        Image.fromarray(rgba, "RGBA").save(buffer, "PNG", compress_level=1)  # real PNG, made fast
    return buffer.getvalue()


def write_archive(path: Path, tiles: dict[tuple[int, int, int], bytes]) -> Path:
    """A PMTiles v3 archive of ``tiles`` ((z, x, y) -> bytes) by the pmtiles package, header tile type PNG."""
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    by_id = sorted((zxy_to_tileid(*zxy), data) for zxy, data in tiles.items())
    z0 = min(z for z, _, _ in tiles)
    (_, x0, y0), (_, x1, y1) = min(t for t in tiles if t[0] == z0), max(t for t in tiles if t[0] == z0)
    lon = ((x0 + x1) / 2 + 0.5) / 2**z0 * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ((y0 + y1) / 2 + 0.5) / 2**z0))))
    with path.open("wb") as f:
        writer = Writer(f)
        for tile_id, data in by_id:
            writer.write_tile(tile_id, data)
        writer.finalize(
            {
                "tile_type": TileType.PNG,
                "tile_compression": Compression.NONE,
                "center_zoom": z0,
                "center_lon_e7": int(lat * 1e7),  # swapped, as in the released archives
                "center_lat_e7": int(lon * 1e7),
            },
            {"attribution": "test archive from Sen1Floods11 (CC BY 4.0) and USDA NAIP (public domain)"},
        )
    return path


def tiles_of(grid: np.ndarray, z: int, xs: range, ys: range, kind: str = "PNG") -> dict[tuple[int, int, int], bytes]:
    """Tiles (z, x, y) -> encoded RGBA of a (4, H, W) uint8 grid, for tiles with some valid pixel;
    kind JPEG: JPEG where every pixel is valid, PNG elsewhere."""
    out = {}
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            rgba = np.moveaxis(grid[:, j * 256 : (j + 1) * 256, i * 256 : (i + 1) * 256], 0, -1)
            alpha = rgba[..., 3]
            if alpha.any():
                out[z, x, y] = encode(np.ascontiguousarray(rgba), "JPEG" if kind == "JPEG" and alpha.all() else "PNG")
    return out


def sar_values(db: np.ndarray) -> np.ndarray:
    """The authors' 8-bit SAR encoding of dB values: uint8(min(max(DN / 1000, 0), 1) * 256), wrapped."""
    dn = 10 ** (db / 20) * DN_PER_AMPLITUDE
    return (np.floor(np.clip(dn / 1000, 0, 1) * 256).astype(np.int64) % 256).astype(np.uint8)


@dataclass(frozen=True)
class Archives:
    sar: Path
    lores: Path
    hires: Path
    naip: Path  # the placed NAIP GeoTIFF (EPSG:3857) the hires tiles were cut from
    xs: range  # the chip-zoom tiles the sar and lores archives span
    ys: range
    saturated: int  # valid SAR values that wrapped to 0


def build(shared: Path, folder: Path, zoom: int = ZOOM) -> Archives:
    """The three archives of the Sen1Floods11 chip (and placed NAIP) at ``zoom`` (hires: + zoom + 1)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    floods = shared / "sen1floods11"
    with rasterio.open(floods / "Spain_7370579_S1Hand.tif") as s1:
        bounds = transform_bounds(s1.crs, CRS.from_epsg(3857), *s1.bounds)
        xs, ys = tile_range(bounds, zoom)
        sar = reproject_to_tiles(s1, [1, 2], zoom, xs, ys)
    with rasterio.open(floods / "Spain_7370579_S2Hand.tif") as s2:
        lores = reproject_to_tiles(s2, [4, 3, 2], zoom, xs, ys, valid=lambda d: (d > 0).all(axis=0))
    valid = sar[2] > 0
    sar_rgba = np.stack([np.zeros_like(valid, np.uint8), sar_values(sar[0]), sar_values(sar[1]), valid * np.uint8(255)])
    sar_rgba[1:3, ~valid] = 0
    saturated = int(((sar_rgba[1:3] == 0) & valid).sum())
    tci = np.clip(np.round(lores[:3] * 255 / 2000), 0, 255).astype(np.uint8)
    lores_rgba = np.concatenate([tci * (lores[3] > 0), (lores[3] > 0)[None] * np.uint8(255)])

    with rasterio.open(shared / "naip_5m" / "m_4709963_se_14_1_20200831.tif") as naip:
        pixels = naip.read([1, 2, 3])
    placed = folder / "naip_placed_3857.tif"
    profile = dict(driver="GTiff", width=pixels.shape[2], height=pixels.shape[1], count=3, dtype="uint8",
                   crs=CRS.from_epsg(3857), transform=from_origin(bounds[0] - 300, bounds[3] + 300, PLACED_NAIP_M,
                                                                  PLACED_NAIP_M))  # fmt: skip
    with rasterio.open(placed, "w", **profile) as out:
        out.write(pixels)
    hires_tiles: dict[tuple[int, int, int], bytes] = {}
    with rasterio.open(placed) as naip:
        for z in (zoom, zoom + 1):
            hx, hy = tile_range(transform_bounds(naip.crs, naip.crs, *naip.bounds), z)
            grid = reproject_to_tiles(naip, [1, 2, 3], z, hx, hy, valid=lambda d: np.ones(d.shape[1:], bool))
            rgba = np.concatenate([grid[:3] * (grid[3] > 0), (grid[3] > 0)[None] * 255.0]).astype(np.uint8)
            hires_tiles.update(tiles_of(rgba, z, hx, hy, kind="JPEG"))
    return Archives(
        sar=write_archive(folder / "sar_tiles.pmtile", tiles_of(sar_rgba, zoom, xs, ys)),
        lores=write_archive(folder / "visual_tiles.pmtile", tiles_of(lores_rgba, zoom, xs, ys)),
        hires=write_archive(folder / "hires_visual_tiles.pmtile", hires_tiles),
        naip=placed,
        xs=xs,
        ys=ys,
        saturated=saturated,
    )


# -- small archives for the hostile cases (tests/faults/bad_input_table.py) --------------------------

#: Two adjacent tiles of the Small set's zoom over the Sen1Floods11 chip.
SMALL_TILES = ((ZOOM, 16313, 12625), (ZOOM, 16314, 12625))


def small_tiles(shared: Path, modality: str) -> dict[tuple[int, int, int], bytes]:
    """Two RGBA PNG tiles cut straight from the Sen1Floods11 pixels (no reprojection: for hostile
    cases, where only the bytes matter): ``sar`` in the authors' DN/1000 encoding, ``lores`` TCI."""
    import rasterio

    name = "Spain_7370579_S1Hand.tif" if modality == "sar" else "Spain_7370579_S2Hand.tif"
    with rasterio.open(shared / "sen1floods11" / name) as source:
        data = source.read([1, 2] if modality == "sar" else [4, 3, 2], window=((0, 256), (0, 512))).astype(np.float32)
    if modality == "sar":
        valid = np.isfinite(data).all(axis=0)
        bands = [
            np.zeros(valid.shape, np.uint8),
            sar_values(np.nan_to_num(data[0])),
            sar_values(np.nan_to_num(data[1])),
        ]
    else:
        valid = (data > 0).all(axis=0)
        bands = list(np.clip(np.round(data * 255 / 2000), 0, 255).astype(np.uint8))
    rgba = np.stack([*bands, valid * np.uint8(255)], axis=-1)
    return {
        zxy: encode(np.ascontiguousarray(rgba[:, k * 256 : (k + 1) * 256]), "PNG") for k, zxy in enumerate(SMALL_TILES)
    }


def small_archive(shared: Path, path: Path, modality: str, replace: bytes | None = None, shift: int = 0) -> Path:
    """A two-tile archive of ``modality``; ``replace``: other bytes for its first tile; ``shift``:
    the tiles ``shift`` rows further south (another place)."""
    tiles = small_tiles(shared, modality)
    if replace is not None:
        tiles[SMALL_TILES[0]] = replace
    return write_archive(path, {(z, x, y + shift): data for (z, x, y), data in tiles.items()})


def png_of_size(side: int) -> bytes:
    """A real ``side`` x ``side`` RGBA PNG (Sen1Floods11 Sentinel-2 pixels)."""
    import rasterio

    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    with rasterio.open(shared / "sen1floods11" / "Spain_7370579_S2Hand.tif") as source:
        data = source.read([4, 3, 2], window=((0, side), (0, side))).astype(np.float32)
    rgb = np.clip(np.round(data * 255 / 2000), 0, 255).astype(np.uint8)
    return encode(np.ascontiguousarray(np.moveaxis(np.concatenate([rgb, np.full_like(rgb[:1], 255)]), 0, -1)), "PNG")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels of RGBA, with almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def handmade_archive(path: Path, root: bytes, leaves: bytes, data: bytes) -> Path:
    """An archive of the given (already serialised) root directory, leaf directories and tile data."""
    from pmtiles.tile import Compression, TileType, serialize_header

    metadata = b"{}"
    offsets = [127, 127 + len(root), 127 + len(root) + len(metadata), 127 + len(root) + len(metadata) + len(leaves)]
    header = serialize_header({
        "root_offset": offsets[0], "root_length": len(root), "metadata_offset": offsets[1],
        "metadata_length": len(metadata), "leaf_directory_offset": offsets[2], "leaf_directory_length": len(leaves),
        "tile_data_offset": offsets[3], "tile_data_length": len(data), "addressed_tiles_count": 0,
        "tile_entries_count": 0, "tile_contents_count": 0, "clustered": True,
        "internal_compression": Compression.GZIP, "tile_compression": Compression.NONE, "tile_type": TileType.PNG,
        "min_zoom": ZOOM, "max_zoom": ZOOM,
    })  # fmt: skip
    path.write_bytes(header + root + metadata + leaves + data)
    return path


def archive_with_leaf_twice(shared: Path, path: Path) -> Path:
    """Two root entries pointing to the same leaf directory (a loop a naive reader follows forever)."""
    from pmtiles.tile import Entry, serialize_directory, zxy_to_tileid

    tiles = small_tiles(shared, "lores")
    ids = [zxy_to_tileid(*zxy) for zxy in SMALL_TILES]
    first = len(tiles[SMALL_TILES[0]])
    leaf = serialize_directory([Entry(ids[0], 0, first, 1), Entry(ids[1], first, len(tiles[SMALL_TILES[1]]), 1)])
    # The first pointer covers every id the leaf holds; the second points to the same leaf again.
    root = serialize_directory([Entry(ids[0], 0, len(leaf), 0), Entry(ids[1] + 1000, 0, len(leaf), 0)])
    return handmade_archive(path, root, leaf, tiles[SMALL_TILES[0]] + tiles[SMALL_TILES[1]])


def archive_with_directory_bomb(shared: Path, path: Path) -> Path:
    """A root directory that gzip-expands to 20 MiB (about 20 kB in the file)."""
    import gzip

    tiles = small_tiles(shared, "lores")
    return handmade_archive(path, gzip.compress(bytes(20 * 2**20), mtime=0), b"", b"".join(tiles.values()))


def patched(source: Path, path: Path, offset: int, value: int) -> Path:
    """``source`` with the little-endian uint64 header field at ``offset`` set to ``value``."""
    import struct

    data = bytearray(source.read_bytes())
    struct.pack_into("<Q", data, offset, value)
    path.write_bytes(bytes(data))
    return path
