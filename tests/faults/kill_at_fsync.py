"""Run the salibi command line and SIGKILL it when it first flushes a file whose path matches a
pattern: the data are written, not yet durable, not yet renamed -- the worst moment to die.

    python tests/faults/kill_at_fsync.py PATTERN [salibi arguments ...]

``os.fsync`` is wrapped (it still runs for every other file); nothing else is changed.
"""

from __future__ import annotations

import os
import re
import signal
import sys


def main() -> None:
    pattern = re.compile(sys.argv[1])
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if pattern.search(os.readlink(f"/proc/self/fd/{fd}")):
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync
    from salibi.cli import main as salibi

    sys.argv = ["salibi", *sys.argv[2:]]
    salibi()


if __name__ == "__main__":
    main()
