"""``salibi fetch`` of a small area of a large scene: bytes read against the file's size, and a
second, complete run against the first.

    python tests/benchmarks/fetch.py [--scale 8] [--side-m 300]

The large scene: the NAIP quarter-quad of ``../shared/data/naip_5m`` (2018, 4 x 724 x 934 px at
5 m, real pixels) resampled ``--scale`` times finer (default 8: 0.625 m, NAIP's own order of
resolution, 7472 x 5792 px, 4 bands) and written as a cloud-optimised GeoTIFF (512 px blocks,
deflate) -- the hires item; the 5 m file itself, as a COG, is the lores item of the same date.
Both are served by the tests' HTTP server (tests/http_server.py) and listed by ``rustac serve``.
A ``--side-m`` square in the middle of the scene is fetched with the real command (in process);
the server counts the bytes it sent per file. Then the same command again, on the complete folder.

Prints, per file, the bytes read, the file's size and their ratio (the baseline: a whole-file
download reads 100 %), and the time of the second run against the first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
NAIP = REPO.parent / "shared" / "data" / "naip_5m" / "m_4709963_se_14_1_20180716.tif"  # read in place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=8)
    parser.add_argument("--side-m", type=float, default=300.0)
    options = parser.parse_args()

    import rasterio
    from click.testing import CliRunner
    from rasterio.enums import Resampling
    from rasterio.warp import transform_bounds, transform_geom

    from fetch.catalog import _item, start_stac_server, write_catalog, write_cog
    from http_server import FileServer
    from salibi.cli import cli

    work = Path(tempfile.mkdtemp(prefix="salibi-bench-fetch-"))
    root = work / "www"
    with rasterio.open(NAIP) as src:
        large = src.read(
            out_shape=(src.count, src.height * options.scale, src.width * options.scale), resampling=Resampling.bilinear
        )
        transform = src.transform * src.transform.scale(1 / options.scale)
        write_cog(root / "naip_large.tif", large, src.crs, transform, None)
        write_cog(root / "naip_5m.tif", src.read(), src.crs, src.transform, None)
        footprint = transform_geom(src.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [[
            (src.bounds.left, src.bounds.bottom), (src.bounds.right, src.bounds.bottom), (src.bounds.right, src.bounds.top),
            (src.bounds.left, src.bounds.top), (src.bounds.left, src.bounds.bottom)]]})  # fmt: skip
        cx, cy = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
        half = options.side_m / 2
        bbox = transform_bounds(src.crs, "EPSG:4326", cx - half, cy - half, cx + half, cy + half)
    bands = [{"name": n, "common_name": n.lower()} for n in ("Red", "Green", "Blue", "NIR")]
    with FileServer(root) as files:
        items = [
            _item(collection, name, footprint, {"datetime": "2018-07-16T17:00:00Z"},
                  {"image": {"href": files.url(f"{name}.tif"), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                             "roles": ["data"], "eo:bands": bands}})
            for collection, name in (("naip-large", "naip_large"), ("naip-5m", "naip_5m"))
        ]  # fmt: skip
        process, url = start_stac_server(write_catalog(work / "stac", items))
        try:
            args = ["fetch", "--stac", url, "--hires", "naip-large", "--lores", "naip-5m", "--sar", "none",
                    "--bands", "lores=red,green,blue", "--bbox", ",".join(f"{v:.6f}" for v in bbox),
                    "--datetime", "2018-07-01/2018-07-31", "--quiet", "-o", str(work / "out")]  # fmt: skip
            started = time.perf_counter()
            first = CliRunner().invoke(cli, args)
            first_s = time.perf_counter() - started
            assert first.exit_code == 0, first.output
            sent = dict(files.sent)
            files.reset()
            started = time.perf_counter()
            second = CliRunner().invoke(cli, args)
            second_s = time.perf_counter() - started
            assert second.exit_code == 0, second.output
        finally:
            process.kill()
    print(first.output.strip())
    print(f"\n{options.side_m:g} m x {options.side_m:g} m in the middle of the scene:")
    for name in ("naip_large", "naip_5m"):
        size = (root / f"{name}.tif").stat().st_size
        read = sent.get(f"/{name}.tif", 0)
        with rasterio.open(root / f"{name}.tif") as ds:
            shape = f"{ds.count} x {ds.height} x {ds.width} px at {ds.res[0]:g} m"
        print(f"  {name} ({shape}): read {read:,} of {size:,} bytes = {read / size:.2%} (whole-file download: 100 %)")
    print(f"second, complete run: {second_s:.3f} s, {len(files.requests)} requests to the file server "
          f"(first run: {first_s:.3f} s; ratio {second_s / first_s:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
