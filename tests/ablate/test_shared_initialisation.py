"""The variants start from the same weights; digests tell equal weights from different ones; the
untrained twin of a checkpoint is the run's initial model."""

from __future__ import annotations

import pytest
import torch

from salibi.errors import DataFormatError
from salibi.eval.baseline import check_twin, untrained_twin
from salibi.train import PretrainConfig
from salibi.train.initial_weights import (
    compare_initial_weights,
    initial_model,
    parameter_digests,
    read_initial_weights,
    record_initial_weights,
)
from salibi.vocabulary import VARIANTS

CHANNELS = {"sar": 2, "lores": 6}


def _initial(variant: str, seed: int = 0):
    config = PretrainConfig(data=[], out="", model="tiny", variant=variant, seed=seed)
    return initial_model(config, ("sar", "lores"), CHANNELS, 10.0)


def test_every_variant_starts_from_the_same_parameters():
    digests = {v: parameter_digests(_initial(v)) for v in VARIANTS}
    found = compare_initial_weights(digests)
    assert found["different"] == [] and found["unshared"] == {}
    assert len(found["equal"]) == len(list(_initial("none").parameters())) > 50


def test_another_seed_or_one_changed_value_is_a_different_digest(tmp_path):
    model = _initial("scale-alibi")
    record_initial_weights(tmp_path, model, seed=0, variant="scale-alibi")
    stored = read_initial_weights(tmp_path)
    assert stored["seed"] == 0 and stored["parameters"] == parameter_digests(model)
    assert compare_initial_weights({"a": stored, "b": parameter_digests(_initial("alibi", seed=1))})["different"]
    with torch.no_grad():  # the next float32 after one value
        first = next(iter(model.parameters())).view(-1)
        first[0] = torch.nextafter(first[0], first[0] + 1)
    changed = compare_initial_weights({"a": stored, "b": parameter_digests(model)})
    assert len(changed["different"]) == 1


def test_the_untrained_twin_is_the_runs_initial_model():
    trained = _initial("alibi", seed=3)
    with torch.no_grad():  # "train" it
        for parameter in trained.parameters():
            parameter.add_(0.5)
    trained.modality_info["lores"]["bands"] = ["B02", "B03", "B04", "B08", "B11", "B12"]
    twin = untrained_twin(trained, seed=3)
    assert parameter_digests(twin) == parameter_digests(_initial("alibi", seed=3))
    assert twin.config.to_dict() == trained.config.to_dict()
    assert twin.modality_info["lores"]["bands"] == trained.modality_info["lores"]["bands"]
    check_twin(twin, {"parameters": parameter_digests(_initial("alibi", seed=3))}, "run")
    with pytest.raises(DataFormatError, match="initial weights"):
        check_twin(untrained_twin(trained, seed=4), {"parameters": parameter_digests(_initial("alibi", seed=3))}, "run")
