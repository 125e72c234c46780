"""Training state without pickle: optimizer round trip, run folder layout, pruning."""

from __future__ import annotations

import torch

from salibi.train import training_state


def test_optimizer_state_round_trips_through_tensors_and_json(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.95))
    model(torch.randn(5, 4)).square().sum().backward()
    optimizer.step()
    tensors, meta = training_state.flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp_path / "t.safetensors"))
    (tmp_path / "m.json").write_text(json.dumps(meta))
    restored = training_state.unflatten_optimizer(
        load_file(str(tmp_path / "t.safetensors")), json.loads((tmp_path / "m.json").read_text())
    )
    other = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.95))
    other.load_state_dict(restored)
    for a, b in zip(optimizer.state_dict()["state"].values(), other.state_dict()["state"].values()):
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    # Both take the same next step.
    snapshot = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    after_first = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, s in zip(model.parameters(), snapshot):
            p.copy_(s)
    other.step()
    for p, a in zip(model.parameters(), after_first):
        torch.testing.assert_close(p, a)


def test_prune_keeps_the_newest_and_the_one_last_names(tmp_path):
    run = tmp_path / "run"
    for step in (100, 200, 300, 400):
        (training_state.checkpoints_dir(run) / training_state.step_name(step)).mkdir(parents=True)
    training_state.write_last(run, "step_0000200")
    training_state.prune(run, keep=2)
    names = [folder.name for _, folder in training_state.step_checkpoints(run)]
    assert names == ["step_0000200", "step_0000300", "step_0000400"]
    assert (training_state.checkpoints_dir(run) / "last").read_text().strip() == "step_0000200"


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    from salibi.train.metrics import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n{"step": 3, "loss": 1.8}\n{"step": 4, "lo')
    truncate_metrics(path, start_step=2)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n'


def _saved_checkpoint(run, step: int):
    """A training checkpoint as the trainer saves it (a tiny stand-in model file beside the state)."""

    def write_model(folder):
        (folder / "model.safetensors").write_bytes(b"weights" * 100)
        (folder / "config.json").write_text('{"format": "x"}\n')

    return training_state.save_training_checkpoint(
        run, step, write_model, {"rng.cpu.rank0": torch.arange(8, dtype=torch.uint8)}, {"step": step}
    )


def test_a_saved_checkpoint_is_verified_file_by_file_against_what_its_saver_wrote(tmp_path):
    import pytest

    from salibi.errors import DataFormatError, MissingInputError

    folder = _saved_checkpoint(tmp_path / "run", 7)
    assert training_state.verify_saved(folder) == 7
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"X")  # same size, other bytes
    with pytest.raises(DataFormatError, match=r"model.safetensors: 700 bytes, sha256 .* but the saver wrote 700 bytes"):
        training_state.verify_saved(folder)
    weights.unlink()
    with pytest.raises(MissingInputError, match="model.safetensors: missing"):
        training_state.verify_saved(folder)


def test_a_stop_whose_checkpoint_is_not_on_disk_is_an_error_naming_the_newest_complete_one(tmp_path):
    """The stop message is said only of a checkpoint found complete: otherwise one error line that
    names what is left (it said 'stopped by SIGTERM after step 3 ... continue with' and exited 0)."""
    import pytest

    from salibi.errors import SalibiError
    from salibi.train.launch import _check_saved

    run = tmp_path / "run"
    _check_saved({"step": 7, "stopped_by": "SIGTERM", "checkpoint": str(_saved_checkpoint(run, 7))}, run)
    with pytest.raises(SalibiError, match=r"^stopped by SIGTERM after step 9, but its checkpoint was not saved "
                       r"\(no checkpoint was written\); .* has no complete checkpoint"):  # fmt: skip
        _check_saved({"step": 9, "stopped_by": "SIGTERM", "checkpoint": None}, run)
    damaged = _saved_checkpoint(run, 9)
    (damaged / "trainer.safetensors").write_bytes(b"")
    with pytest.raises(SalibiError, match=r"after step 9, but its checkpoint was not saved \(.*trainer.safetensors"):
        _check_saved({"step": 9, "stopped_by": "SIGINT", "checkpoint": str(damaged)}, run)
    with pytest.raises(SalibiError, match=r"holds step 7"):
        _check_saved({"step": 8, "stopped_by": "SIGINT", "checkpoint": str(run / "checkpoints" / "step_0000007")}, run)
