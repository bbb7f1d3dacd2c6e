"""The schedule of one seed: what the apps do to each folder, what another tool does to S3, and
when sidecars are killed. A pure function of the seed (and the duration), so a failing seed
replays the same steps; how they interleave with the sidecars' work depends on timing.

Names come from a small fixed namespace so that places collide often (that is where conflicts
and races live); a step that does not apply when it runs (overwriting a file that is gone) does
the nearest thing that does (creates it) or nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FOLDERS = ("a", "b", "c")
DIRS = ("d0", "d1", "d2", "d0/e0")
FILE_DIRS = ("", *DIRS)
FILE_NAMES = ("f0.txt", "f1.txt", "f2.bin")
LINK_NAMES = ("l0",)
SIZES = (0, 1, 100, 4096, 70_000, 300_000)
MODES = (0o600, 0o644, 0o755)

FOLDER_OPS = {
    "write": 14,
    "rewrite_same_size": 5,
    "append_open": 4,
    "truncate": 2,
    "editor_save": 5,
    "rename": 4,
    "rename_tree": 2,
    "move_out": 2,
    "move_in": 2,
    "delete": 5,
    "delete_tree": 1,
    "chmod": 3,
    "touch": 2,
    "mkdir": 2,
    "rmdir": 2,
    "symlink": 2,
}
S3_OPS = {"put": 5, "delete": 2, "copy_metadata": 2, "move": 2, "move_prefix": 1}


@dataclass(frozen=True)
class Step:
    at: float  # seconds from the start of the schedule
    place: str  # a folder's name, "s3", or "crash"
    op: str
    args: tuple[str, ...] = ()
    number: int = 0  # the step's index: part of every content written, so contents are unique

    def describe(self) -> str:
        return f"#{self.number} {self.at:6.2f}s {self.place}: {self.op} {' '.join(self.args)}"


def _file(rng: random.Random) -> str:
    directory = rng.choice(FILE_DIRS)
    name = rng.choice(FILE_NAMES)
    return f"{directory}/{name}" if directory else name


def _folder_step(rng: random.Random, op: str) -> tuple[str, ...]:
    if op in ("write", "editor_save", "move_in"):
        return (_file(rng), str(rng.choice(SIZES)))
    if op in ("rewrite_same_size", "truncate", "delete", "touch"):
        return (_file(rng),)
    if op == "append_open":
        return (_file(rng), f"{rng.uniform(0.2, 3.0):.2f}")  # how long it is held open
    if op == "rename":
        return (_file(rng), _file(rng))
    if op == "rename_tree":
        return (rng.choice(DIRS), rng.choice(DIRS))
    if op == "move_out":
        return (rng.choice((*DIRS, _file(rng))),)
    if op in ("delete_tree", "mkdir", "rmdir"):
        return (rng.choice(DIRS),)
    if op == "chmod":
        return (_file(rng), oct(rng.choice(MODES)))
    if op == "symlink":
        directory = rng.choice(FILE_DIRS)
        name = rng.choice(LINK_NAMES)
        # Sometimes pointing out of the folder: the link is synced, never followed.
        target = rng.choice(("f0.txt", "../outside", "missing", "../" * 4 + "etc/passwd"))
        return (f"{directory}/{name}" if directory else name, target)
    raise ValueError(op)


def _s3_step(rng: random.Random, op: str) -> tuple[str, ...]:
    if op == "put":
        return (_file(rng), str(rng.choice(SIZES)), rng.choice(("meta", "bare")))
    if op == "delete":
        return (_file(rng),)
    if op == "move":
        return (_file(rng), _file(rng))
    if op == "move_prefix":
        return (rng.choice(DIRS), rng.choice(DIRS))
    return (_file(rng), oct(rng.choice(MODES)))


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make_plan(
    seed: int, duration: float, rate: float = 8.0, crash_every: float = 4.0
) -> list[Step]:
    """About `rate` steps a second over `duration` seconds, a quarter of them on S3, and a
    crash (kill -9, or SIGTERM, then a restart) about every `crash_every` seconds."""
    rng = random.Random(seed)
    steps: list[tuple[float, str, str, tuple[str, ...]]] = []
    for _ in range(max(1, round(duration * rate))):
        at = rng.uniform(0, duration)
        if rng.random() < 0.25:
            op = _pick(rng, S3_OPS)
            steps.append((at, "s3", op, _s3_step(rng, op)))
        else:
            op = _pick(rng, FOLDER_OPS)
            steps.append((at, rng.choice(FOLDERS), op, _folder_step(rng, op)))
    for _ in range(max(1, round(duration / crash_every))):
        at = rng.uniform(0, duration * 0.8)
        how = rng.choice(("kill", "kill", "term"))
        steps.append((at, "crash", how, (rng.choice(FOLDERS), f"{rng.uniform(0, 2):.2f}")))
    steps.sort(key=lambda step: step[0])
    return [Step(at, place, op, args, n) for n, (at, place, op, args) in enumerate(steps)]
