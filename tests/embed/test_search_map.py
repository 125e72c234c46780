"""salibi search (faiss) and salibi map (a 2-D projection; a scene's principal components on its
chip grid) on real outputs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from sklearn.decomposition import PCA

from salibi.cli import cli
from salibi.embed import read_embeddings
from salibi.embed.maps import project, projection_map, scene_map
from salibi.embed.search import search
from salibi.errors import InputError

from .make_tiles import NAIP, make_checkpoint


@pytest.fixture(scope="module")
def scene(naip_outputs):
    return naip_outputs[0] / "naip.parquet"


def cosine(table, i):
    x = table.embedding / np.linalg.norm(table.embedding, axis=1, keepdims=True)
    return x @ x[i]


def test_search_by_row_is_exact_cosine_and_leaves_the_query_out(scene):
    table = read_embeddings(scene)
    query = f"{NAIP.name}#r4c6"
    result = search(scene, query, k=5)
    i = table.row_of(query)
    scores = cosine(table, i)
    scores[i] = -np.inf
    expected = np.argsort(-scores, kind="stable")[:5]  # (the random tiny model has near-ties: compare scores)
    np.testing.assert_allclose([n.similarity for n in result.neighbours], scores[expected], atol=1e-5)
    assert query not in [n.path for n in result.neighbours] and result.searched == len(table) - 1
    assert [n.rank for n in result.neighbours] == [1, 2, 3, 4, 5]
    by_number = search(scene, str(i), k=5)
    assert [n.path for n in by_number.neighbours] == [n.path for n in result.neighbours]


def test_search_by_file_embeds_it_with_the_same_checkpoint(mixed_run, mixed, checkpoint, tmp_path):
    summary, table = mixed_run
    folder, _ = mixed
    result = search(summary.output, str(folder / "s2" / "spain_s2_cog.tif"), k=3, checkpoint=checkpoint)
    top = result.neighbours[0]
    assert top.path == "s2/spain_s2_cog.tif" and top.similarity == pytest.approx(1.0, abs=1e-5)
    assert "lores, bands B4,B3,B2" in result.query
    with pytest.raises(InputError, match="give --checkpoint"):
        search(summary.output, str(folder / "s2" / "spain_s2_cog.tif"))
    other = make_checkpoint(tmp_path / "other", seed=3)
    with pytest.raises(InputError, match="not the checkpoint that made the output"):
        search(summary.output, str(folder / "s2" / "spain_s2_cog.tif"), checkpoint=other)
    with pytest.raises(InputError, match="neither a path of a row"):
        search(summary.output, "no/such/row.tif")


@pytest.mark.slow  # numba compiles UMAP's kernels: about 40 s the first time
def test_projection_map_uses_umap_and_separates_what_is_apart(scene, tmp_path):
    image = tmp_path / "map.png"
    summary = projection_map(scene, image, method="auto", colour_by="cluster", clusters=4)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary.rows == 154
    assert summary.method == "umap" and summary.notes == []
    # Two groups far apart in 64 dimensions stay apart in the plane, the same way for a seed.
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (40, 64)), rng.normal(8, 1, (40, 64))]).astype(np.float32)
    coords, used, _ = project(vectors, "umap", seed=3)
    assert used == "umap" and coords.shape == (80, 2)
    nearest = np.linalg.norm(coords[:, None] - coords[None], axis=-1).argsort(axis=1)[:, 1]
    assert ((nearest < 40) == (np.arange(80) < 40)).all()
    np.testing.assert_array_equal(project(vectors, "umap", seed=3)[0], coords)


def test_projection_map_falls_back_to_pca_without_umap(scene, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # what a missing umap-learn does to ``import umap``
    image = tmp_path / "map.png"
    summary = projection_map(scene, image, method="auto", colour_by="cluster", clusters=4)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary.rows == 154
    assert summary.method == "pca" and "umap-learn is not installed" in summary.notes[0]
    with pytest.raises(InputError, match=r"pip install 'salibi\[umap\]', or use --method pca"):
        projection_map(scene, tmp_path / "umap.png", method="umap")
    coords, used, _ = project(read_embeddings(scene).embedding, "pca")
    reference = PCA(n_components=2, random_state=0).fit_transform(read_embeddings(scene).embedding.astype(np.float64))
    assert used == "pca"
    np.testing.assert_allclose(np.abs(coords), np.abs(reference), rtol=1e-6, atol=1e-8)


def test_scene_map_lays_principal_components_on_the_chip_grid(scene, tmp_path):
    table = read_embeddings(scene)
    image = tmp_path / "pcs.tif"
    scene_map(scene, image)
    with rasterio.open(NAIP) as src, rasterio.open(image) as out:
        assert out.crs == src.crs and out.count == 4 and (out.height, out.width) == (11, 14)
        assert (out.transform.a, out.transform.e) == (320.0, -320.0)
        assert (out.transform.c, out.transform.f) == (src.bounds.left, src.bounds.top)  # anchored on the raster
        pixels = out.read()
    assert (pixels[3] == 255).all()  # every chip has a row
    first = PCA(n_components=1, random_state=0).fit_transform(table.embedding.astype(np.float64))[:, 0]
    rows = [tuple(map(int, p.split("#r")[1].split("c"))) for p in table.path]
    red = np.array([pixels[0, r, c] for r, c in rows], np.float64)
    correlation = np.corrcoef(red, first)[0, 1]
    assert abs(correlation) > 0.95  # the red channel is the first component, chip by chip


def test_scene_map_as_png_keeps_its_georeference(scene, tmp_path):
    image = tmp_path / "pcs.png"
    summary = scene_map(scene, image)
    assert [p.name for p in summary.side_files] == ["pcs.pgw", "pcs.png.aux.xml"]
    with rasterio.open(NAIP) as src, rasterio.open(image) as out:
        assert out.crs == src.crs and (out.transform.c, out.transform.f) == (src.bounds.left, src.bounds.top)


def test_commands_print_their_results(scene, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", str(scene), "--query", f"{NAIP.name}#r0c0", "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "3 nearest of 153 rows" in result.output and result.output.count(NAIP.name) == 4
    result = runner.invoke(cli, ["map", str(scene), "-o", str(tmp_path / "p.png"), "--color-by", "gsd"])
    assert result.exit_code == 0, result.output and (tmp_path / "p.png").exists()
    result = runner.invoke(cli, ["map", str(scene), "-o", str(tmp_path / "s.tif")])
    assert result.exit_code == 0 and "pca (3 components" in result.output
    result = runner.invoke(cli, ["search", str(scene), "--query", "nothing"])
    assert result.exit_code == 1 and result.output.startswith("Error: --query nothing: neither")
