"""Crash safety and resume: a killed run keeps what it finished; re-running gives one row per tile."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from salibi.embed import embed_folder, read_embeddings
from salibi.errors import DataFormatError, OutputExistsError

from .make_tiles import make_checkpoint


def assert_same_rows(table, reference, paths):
    assert sorted(table.path) == sorted(paths)
    assert len(set(table.path)) == len(table.path)
    for p in paths:
        np.testing.assert_allclose(
            table.embedding[table.row_of(p)], reference.embedding[reference.row_of(p)], rtol=1e-5, atol=1e-6
        )
        assert table.gsd[table.row_of(p)] == reference.gsd[reference.row_of(p)]
        np.testing.assert_array_equal(table.bounds[table.row_of(p)], reference.bounds[reference.row_of(p)])


def part_rows(parts_dir) -> list[str]:
    paths = []
    for part in sorted(parts_dir.glob("part-*.h5")):
        with h5py.File(part, "r") as f:
            paths.extend(f["path"].asstr()[:])
    return paths


@pytest.mark.slow
def test_killed_run_resumes_to_exactly_one_row_per_tile(resume_tiles, resume_reference, checkpoint, tmp_path):
    tiles, names = resume_tiles
    output = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    command = [
        sys.executable,
        "-m",
        "salibi",
        "embed",
        str(tiles),
        "--checkpoint",
        str(checkpoint),
        "-o",
        str(output),
        "--batch-size",
        "2",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if parts.is_dir() and any(parts.glob("part-*.h5")):
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    log = process.communicate()[0].decode()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{log}"

    # What the killed run left: complete parts only, no out.h5 (nothing was merged yet)
    assert not output.exists()
    finished = part_rows(parts)
    assert 0 < len(finished) < len(names)
    print(f"killed after {len(finished)} of {len(names)} tiles")
    assert len(set(finished)) == len(finished)
    backup = tmp_path / "parts-after-kill"
    shutil.copytree(parts, backup)

    summary = embed_folder(tiles, checkpoint, output, batch_size=2, progress=False)
    assert summary.skipped == len(finished)
    assert summary.embedded == len(names) - len(finished)
    assert summary.rows == len(names) and summary.failed == 0
    assert not parts.exists()  # merged and removed
    assert_same_rows(read_embeddings(output), resume_reference, names)

    # A crash after the merged file was renamed into place but before the parts were deleted,
    # plus a half-written part (temporary name) and a damaged part (e.g. after a power cut):
    shutil.copytree(backup, parts)
    (parts / "part-000900.h5.tmp").write_bytes(b"half a file")
    first = sorted(backup.glob("part-*.h5"))[0]
    (parts / "part-000901.h5").write_bytes(first.read_bytes()[:700])
    again = embed_folder(tiles, checkpoint, output, batch_size=2, progress=False)
    assert (again.embedded, again.skipped, again.rows) == (0, len(names), len(names))
    assert any("part-000901.h5" in note for note in again.notes)
    assert not parts.exists()
    assert_same_rows(read_embeddings(output), resume_reference, names)


def test_new_tiles_are_appended_and_failed_tiles_retried(mixed, mixed_run, checkpoint, tmp_path):
    folder, _ = mixed
    summary, first = mixed_run
    output = tmp_path / "out.h5"
    shutil.copy(summary.output, output)
    again = embed_folder(folder, checkpoint, output, gsd=0.5, progress=False)  # plain.png can be embedded now
    assert (again.skipped, again.embedded, again.failed) == (9, 1, 2)
    table = read_embeddings(output)
    assert len(table.path) == 10 and len(set(table.path)) == 10
    assert table.path[:9] == first.path  # appended after the rows that were there
    assert table.path[9] == "photos/plain.png"
    assert sorted(table.failed_path) == ["broken/truncated.tif", "sn6/pan.tif"]  # each once, plain.png gone
    np.testing.assert_array_equal(table.embedding[:9], first.embedding)


def test_another_checkpoint_is_refused_and_the_output_left_alone(mixed_run, mixed, tmp_path):
    summary, _ = mixed_run
    output = tmp_path / "out.h5"
    shutil.copy(summary.output, output)
    before = output.read_bytes()
    other = make_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(OutputExistsError, match="another checkpoint.*choose another -o"):
        embed_folder(mixed[0], other, output, progress=False)
    assert output.read_bytes() == before
    assert not (tmp_path / "out.h5.parts").exists()


def test_an_output_that_is_not_a_salibi_embeddings_file_is_refused(resume_tiles, checkpoint, tmp_path):
    tiles, _ = resume_tiles
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:  # another format: it may be precious, so never "delete it"
        f.attrs["format"] = "salibi-aligned"
        f.attrs["format_version"] = 1
        f.attrs["gsd"] = np.array([10.0, 10.0])  # array attributes, as aligned sets have
    before = other.read_bytes()
    with pytest.raises(
        DataFormatError,
        match=r"other\.h5: not a salibi embeddings file \(format 'salibi-aligned'\); choose another -o$",
    ):
        embed_folder(tiles, checkpoint, other, progress=False)
    assert other.read_bytes() == before and not (tmp_path / "other.h5.parts").exists()
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("embedding", data=np.zeros((3, 4), np.float32))
    with pytest.raises(DataFormatError, match=r"bare\.h5: not a salibi embeddings file \(no format attribute\)"):
        embed_folder(tiles, checkpoint, bare, progress=False)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = tmp_path / "table.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), table)
    with pytest.raises(
        DataFormatError, match=r"table\.parquet: not a salibi embeddings file \(no salibi-embeddings metadata\)"
    ):
        embed_folder(tiles, checkpoint, table, progress=False)
    newer = tmp_path / "newer.h5"  # ours, of a version this salibi does not read
    with h5py.File(newer, "w") as f:
        f.attrs["format"] = "salibi-embeddings"
        f.attrs["format_version"] = 99
        f.create_dataset("path", data=np.array([b"a"]))
        f.create_dataset("modality", data=np.array([b"lores"]))
    with pytest.raises(DataFormatError, match=r"not a salibi-embeddings file this salibi reads \(version 1 or 2\)"):
        embed_folder(tiles, checkpoint, newer, progress=False)
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    with pytest.raises(DataFormatError, match="cannot be read as HDF5"):
        embed_folder(tiles, checkpoint, text, progress=False)
    assert text.read_text() == "not HDF5"


@pytest.mark.slow
def test_worker_processes_give_the_same_rows_bit_for_bit(resume_tiles, resume_reference, checkpoint, tmp_path):
    """Reading in 2 DataLoader workers changes nothing; the model is deterministic (eval mode)."""
    tiles, names = resume_tiles
    summary = embed_folder(tiles, checkpoint, tmp_path / "out.h5", batch_size=2, num_workers=2, progress=False)
    assert summary.embedded == len(names)
    table = read_embeddings(tmp_path / "out.h5")
    assert table.path == resume_reference.path
    np.testing.assert_array_equal(table.embedding, resume_reference.embedding)


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(resume_tiles, checkpoint, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    tiles, _ = resume_tiles
    parts = tmp_path / "out.h5.parts"
    parts.mkdir()
    fd = os.open(parts, os.O_RDONLY)  # what a running salibi embed holds
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputExistsError, match="another salibi embed is writing this output"):
            embed_folder(tiles, checkpoint, tmp_path / "out.h5", progress=False)
        assert parts.is_dir()  # the refused run leaves the other run's folder alone
    finally:
        os.close(fd)
    assert not (tmp_path / "out.h5").exists()
