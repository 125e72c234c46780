"""Segmentation heads on tokens whose answers are known, the chance reference, the protocol registry."""

from __future__ import annotations

import numpy as np
import pytest

from salibi.errors import InputError
from salibi.eval.protocols import registry as P
from salibi.eval.protocols.segmentation_heads import fpn_head_probe, linear_head_probe, majority_predict
from salibi.eval.scoring.task_metrics import mean_iou


def _pixel_rule(n=24, levels=None, seed=0):
    """Token feature 0 says "foreground"; labels are the tokens' masks upsampled 4x."""
    rng = np.random.default_rng(seed)
    fg = rng.integers(0, 2, (n, 4, 4))
    tokens = rng.normal(0, 0.1, (n, 16, 8)).astype(np.float16)
    tokens[:, :, 0] += fg.reshape(n, 16) * 2
    labels = np.kron(fg, np.ones((4, 4), dtype=np.int64)).astype(np.int16)
    labels[:, 0, 0] = -1  # ignored
    if levels:
        noise = rng.normal(0, 0.1, (n, levels, 16, 8)).astype(np.float16)
        tokens = (noise + tokens[:, None]).astype(np.float16)
    return tokens, labels


def test_linear_head_learns_a_pixel_rule():
    tokens, labels = _pixel_rule()
    predicted = linear_head_probe(tokens[:16], labels[:16], tokens[16:], (4, 4), 4.0, 2, steps=150)
    assert predicted.shape == (8, 16, 16)
    assert mean_iou(labels[16:], predicted, 2) > 0.7


def test_fpn_head_learns_a_pixel_rule_and_depends_on_its_seed():
    tokens, labels = _pixel_rule(n=40, levels=2)
    one = fpn_head_probe(tokens[:32], labels[:32], tokens[32:], (4, 4), 4.0, 2, seed=0, epochs=10, batch_size=8)
    assert one.shape == (8, 16, 16) and mean_iou(labels[32:], one, 2) > 0.7
    again = fpn_head_probe(tokens[:32], labels[:32], tokens[32:], (4, 4), 4.0, 2, seed=0, epochs=10, batch_size=8)
    np.testing.assert_array_equal(one, again)
    with pytest.raises(InputError, match="block tokens"):
        fpn_head_probe(tokens[:4, 0], labels[:4], tokens[:4, 0], (4, 4), 4.0, 2)


def test_majority_reference_predicts_the_most_frequent_training_class():
    prediction, score = majority_predict(np.array([2, 2, 1, 0, 2]), np.array([2, 0, 1, 2]), "classification")
    assert prediction.tolist() == [2, 2, 2, 2] and score[0].tolist() == [0.2, 0.2, 0.6]
    masks = np.array([[[1, 1], [-1, -1]], [[1, 0], [-1, -1]]])  # no-data (-1) is not a class
    prediction, _ = majority_predict(masks, np.zeros((3, 2, 2)), "segmentation")
    assert prediction.tolist() == np.ones((3, 2, 2)).tolist()
    multi = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 0]])
    prediction, score = majority_predict(multi, np.zeros((2, 3)), "multilabel")
    assert prediction.tolist() == [[1, 0, 0], [1, 0, 0]] and score[0] == pytest.approx([1, 1 / 3, 1 / 3])


def test_fpn_blocks_are_evenly_spaced_and_end_with_the_last():
    assert P.fpn_blocks(12) == [2, 5, 8, 11]
    assert P.fpn_blocks(24) == [5, 11, 17, 23]
    assert P.fpn_blocks(2) == [0, 1]


def test_protocol_names_and_aliases():
    assert P.normalise_protocols(["seg", "knn", "seg-linear"]) == ["seg-linear", "knn"]
    with pytest.raises(InputError, match="choose among knn, linear, seg-linear, seg-fpn, majority"):
        P.normalise_protocols(["svm"])


def test_every_protocol_on_arrays_with_intervals():
    """Protocols take arrays, not a task on disk; each metric comes with its interval."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = np.eye(3)[y] * 3 + rng.normal(0, 0.5, (60, 3))
    data = P.ProtocolInputs("classification", 3, x[:30], y[:30], x[30:40], y[30:40], x[40:], y[40:])
    settings = P.ProtocolSettings(c_grid=(0.01, 1.0), resamples=50)
    for protocol in ("knn", "linear", "majority"):
        output = P.run_protocol(protocol, data, settings)
        scores = P.score_output("classification", data.test_y, output, 3, settings)
        accuracy = scores["accuracy"]
        assert accuracy.low <= accuracy.value <= accuracy.high and len(accuracy.replicates) == 50
        assert (accuracy.value > 0.9) == (protocol != "majority")
    with pytest.raises(InputError, match="does not apply"):
        P.run_protocol("seg-fpn", data, settings)
