"""The shipped sample data: every file has a PyPI source named in data/README.md, and nothing in
the repository is a copy of ../shared/ data that no package distributes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from helpers import REPO, SAMPLES

PACKAGED = SAMPLES.resolve()  # data/samples links to python/salibi/sample_data

_PIN = re.compile(r"`([A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.\-]*)`")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_every_sample_file_is_listed_with_its_hash():
    listed = dict(reversed(line.split("  ", 1)) for line in (SAMPLES / "SHA256SUMS").read_text().splitlines())
    files = {p.relative_to(SAMPLES).as_posix(): p for p in SAMPLES.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(files) == set(listed)
    for name, path in files.items():
        assert _sha256(path) == listed[name], name


def test_every_sample_folder_names_a_package_version_and_licence():
    readme = (REPO / "data" / "README.md").read_text()
    table = readme.split("<!-- samples -->")[1].split("<!-- /samples -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    folders = {p.name for p in SAMPLES.iterdir() if p.is_dir()}
    for folder in folders:
        row = next((r for r in rows if r.startswith(f"| `{folder}/")), None)
        assert row is not None, f"data/README.md has no row for data/samples/{folder}"
        assert _PIN.search(row), f"row for {folder} names no package==version"
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[6], f"row for {folder} names no licence"


def test_no_tracked_file_is_a_copy_of_shared_data(shared):
    """Files of ../shared/ may be read in place, never committed (unless a PyPI package ships the
    same bytes: data/samples, whose sources the tests above check)."""
    root = shared("data").parent
    by_size: dict[int, list[Path]] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("README") and "hooks" not in path.parts:
            by_size.setdefault(path.stat().st_size, []).append(path)
    copies = []
    for path in _tracked():
        if path.is_file() and PACKAGED not in path.parents and path.stat().st_size in by_size:
            digest = _sha256(path)
            copies += [f"{path.relative_to(REPO)} = {s}" for s in by_size[path.stat().st_size] if _sha256(s) == digest]
    assert not copies, copies
