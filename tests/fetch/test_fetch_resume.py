"""kill -9 in the middle of a fetch, then the same command: only what is missing is transferred."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading

from helpers import SALIBI
from http_server import Fault

from .conftest import fetch_args, forget_downloads


def test_killed_fetch_resumes_with_what_is_missing(served, tmp_path, env):
    out = tmp_path / "spain"
    args = fetch_args(served, out)
    args[args.index("--jobs") + 1] = "1"  # one file at a time, in plan order
    held = "/spain/S2_spain_west_B02.tif"  # the third file of the plan
    arrived, go = threading.Event(), threading.Event()
    served.files.inject(held, Fault(hold=go, arrived=arrived))
    process = subprocess.Popen([SALIBI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert arrived.wait(120), "the fetch never asked for the third file"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(60)
    finally:
        go.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    done = sorted(p.name for p in out.rglob("*.tif"))
    assert done == ["lores-B03.tif", "lores-B04.tif"], done
    part = json.loads((out / "manifests" / "shard-0-of-1.json").read_text())
    assert part["complete"] is False and not (out / "manifest.json").exists()

    served.files.reset()
    forget_downloads()
    again = subprocess.run([SALIBI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "fetched 8 of 10 files (2 there already)" in again.stdout and "plan read back" in again.stdout
    asked = {r.path for r in served.files.requests}
    assert "/spain/S2_spain_west_B04.tif" not in asked and "/spain/S2_spain_west_B03.tif" not in asked
    assert held in asked and len(asked) == 8
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
