"""What a study is: its settings checked, its runs' commands, its folder refusing other settings."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import SALIBI
from salibi.ablate.study_plan import AblationSettings, StudyLayout, check_study, expand_data, pretrain_arguments
from salibi.errors import InputError, MissingInputError


def test_settings_need_the_reference_and_keep_their_own_options(tmp_path):
    with pytest.raises(InputError, match="include scale-alibi"):
        AblationSettings(data=["a.h5"], out=str(tmp_path), variants=("alibi", "sincos"))
    with pytest.raises(InputError, match="--variant"):
        AblationSettings(data=["a.h5"], out=str(tmp_path), pretrain_args=["--variant", "none"])
    settings = AblationSettings(
        data=["a.h5"], out=str(tmp_path), variants=("scale-alibi", "alibi"), max_steps=5, protocols=("knn", "majority")
    )
    assert settings.protocols == ("knn",)  # majority is always added as chance


def test_runs_of_one_seed_differ_in_the_variant_only(tmp_path):
    settings = AblationSettings(
        data=["a.h5", "b.h5"], out=str(tmp_path), max_steps=7, pretrain_args=["--mask-ratio", "0.6"]
    )
    layout = StudyLayout(tmp_path)
    commands = {v: pretrain_arguments(settings, layout.run(v, 1)) for v in settings.variants}
    reference = commands["scale-alibi"]
    for variant, args in commands.items():
        assert args[args.index("--variant") + 1] == variant and "--resume" in args
        changed = [(x, y) for x, y in zip(args, reference) if x != y]
        assert len(args) == len(reference) and len(changed) <= 2  # the run folder and the variant
    assert reference[reference.index("--seed") + 1] == "1" and reference[-3:] == ["--mask-ratio", "0.6", "--resume"]


def test_a_study_folder_refuses_other_run_settings(tmp_path):
    first = AblationSettings(data=["a.h5"], out=str(tmp_path / "s"), max_steps=5)
    check_study(first, StudyLayout(first.out))
    check_study(
        AblationSettings(data=["a.h5"], out=first.out, max_steps=5, variants=("scale-alibi",)), StudyLayout(first.out)
    )
    with pytest.raises(InputError, match="max_steps 6"):
        check_study(AblationSettings(data=["a.h5"], out=first.out, max_steps=6), StudyLayout(first.out))


def test_folders_of_aligned_sets_are_their_files(tmp_path):
    (tmp_path / "aligned").mkdir()
    for name in ("b.h5", "a.h5"):
        (tmp_path / "aligned" / name).write_bytes(b"")
    assert expand_data([str(tmp_path / "aligned")]) == [str(tmp_path / "aligned" / n) for n in ("a.h5", "b.h5")]
    with pytest.raises(MissingInputError, match="salibi demo --only align"):
        expand_data([str(tmp_path / "nothing.h5")])


def test_cli_dry_run_prints_the_commands_and_usage_errors_exit_2(tmp_path):
    data = tmp_path / "a.h5"
    data.write_bytes(b"")
    result = subprocess.run(
        [SALIBI, "ablate", str(data), "--out", str(tmp_path / "s"), "--variants", "scale-alibi,none", "--max-steps",
         "3", "--seeds", "2", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("salibi pretrain ") and "--resume" in line for line in lines)
    assert not (tmp_path / "s" / "runs").exists()
    wrong = subprocess.run(
        [SALIBI, "ablate", str(data), "--out", str(tmp_path / "t"), "--variants", "alibi"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2 and "include scale-alibi" in wrong.stderr


def test_under_torchrun_the_study_points_to_its_dry_run(tmp_path):
    data = tmp_path / "a.h5"
    data.write_bytes(b"")
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}  # as torchrun sets them
    result = subprocess.run(
        [SALIBI, "ablate", str(data), "--out", str(tmp_path / "s"), "--max-steps", "2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "--dry-run" in result.stderr
    assert not (tmp_path / "s").exists()
