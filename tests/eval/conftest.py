"""Fixtures for the GEO-Bench evaluation tests: generated tasks, real files, checkpoints."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Real GEO-Bench files written by geobench itself, read in place from ../shared/ beside the
#: project (its geobench_samples/README.md says what they are); never copied into the repo.
REAL = Path(__file__).resolve().parents[3] / "shared" / "geobench_samples"
S2_NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_geobench_fixtures", FIXTURES / "make_geobench_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixture_generator():
    """The fixture script as a module (``make_all``, ``geobench_modules``, ``write_sample``, ...)."""
    return _load_generator()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The tensors here are tiny; on 2 shared cores, torch's intra-op threads only add contention.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory, fixture_generator) -> Path:
    """Every synthetic task kind (see make_geobench_fixtures.py), written once per session.

    Read-only by convention: tests that change files copy a task first (see ``copy_task``).
    """
    return fixture_generator.make_all(tmp_path_factory.mktemp("geobench"))


@pytest.fixture
def copy_task(tmp_path):
    """Copy one task folder into a fresh root: ``copy_task(src_task_dir, benchmark) -> task dir``."""

    def copy(source: Path, benchmark: str = "classification_v1.0") -> Path:
        target = tmp_path / "root" / benchmark / source.name
        shutil.copytree(source, target, symlinks=True)
        for path in target.iterdir():
            if not path.is_symlink():
                path.chmod(0o644)
        return target

    return copy


@pytest.fixture(scope="session")
def real_root(shared) -> Path:
    """The real m-eurosat samples laid out as a GEO-Bench root (fails under CI, skips elsewhere,
    when ../shared/ is missing)."""
    return shared("geobench_samples")


@pytest.fixture(autouse=True)
def _real_files_present(request, shared):
    # Tests of modules that name the real files directly (REAL / ...) need ../shared/ too.
    if "REAL" in vars(request.module):
        shared("geobench_samples")


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny checkpoint with all three modalities and named bands."""
    import torch

    from salibi.models import build, save_checkpoint

    torch.manual_seed(0)
    model = build("tiny", modalities=("sar", "lores", "hires"), channels={"lores": 13})
    path = tmp_path_factory.mktemp("ckpt") / "random"
    save_checkpoint(
        model,
        path,
        bands={"lores": S2_NAMES, "sar": ["VV", "VH"], "hires": ["red", "green", "blue"]},
        gsd={"lores": 10.0, "sar": 10.0, "hires": 1.0},
    )
    return path
