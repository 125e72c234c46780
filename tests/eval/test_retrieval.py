"""salibi eval retrieval: the metrics against a plain computation on fixed features (ties against
the query, chance), the command's JSON and table on a real aligned set beside the untrained twin,
and salibi embed --space: the shared space recorded, read back, and equal to what retrieval ranks.

One module: the aligned set (one BigEarthNet square, 25 chips) and the checkpoint are made once."""

from __future__ import annotations

import json
import statistics
import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from bigearthnet_pair import align_pair
from salibi.cli import cli
from salibi.eval.retrieval.recall import (
    METRICS,
    chance,
    match_ranks,
    metric_replicates,
    metric_values,
    score_ranks,
)
from salibi.eval.scoring.bootstrap import percentile_interval, resample_weights
from salibi.vocabulary import RETRIEVAL_FORMAT, RETRIEVAL_FORMAT_VERSION

#: The checkpoint's low-res bands in another order than the set's (B04, B03, B02, B08): matched by name.
CHECKPOINT_LORES = ["B02", "B03", "B04", "B08"]


def plain_ranks(queries: np.ndarray, candidates: np.ndarray) -> list[int]:
    """For each query i: sort all candidates by cosine similarity, best first, the right answer
    after every candidate tied with it; its 1-based position."""
    ranks = []
    for i, query in enumerate(queries):
        similarity = [float(np.dot(query, c) / (np.linalg.norm(query) * np.linalg.norm(c))) for c in candidates]
        order = sorted(range(len(candidates)), key=lambda j: (-similarity[j], j == i))
        ranks.append(order.index(i) + 1)
    return ranks


def plain_metrics(ranks: list[int]) -> dict[str, float]:
    return {
        **{f"recall@{k}": sum(r <= k for r in ranks) / len(ranks) for k in (1, 5, 10)},
        "median_rank": float(statistics.median(ranks)),
    }


def test_ranks_recalls_and_median_rank_match_a_plain_computation():
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(31, 6))
    candidates = queries + rng.normal(scale=1.2, size=queries.shape)  # related, far from perfect
    ranks = match_ranks(queries, candidates)
    expected = plain_ranks(queries, candidates)
    assert ranks.tolist() == expected and 1 < np.median(expected) < 31
    assert metric_values(ranks) == pytest.approx(plain_metrics(expected))
    # Each replicate is the metric on that resample of the queries, drawn as scoring's bootstrap draws them.
    weights = resample_weights(len(ranks))
    replicates = metric_replicates(ranks, weights)
    for r in (0, 1, 17, 199):
        drawn = np.repeat(np.array(expected), weights[r].astype(int)).tolist()
        for name, value in plain_metrics(drawn).items():
            assert replicates[name][r] == pytest.approx(value), (r, name)
    scored = score_ranks(ranks)
    assert list(scored) == list(METRICS) and all(s.n_test == 31 for s in scored.values())


def test_a_tie_counts_against_the_query():
    v, w = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    queries = np.stack([v, w, w])
    candidates = np.stack([v, 3 * v, w])  # candidate 1 points where candidate 0 does: a tie for query 0
    assert match_ranks(queries, candidates).tolist() == [2, 3, 1] == plain_ranks(queries, candidates)
    same = np.ones((5, 4))
    assert match_ranks(same, same).tolist() == [5] * 5  # all alike: every query last
    assert metric_values(match_ranks(same, same)) == {
        "recall@1": 0.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "median_rank": 5.0,
    }


def test_chance_is_what_ranks_drawn_at_random_give():
    assert chance(50) == {"recall@1": 0.02, "recall@5": 0.1, "recall@10": 0.2, "median_rank": 25.5}
    assert chance(4)["recall@5"] == chance(4)["recall@10"] == 1.0
    for n in (7, 40):  # every rank once: what a uniformly random rank gives on average
        permutation = np.random.default_rng(n).permutation(np.arange(1, n + 1))
        assert metric_values(permutation) == pytest.approx(chance(n))


@pytest.fixture(scope="module")
def aligned(samples, tmp_path_factory):
    return align_pair(samples, tmp_path_factory.mktemp("retrieval") / "set.h5")


@pytest.fixture(scope="module")
def checkpoint(aligned, tmp_path_factory):
    """An untrained tiny model (seed 1) with the set's statistics, its low-res bands in another order."""
    import torch

    from salibi.models import build, save_checkpoint

    with h5py.File(aligned) as f:
        order = [list(f["lores"].attrs["bands"]).index(b) for b in CHECKPOINT_LORES]
        mean = {"sar": f["sar/mean"][:].tolist(), "lores": f["lores/mean"][:][order].tolist()}
        std = {"sar": f["sar/std"][:].tolist(), "lores": f["lores/std"][:][order].tolist()}
    torch.manual_seed(1)
    model = build("tiny", modalities=("sar", "lores"), channels={"sar": 2, "lores": 4})
    return save_checkpoint(
        model,
        tmp_path_factory.mktemp("retrieval_checkpoint") / "ckpt",
        bands={"sar": ["VV", "VH"], "lores": CHECKPOINT_LORES},
        gsd={"sar": 10.0, "lores": 10.0},
        mean=mean,
        std=std,
    )


@pytest.fixture(scope="module")
def features(aligned, checkpoint):
    from salibi.eval.retrieval.projections import contrastive_features, open_chips
    from salibi.models import load_checkpoint

    model = load_checkpoint(checkpoint)
    return contrastive_features(model, open_chips([aligned], None, model), batch_size=7)


def test_the_command_writes_the_documented_json_and_prints_the_table(aligned, checkpoint, features, tmp_path):
    output = tmp_path / "retrieval.json"
    args = ["eval", "retrieval", str(aligned), "--checkpoint", str(checkpoint), "--split", "all"]
    result = CliRunner().invoke(cli, [*args, "--baseline", "random-init", "--output", str(output), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads(output.read_text())
    assert (document["format"], document["version"]) == (RETRIEVAL_FORMAT, RETRIEVAL_FORMAT_VERSION)
    assert document["n_queries"] == 25 and document["space"] == "shared"
    pairs = ["sar->lores", "lores->sar"]
    assert list(document["results"]) == pairs and list(document["baseline"]["differences"]) == pairs
    for pair, (a, b) in zip(pairs, [("sar", "lores"), ("lores", "sar")]):
        # The command's numbers are the metrics of the features ranked plainly.
        assert document["results"][pair] == pytest.approx(plain_metrics(plain_ranks(features[a], features[b])))
        assert document["chance"][pair] == pytest.approx(chance(25))
        for metric in METRICS:
            value, (low, high) = document["results"][pair][metric], document["intervals"][pair][metric]
            assert low <= value <= high
            diff = document["baseline"]["differences"][pair][metric]
            untrained = document["baseline"]["results"][pair][metric]
            assert diff["delta"] == pytest.approx(value - untrained)
            paired = np.array(document["replicates"][pair][metric]) - np.array(
                document["baseline"]["replicates"][pair][metric]
            )  # the same resamples of the same queries
            assert diff["interval"] == pytest.approx(percentile_interval(paired), abs=1e-4)
            assert diff["excludes_zero"] == (diff["interval"][0] > 0 or diff["interval"][1] < 0)
    assert document["baseline"]["name"] == "random-init" and "seed 0" in document["baseline"]["description"]
    table = result.stdout
    assert "| pair | metric | checkpoint | 95 % interval | random init | 95 % interval | difference |" in table
    assert "| sar->lores | recall@1 |" in table and "25 queries per pair (split all)" in table
    assert "- lores->sar: " in table


def test_embed_shared_space_is_recorded_read_back_and_is_what_retrieval_ranks(aligned, checkpoint, features, tmp_path):
    from salibi.embed import read_embeddings
    from salibi.embed.search import search
    from salibi.explore.neighbours import embedding_space

    shared, encoder = tmp_path / "shared.h5", tmp_path / "encoder.parquet"
    for output, space in ((shared, "shared"), (encoder, "encoder")):
        args = ["embed", str(aligned), "--checkpoint", str(checkpoint), "-o", str(output), "--device", "cpu"]
        result = CliRunner().invoke(cli, [*args, "--space", space, "--per-modality"])
        assert result.exit_code == 0, result.output
    table = read_embeddings(shared)
    assert table.attrs["space"] == "shared" and embedding_space(table.attrs) == ("shared", True)
    assert sorted(set(table.modality)) == ["lores", "sar"]  # no joint row: fused tokens have no projection
    for m in ("sar", "lores"):
        rows = [table.row_of(f"set.h5#{i}", m) for i in range(25)]
        np.testing.assert_allclose(table.embedding[rows], features[m], atol=1e-5)
    found = read_embeddings(encoder)
    assert found.attrs["space"] == "encoder" and "joint" in set(found.modality)
    # Across modalities salibi search warns outside the shared space only.
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        answer = search(shared, "0", k=30)
        search(encoder, "0", k=3)
    assert {n.modality for n in answer.neighbours} == {"sar", "lores"}
    assert [str(w.message) for w in said if "not comparable" in str(w.message)] == [
        f"{encoder}: rows of joint, lores, sar in each encoder's own space (space encoder): similarities across "
        "modalities are not comparable; search one with --modality, or embed with --space shared"
    ]
    # An output is continued in its own space only.
    again = CliRunner().invoke(cli, ["embed", str(aligned), "--checkpoint", str(checkpoint), "-o", str(shared)])
    assert again.exit_code == 1 and "in the shared space, this run embeds in the encoder space" in again.output
