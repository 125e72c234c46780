"""salibi explore at archive size: page build time and size, and load time and memory in headless
Chromium, against reading the same GeoParquet file with geopandas in this process.

    python tests/benchmarks/explore.py [--rows 100000] [--dim 64] [--k 10] [--keep DIR]

The rows are synthesised: a square grid of 320 m chips on UTM 31N whose embeddings vary smoothly
over the grid (three waves) plus noise, half of them ``lores``, half ``sar``, written as salibi
embed writes GeoParquet (GeoParquetWriter in random order, then lay_out: the archive layout).
Printed: each build stage; page bytes against the Parquet file's; load = from navigation to
``<body data-rows>`` (every chip drawn), a click's answer, the page's JS heap and the browser's
resident memory; each beside the geopandas read of the same file. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from salibi.embed.output import geoparquet as gp
from salibi.embed.records import Columns
from salibi.explore import explore


def synthesise(rows: int, dim: int, seed: int = 0) -> Columns:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(rows)))
    r, c = np.divmod(rng.permutation(rows), side)
    waves = np.column_stack([np.sin(c / side * 6), np.cos(r / side * 5), np.sin((r + c) / side * 3)])
    embedding = (waves @ rng.normal(size=(3, dim)) + 0.3 * rng.normal(size=(rows, dim))).astype(np.float32)
    size = 320.0
    return Columns(
        embedding=embedding,
        path=np.array([f"scene.tif#r{a}c{b}" for a, b in zip(r, c)], dtype=object),
        source=np.array([f"scene-{a // 64}.tif" for a in r], dtype=object),
        modality=np.where(np.arange(rows) % 2 == 0, "lores", "sar").astype(object),
        bands=np.full(rows, "B04,B03,B02", dtype=object),
        gsd=np.full(rows, 10.0),
        bounds=np.column_stack([4e5 + c * size, 5.6e6 - (r + 1) * size, 4e5 + (c + 1) * size, 5.6e6 - r * size]),
        crs=np.full(rows, CRS.from_epsg(32631).to_wkt(), dtype=object),
        chip=np.full((rows, 4), -1, np.int64),
    )


def write_output(path: Path, columns: Columns) -> float:
    """``columns`` as a salibi GeoParquet output at ``path``; seconds of the layout step."""
    meta = {"format": "salibi-embeddings", "format_version": 2, "output": path.name, "checkpoint_sha256": "synthetic"}
    unsorted = path.with_name(path.name + ".unsorted.tmp")
    writer = gp.GeoParquetWriter(unsorted, columns.embedding.shape[1], columns.crs[0], meta)
    for start in range(0, len(columns), 16384):
        writer.write(columns.select(np.arange(start, min(start + 16384, len(columns)))))
    writer.close()
    clock = time.perf_counter()
    gp.lay_out(unsorted, path)
    seconds = time.perf_counter() - clock
    unsorted.unlink()
    return seconds


def descendants_rss_mib() -> float:
    """Resident memory of this process's descendant processes (the browser's), MiB."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - ours
        ours |= frontier
    total = 0
    for pid in ours:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def load_in_chromium(page: Path, click_row: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--enable-unsafe-swiftshader"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
        )
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        idle = descendants_rss_mib()
        clock = time.perf_counter()
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function(
            "document.body.dataset.rows !== undefined || document.body.dataset.error !== undefined", timeout=600_000
        )
        load = time.perf_counter() - clock
        if tab.evaluate("document.body.dataset.error") is not None:
            raise SystemExit(f"the page failed: {tab.evaluate('document.body.dataset.error')}")
        drawn = int(tab.evaluate("document.body.dataset.rows"))
        x, y = tab.evaluate(f"salibiExplore.chipPoint({click_row})")
        clock = time.perf_counter()
        tab.mouse.click(x, y)
        tab.wait_for_function("document.body.dataset.selected !== undefined", timeout=600_000)
        click = time.perf_counter() - clock
        session = context.new_cdp_session(tab)
        session.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}
        rss = descendants_rss_mib()
        browser.close()
    if errors:
        raise SystemExit(f"the page reported errors: {errors[:3]}")
    return {
        "load": load,
        "click": click,
        "drawn": drawn,
        "heap_mib": metrics.get("JSHeapUsedSize", float("nan")) / 2**20,
        "rss_mib": rss,
        "idle_rss_mib": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--keep", type=Path, default=None, help="write the file and page here (kept)")
    args = parser.parse_args()
    import faiss  # noqa: F401  (imports out of the timings: what a long-lived process has loaded)
    import geopandas
    import sklearn.decomposition  # noqa: F401

    import salibi.align.pmtiles.web_mercator  # noqa: F401

    folder = args.keep or Path(tempfile.mkdtemp(prefix="explore-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    output, page = folder / "chips.parquet", folder / "chips.html"

    layout = write_output(output, synthesise(args.rows, args.dim))
    gc.collect()
    clock = time.perf_counter()
    frame = geopandas.read_parquet(output)
    reference = time.perf_counter() - clock
    assert len(frame) == args.rows
    del frame

    clock = time.perf_counter()
    summary = explore(output, page, k=args.k, basemap="none")
    build = time.perf_counter() - clock
    browser = load_in_chromium(page, click_row=args.rows // 2)
    assert browser["drawn"] == args.rows, browser

    parquet_mib, page_mib = output.stat().st_size / 2**20, summary.bytes / 2**20
    print(f"salibi explore, {args.rows:,} chips of {args.dim} dimensions, k = {args.k} (synthetic, {folder})")
    print(f"  reference: geopandas.read_parquet of the same file: {reference:.2f} s ({parquet_mib:.1f} MiB on disk)")
    print(f"  GeoParquet archive layout (sort + row groups): {layout:.2f} s")
    print(f"  page build: {build:.1f} s = {build / reference:.0f}x the geopandas read; by stage:")
    for stage, seconds in summary.seconds.items():
        print(f"    {stage:<11} {seconds:7.2f} s")
    print(f"  page size: {page_mib:.1f} MiB = {page_mib / parquet_mib:.2f}x the Parquet file")
    print(
        f"  load in headless Chromium (to data-rows = {browser['drawn']:,}): {browser['load']:.2f} s "
        f"= {browser['load'] / reference:.1f}x the geopandas read"
    )
    print(f"  a click to its listed neighbours: {browser['click'] * 1000:.0f} ms")
    print(
        f"  memory: JS heap {browser['heap_mib']:.0f} MiB; browser resident {browser['rss_mib']:.0f} MiB "
        f"(before the page: {browser['idle_rss_mib']:.0f} MiB)"
    )
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
