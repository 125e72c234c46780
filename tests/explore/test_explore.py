"""salibi explore. In headless Chromium: the page draws every chip of the demo's embeddings and of
a scene's chip grid with no network and no console error, a click lists exactly what salibi search
answers for the clicked row, the filters change what is drawn, and a base map that cannot load is
left out without a word (a screenshot of each page is kept under pytest's tmp folder, its path
printed). Without a browser: a shared-space file's neighbours cross modalities and are salibi
search's; bad input is one Error line with nothing written.

One module, so its fixtures (a checkpoint, two embedded sets, the browser) are made once."""

from __future__ import annotations

import base64
import shutil
import socket

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from salibi.cli import cli
from salibi.embed import read_embeddings
from salibi.embed.search import search
from salibi.explore import explore, page_payload

K = 10


@pytest.fixture(scope="module")
def demo_page(demo_embeddings, tmp_path_factory):
    page = tmp_path_factory.mktemp("demo_page") / "demo.html"
    result = CliRunner().invoke(cli, ["explore", str(demo_embeddings), "-o", str(page), "--basemap", "none"])
    assert result.exit_code == 0, result.output
    return page, result.output


@pytest.fixture(scope="module")
def scene_page(scene_embeddings, tmp_path_factory):
    page = tmp_path_factory.mktemp("scene_page") / "chips.html"
    return page, explore(scene_embeddings, page, basemap="none")


def answer_of_search(output, row: int, modality: str | None):
    found = search(output, str(row), k=K, modality=modality).neighbours
    return [n.row for n in found], [n.similarity for n in found]


def chip_pixel(shot, page, row: int) -> np.ndarray:
    x, y = page.page.evaluate(f"salibiExplore.chipPoint({row})")
    return np.asarray(Image.open(shot).convert("RGB"), np.float64)[round(y), round(x)]


def test_the_demo_page_draws_every_chip_and_a_click_shows_salibi_search_answer(
    demo_embeddings, demo_page, open_page, tmp_path
):
    page_file, said = demo_page
    table = read_embeddings(demo_embeddings)
    assert f"{len(table)} of {len(table)} rows drawn, {K} nearest neighbours each, encoder" in said
    assert "encoder space" in said and "taken as" not in said  # salibi embed records its space (--space encoder)
    page = open_page(page_file)
    assert page.wait_drawn() == len(table)

    shot = tmp_path / "explore-demo.png"
    page.page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    # Chips of three continents: at the zoom that shows them all each is a 6 px square, in its colour.
    colours = _colours(page)
    landsat = next(i for i, p in enumerate(table.path) if p.startswith("landsat7/"))
    on_top = max(i for i, p in enumerate(table.path) if p.startswith("landsat7/"))  # drawn last, over its neighbours
    np.testing.assert_allclose(chip_pixel(shot, page, on_top), colours[on_top], atol=3)

    modalities = np.asarray(table.modality)
    for row in (landsat, next(i for i, p in enumerate(table.path) if p.startswith("sentinel1/"))):
        page.show(row, 13)
        selected = page.click_chip(row)
        assert table.bounds[selected].tolist() == table.bounds[row].tolist()  # the chip clicked (or one stacked on it)
        rows, scores = answer_of_search(demo_embeddings, selected, modalities[selected])
        listed = page.listed()
        assert [r for r, _, _ in listed] == rows and len(rows) == K
        np.testing.assert_allclose([s for _, s, _ in listed], scores, atol=1e-6)
        assert [shown for _, _, shown in listed] == [f"{s:.4f}" for s in scores]
        assert set(modalities[rows]) == {modalities[selected]}  # encoder space: its own modality
        command = page.page.inner_text("#command")
        assert command == f"salibi search embeddings.h5 --query {selected} --k {K} --modality {modalities[selected]}"

    # Filters: the optical rows off, then one source alone.
    page.page.uncheck("input[data-modality=lores]")
    page.page.wait_for_function(f"document.body.dataset.rows === '{int((modalities == 'sar').sum())}'")
    page.page.check("input[data-modality=lores]")
    source = table.source[landsat]
    page.page.select_option("#source", label=f"{source} ({table.source.count(source)})")
    page.page.wait_for_function(f"document.body.dataset.rows === '{table.source.count(source)}'")

    assert page.console_errors() == []
    assert all(url.startswith("file:") for url in page.requests), page.requests


def _colours(page) -> np.ndarray:
    raw = page.page.evaluate("JSON.parse(document.getElementById('salibi-data').textContent).colour")
    return np.frombuffer(base64.b64decode(raw), np.uint8).reshape(-1, 3).astype(np.float64)


def test_a_scene_chip_grid_page(scene_embeddings, scene_page, open_page, tmp_path):
    page_file, summary = scene_page
    table = read_embeddings(scene_embeddings)
    assert summary.drawn == summary.rows == len(table) > 50 and summary.bytes == page_file.stat().st_size
    page = open_page(page_file)
    assert page.wait_drawn() == len(table)
    middle = len(table) // 2
    assert page.click_chip(middle) == middle
    rows, scores = answer_of_search(scene_embeddings, middle, None)
    assert [r for r, _, _ in page.listed()] == rows
    assert page.page.inner_text("#command") == f"salibi search chips.parquet --query {middle} --k {K}"
    highlighted = page.page.evaluate(
        "salibiExplore.map.querySourceFeatures('highlight').filter(f => f.geometry.type === 'Polygon')"
        ".map(f => [f.properties.row, f.properties.role])"
    )
    assert sorted({(int(r), role) for r, role in highlighted}) == sorted(
        [(middle, "selected")] + [(r, "neighbour") for r in rows]
    )
    shot = tmp_path / "explore-scene.png"
    page.page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    # Chips drawn where they lie, in their colours (dimmed to 55 % while one is selected; neighbours
    # are outlined, so a chip two rows away from any highlight is compared).
    colours = _colours(page)
    plain = next(i for i in range(len(table)) if i not in rows and i != middle and _far(table, i, [middle, *rows]))
    expected = 0.55 * colours[plain] + 0.45 * np.array([0xDD, 0xE3, 0xE8])
    np.testing.assert_allclose(chip_pixel(shot, page, plain), expected, atol=4)
    assert page.console_errors() == []


def _far(table, row: int, others: list[int]) -> bool:
    """Whether ``row``'s chip is more than one chip away from every chip of ``others``."""
    size = table.bounds[row, 2] - table.bounds[row, 0]
    return all(np.abs(table.bounds[row] - table.bounds[o]).max() > 1.5 * size for o in others)


def test_a_base_map_that_cannot_load_is_left_out_without_an_error(demo_embeddings, open_page, tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on: the tiles are refused, as offline
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page_file = tmp_path / "offline.html"
    explore(demo_embeddings, page_file, basemap=f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png")
    page = open_page(page_file)
    assert page.wait_drawn() == len(read_embeddings(demo_embeddings))
    assert any(url.startswith(f"http://127.0.0.1:{port}/") for url in page.requests)  # it did try
    assert page.errors == []
    # Only the browser's own line per refused tile; the page says nothing.
    assert [t for kind, t, url in page.console if kind == "error" and f"127.0.0.1:{port}" not in url] == []


def _array(payload, key: str, dtype: str, k: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(payload[key]), dtype).reshape(-1, k)


def test_shared_space_neighbours_are_searched_across_modalities(demo_embeddings, tmp_path):
    shared = tmp_path / "shared.h5"
    shutil.copy(demo_embeddings, shared)
    with h5py.File(shared, "r+") as f:
        f.attrs["space"] = "shared"  # as salibi embed --space shared records it
    table = read_embeddings(shared)
    payload, found = page_payload(table, shared.name, k=5, basemap=None)
    assert (found["space"], found["stated"]) == ("shared", True)
    assert payload["command"] == "salibi search shared.h5 --query {row} --k 5"  # no --modality: all of them
    rows = _array(payload, "neighbours", "<i4", 5)
    similarity = _array(payload, "similarity", "<f4", 5)
    modality = np.asarray(table.modality)
    for row in (int(np.flatnonzero(modality == "sar")[0]), int(np.flatnonzero(modality == "lores")[-1])):
        answer = search(shared, str(row), k=5).neighbours
        assert rows[row].tolist() == [n.row for n in answer]
        np.testing.assert_allclose(similarity[row], [n.similarity for n in answer], rtol=1e-6)
    # The same file in the encoder space: each row's neighbours are of its own modality.
    encoder, _ = page_payload(read_embeddings(demo_embeddings), "demo.h5", k=5, basemap=None)
    own = _array(encoder, "neighbours", "<i4", 5)
    assert (modality[own] == modality[:, None]).all()


def test_bad_input_is_one_error_line_and_nothing_is_written(demo_embeddings, tmp_path):
    runner = CliRunner()

    def fails(*args: str) -> str:
        result = runner.invoke(cli, ["explore", *args])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        return lines[0]

    assert "no such embeddings file" in fails(str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "a.html"))
    assert not (tmp_path / "a.html").exists()
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    assert "is not a salibi explore page; choose another -o" in fails(str(demo_embeddings), "-o", str(notes))
    assert notes.read_text() == "<p>my notes</p>"
    assert "{z}, {x} and {y}" in fails(str(demo_embeddings), "-o", str(tmp_path / "b.html"), "--basemap", "http://x/")
    assert "is the embeddings file itself" in fails(str(demo_embeddings), "-o", str(demo_embeddings))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.html"]
    # A page of its own is replaced.
    page = tmp_path / "page.html"
    for _ in range(2):
        result = runner.invoke(cli, ["explore", str(demo_embeddings), "-o", str(page), "--basemap", "none", "--k", "3"])
        assert result.exit_code == 0 and "3 nearest neighbours each" in result.output, result.output
