"""Fixtures of the explorer tests: the demo's embeddings (the demo's tiles through a tiny model
with the demo checkpoint's bands) and a scene's chip grid (the Landsat-7 sample), each written once
with salibi embed and drawn once with salibi explore; and headless Chromium (Debian's chromium,
driven by Playwright), with every page's console errors, page errors and network requests recorded."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: The most any page event is waited for (a ceiling for a stuck browser, never a measure).
PAGE_WAIT_MS = 120_000


def chromium_path() -> str | None:
    explicit = os.environ.get("SALIBI_CHROMIUM")
    if explicit:
        return explicit
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained model with the demo checkpoint's modalities, bands and GSD."""
    import torch

    from salibi.demo import S2_BANDS
    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    model = build("tiny", modalities=("sar", "lores"), channels={"sar": 2, "lores": len(S2_BANDS)})
    bands = {"sar": ["VV", "VH"], "lores": list(S2_BANDS)}
    return save_checkpoint(
        model, tmp_path_factory.mktemp("ckpt") / "tiny", bands=bands, gsd={"sar": 10.0, "lores": 10.0}
    )


@pytest.fixture(scope="session")
def demo_embeddings(checkpoint, samples, tmp_path_factory) -> Path:
    """``embeddings.h5`` as ``salibi demo`` writes it: its tiles (BigEarthNet Sentinel-1/-2,
    Patagonia Sentinel-2, Landsat-7) embedded as a folder."""
    import warnings

    from salibi.demo import write_demo_tiles
    from salibi.embed import embed_folder

    folder = tmp_path_factory.mktemp("demo")
    write_demo_tiles(samples, folder / "tiles")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        embed_folder(folder / "tiles", checkpoint, folder / "embeddings.h5", batch_size=32, progress=False)
    return folder / "embeddings.h5"


@pytest.fixture(scope="session")
def scene_embeddings(checkpoint, samples, tmp_path_factory) -> Path:
    """The Landsat-7 Raleigh scene (28.5 m, NC State Plane) as a chip grid of 1140 m chips, GeoParquet."""
    import warnings

    from salibi.embed import embed

    out = tmp_path_factory.mktemp("scene") / "chips.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        embed(samples / "landsat7_raleigh" / "landsat7_2000.tif", checkpoint, out, chip_size_m=1140, progress=False)
    return out


@dataclass
class Page:
    """An open page and what it said: console messages (type, text, url), page errors, requests."""

    page: Any
    console: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [text for kind, text, _ in self.console if kind == "error"] + self.errors

    def wait_drawn(self) -> int:
        """Wait until the chips are drawn (or the page fails: its error is raised); how many."""
        done = "document.body.dataset.rows !== undefined || document.body.dataset.error !== undefined"
        self.page.wait_for_function(done, timeout=PAGE_WAIT_MS)
        error = self.page.evaluate("document.body.dataset.error")
        assert error is None, f"the page failed: {error}"
        return int(self.page.evaluate("document.body.dataset.rows"))

    def show(self, row: int, zoom: float) -> None:
        """Centre the map on ``row``'s chip at ``zoom`` (as a person zooms in) and wait until drawn."""
        self.page.evaluate(f"salibiExplore.show({row}, {zoom})")

    def click_chip(self, row: int) -> int:
        """Click the middle of ``row``'s chip (as a person would); the row the page selected."""
        self.page.evaluate("delete document.body.dataset.selected")
        x, y = self.page.evaluate(f"salibiExplore.chipPoint({row})")
        self.page.mouse.click(x, y)
        self.page.wait_for_function("document.body.dataset.selected !== undefined", timeout=PAGE_WAIT_MS)
        return int(self.page.evaluate("document.body.dataset.selected"))

    def listed(self) -> list[tuple[int, float, str]]:
        """(row, similarity, similarity as shown) of the neighbours listed."""
        return [
            (int(row), float(score), shown)
            for row, score, shown in self.page.evaluate(
                "Array.from(document.querySelectorAll('#neighbours tbody tr'))"
                ".map(tr => [tr.dataset.row, tr.dataset.similarity, tr.cells[1].textContent])"
            )
        ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's: Playwright's own download cannot be used here)."""
    executable = chromium_path()
    if executable is None:
        reason = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--enable-unsafe-swiftshader"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser) -> Iterator[Any]:
    """``open_page(html_path)``: the page loaded from disk in a fresh context, where any request
    that is not a file or this machine's loopback is refused (and recorded)."""
    contexts = []

    def open_(path: Path, width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        seen = Page(page)
        page.on("console", lambda m: seen.console.append((m.type, m.text, (m.location or {}).get("url", ""))))
        page.on("pageerror", lambda e: seen.errors.append(str(e)))

        def guard(route: Any) -> None:
            url = route.request.url
            seen.requests.append(url)
            if url.startswith(("file:", "data:", "blob:", "http://127.0.0.1")):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", guard)
        page.goto(path.resolve().as_uri())
        return seen

    yield open_
    for context in contexts:
        context.close()
