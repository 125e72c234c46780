"""The stop matrix of ``salibi pretrain`` (tested by test_stop_matrix.py; docs/STOP_MATRIX.md is
generated from it: ``python tests/faults/stop_matrix.py > docs/STOP_MATRIX.md``, a test keeps it
current): every way a job can be asked to stop, and the subset CI runs."""

from __future__ import annotations

import itertools
import sys

FACTORS = {
    "launcher": ("salibi", "torchrun"),
    "ranks": (1, 2),
    "target": ("group", "launcher", "rank"),
    "workers": (0, 1, 2),
    "signal": ("SIGTERM", "SIGINT"),
}
#: Steps of a run: the stop comes once step 2 is logged, --resume goes on to the last.
STEPS = 16
#: The combination of the defect (SIGTERM to the group of two ranks with a worker: no checkpoint, exit 0).
DEFECT = ("salibi", 2, "group", 1, "SIGTERM")


def combinations() -> list[tuple]:
    """Every distinct combination: salibi's launcher trains one rank in its own process, so there
    the launcher and the rank are one target."""
    found = []
    for combo in itertools.product(*FACTORS.values()):
        launcher, ranks, target, _, _ = combo
        if launcher == "salibi" and ranks == 1 and target == "rank":
            continue
        found.append(combo)
    return found


ALL = combinations()
#: Nine combinations in which every value of each factor meets every value of every other
#: (test_the_pairwise_subset_covers_every_pair_of_values): ``SALIBI_STOP_MATRIX=pairwise``.
PAIRWISE = [
    ("salibi", 2, "group", 1, "SIGTERM"),
    ("salibi", 2, "launcher", 0, "SIGTERM"),
    ("salibi", 1, "launcher", 2, "SIGTERM"),
    ("salibi", 2, "group", 2, "SIGINT"),
    ("torchrun", 1, "rank", 0, "SIGINT"),
    ("torchrun", 1, "launcher", 1, "SIGINT"),
    ("torchrun", 2, "rank", 2, "SIGTERM"),
    ("torchrun", 1, "group", 0, "SIGTERM"),
    ("salibi", 2, "rank", 1, "SIGINT"),
]
#: What CI runs (a run costs 12-23 s of a core): every value of every factor at least once, among
#: them the defect's and a terminal's Ctrl-C to two ranks with two workers each (the combination
#: whose workers once died of it).
CI_SUBSET = [
    DEFECT,
    ("salibi", 2, "group", 2, "SIGINT"),
    ("torchrun", 2, "rank", 0, "SIGTERM"),
    ("torchrun", 1, "launcher", 0, "SIGINT"),
]


def combo_id(combo: tuple) -> str:
    launcher, ranks, target, workers, name = combo
    return f"{launcher}-{ranks}rank-{target}-{workers}worker-{name}"


TARGETS = {"group": "process group", "launcher": "launcher", "rank": "one rank"}


def markdown() -> str:
    """docs/STOP_MATRIX.md."""
    lines = [
        "# Stopping a pretraining run: the matrix",
        "",
        "Every way a `salibi pretrain` job can be asked to stop, and what each must do: save the",
        "step every rank finished, say so in a message that names that checkpoint only after",
        "checking it on disk (every file's size and SHA-256 digest as its saver wrote them), and",
        "resume to the loss curve of an uninterrupted run. A stop that could not be saved is one",
        "`Error:` line naming the newest complete checkpoint, exit status 1.",
        "",
        "Checked by `tests/faults/test_stop_matrix.py` (one run per row: 25 chips, one step per",
        f"epoch, the signal once step 2 is logged, then `--resume` to step {STEPS} and the loss curve",
        "compared); this file is generated from the same list (`python tests/faults/stop_matrix.py",
        "> docs/STOP_MATRIX.md`). CI runs the rows marked **CI**: every value of every factor at least",
        "once, the defect's combination among them; `SALIBI_STOP_MATRIX=pairwise make test` runs the",
        "rows marked **pairwise** (every value of each factor beside every value of every other), and",
        "`SALIBI_STOP_MATRIX=full make test` runs them all.",
        "",
        "- launcher: `salibi` is `salibi pretrain --cpu-procs N` (the same launcher as `--gpus N`),",
        "  `torchrun` is `torchrun --standalone --nproc-per-node N -m salibi pretrain`;",
        "- sent to: the *process group* (a terminal's Ctrl-C, `kill -TERM -PGID`, SLURM), the",
        "  *launcher* alone, or *one rank* (the last one: not the one that saves). With salibi's",
        "  launcher and one rank, the launcher is the rank: one target. With two ranks, a signal to",
        "  the group is also sent again to each rank a moment later, as a launcher that forwards",
        "  signals does (a stop must count once).",
        "",
        "Under torchrun the ranks run in sessions of their own: a signal to the group reaches",
        "torchrun, which forwards it to each rank's group (the rank and its DataLoader workers);",
        "torchrun then exits with its own status after its ranks have saved.",
        "",
        f"{len(ALL)} combinations, {len(PAIRWISE)} pairwise, {len(CI_SUBSET)} in CI.",
        "",
        "| # | launcher | ranks | signal | sent to | DataLoader workers | runs in |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, combo in enumerate(ALL, 1):
        launcher, ranks, target, workers, name = combo
        ci = " ".join(name for name, subset in (("**CI**", CI_SUBSET), ("**pairwise**", PAIRWISE)) if combo in subset)
        lines.append(f"| {number} | {launcher} | {ranks} | {name} | {TARGETS[target]} | {workers} | {ci} |")
    lines += [
        "",
        "Kills (SIGKILL of the launcher, of one rank, at the worst moment of a write) and full disks:",
        "`tests/faults/test_pretrain_faults.py`, `test_kill_mid_write.py`, `test_full_disk.py`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown())
