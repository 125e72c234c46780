"""Every row of the bad-input table (:mod:`faults.bad_input_table`, docs/BAD_INPUT.md): the real
command, its exit status (1, or 2 for usage), exactly the row's one line on stderr with no
traceback, and nothing left behind or changed. Rows that need an unprivileged user run as
``nobody`` (the tests run as root in CI); the others run in-process for speed."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bigearthnet_pair import align_pair
from helpers import COMMAND_ENV, REPO, SALIBI
from salibi.cli import cli

from .bad_input_table import CASES, NON_UTF8, Case, markdown

DOCS = REPO / "docs" / "BAD_INPUT.md"


@pytest.fixture(scope="module")
def inputs(samples, shared) -> Iterator[dict[str, Path]]:
    """The good inputs every row starts from, in a folder any user may read."""
    import torch

    from salibi.eval.geobench.sample_tasks import write_shipped_tasks
    from salibi.models import build, save_checkpoint

    base = Path(tempfile.mkdtemp(prefix="salibi-bad-input-"))
    base.chmod(0o755)
    found = {"base": base, "root2": shared("geobench2_samples")}
    for name in ("pan1.tif", "ms1.tif"):
        shutil.copyfile(samples / "spacenet6_rotterdam" / name, base / name)
    found["pan"], found["ms"] = base / "pan1.tif", base / "ms1.tif"
    found["set"] = align_pair(samples, base / "set.h5")
    found["set"].chmod(0o644)
    run = base / "run"
    result = CliRunner().invoke(cli, ["pretrain", str(found["set"]), "--out", str(run), "--batch-size", "4",
                                      "--max-steps", "2", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    found["run"] = run
    torch.manual_seed(0)
    found["ckpt"] = save_checkpoint(
        build("tiny", modalities=("sar", "lores", "hires"), channels={"lores": 4}),
        base / "ckpt",
        bands={"sar": ["VV", "VH"], "lores": ["B04", "B03", "B02", "B08"], "hires": ["red", "green", "blue"]},
        gsd={"sar": 10.0, "lores": 10.0, "hires": 0.5},
    )
    found["root"] = write_shipped_tasks(base / "geobench")
    tiles = base / "tiles"
    tiles.mkdir()
    shutil.copyfile(samples / "spacenet6_rotterdam" / "rgb_unmasked.tif", tiles / "rgb.tif")
    found["tiles"] = tiles
    (base / "cases").mkdir()
    for path in [base, *base.rglob("*")]:  # readable by the unprivileged user
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    yield found
    subprocess.run(["chmod", "-R", "u+rwx", str(base)], check=False)
    shutil.rmtree(base, ignore_errors=True)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder``: (size, modification time, mode) -- what a writer would change."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if path.is_dir():  # a temporary file made and removed changes a folder's time: only files count
            found[str(path.relative_to(folder))] = (0, 0, info.st_mode)
        else:
            found[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return found


def expected_line(case: Case) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in case.message.split("…")))


def run_case(case: Case, argv: list[str], as_nobody: Callable[[list[str]], list[str]]) -> tuple[int, str, str]:
    """Exit status, stderr and stdout of ``salibi argv``."""
    if case.unprivileged or case.id == "align-non-utf8":
        command = [SALIBI, *argv]
        if case.unprivileged:
            command = as_nobody(command)
        env = {**COMMAND_ENV, "HOME": "/tmp", "MPLCONFIGDIR": tempfile.gettempdir()}
        result = subprocess.run(command, capture_output=True, env=env, timeout=600)
        return result.returncode, os.fsdecode(result.stderr), os.fsdecode(result.stdout)
    from salibi.cli import _show_warning

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning  # as salibi.cli.main does
        result = CliRunner().invoke(cli, argv, prog_name="salibi")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the row fails
    return result.exit_code, result.stderr, result.stdout


ROWS = [
    pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.pending)] if case.pending else [])
    for case in CASES
]


@pytest.mark.parametrize("case", ROWS)
def test_bad_input_gives_its_one_line_and_changes_nothing(case: Case, inputs: dict[str, Path], as_nobody):
    if case.needs_no_gpu:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    base = inputs["base"]
    folder = base / "cases" / case.id
    folder.mkdir()
    folder.chmod(0o777)
    if case.make is not None:
        case.make(folder, inputs)
    places = {name: str(path) for name, path in inputs.items()}
    argv = [case.command, *(arg.format(case=folder, **places) for arg in case.args)]
    before = snapshot(base)
    try:
        status, stderr, stdout = run_case(case, argv, as_nobody)
    finally:
        after = snapshot(base)
        pwned = Path("/tmp/salibi-bad-input-pwned")
    assert not pwned.exists(), "a hostile pickle ran"
    if os.environ.get("SALIBI_BAD_INPUT_RECORD"):  # to write a new row: what the command says now
        with open(os.environ["SALIBI_BAD_INPUT_RECORD"], "a", encoding="utf-8") as record:
            record.write(
                f"{case.id}\t{status}\t{stderr.replace(str(folder) + '/', '').replace(str(base) + '/', '')!r}\n"
            )
    lines = [line for line in stderr.splitlines() if line.strip()]
    shown = [line.replace(f"{folder}/", "").replace(f"{base}/", "").replace(str(base), "") for line in lines]
    assert "Traceback" not in stderr, stderr
    assert len(shown) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert expected_line(case).fullmatch(shown[0]), f"\nexpected: {case.message}\n     got: {shown[0]}"
    assert status == case.status, (status, stderr)
    changed = sorted({*before.items()} ^ {*after.items()}, key=str)
    assert not changed, f"something was written, removed or changed: {changed[:6]}"
    assert not stdout.strip() or case.command == "eval", stdout


def test_the_table_in_docs_is_the_table_the_tests_run():
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "docs/BAD_INPUT.md is out of date: python tests/faults/bad_input_table.py > docs/BAD_INPUT.md"
    )


def test_the_table_covers_at_least_30_kinds_across_the_commands():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.command for c in CASES} >= {"align", "pretrain", "eval", "embed", "fetch"}
    assert NON_UTF8.encode("utf-8", "surrogateescape") == b"caf\xe9.tif"
