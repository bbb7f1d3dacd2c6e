"""Synced folders as the tests look at them and set them up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sidecar.local.conflicts import is_conflict
from sidecar.local.safefs import Tree
from support.bucket import Bucket
from support.waiting import eventually, in_thread


def read(path: Path) -> bytes | None:
    """The bytes of the file at `path`, or None if there is none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


async def synced_folder(
    syncer_factory: Callable[..., Awaitable[Any]], bucket: Bucket, tmp_path: Path, count: int = 3
) -> Path:
    """A folder with `count` files synced (`f00.txt`: `v1 0`, ...), then the sidecar stopped
    (the state saved): the folder a restart finds."""
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder)
    for index in range(count):
        (folder / f"f{index:02d}.txt").write_bytes(f"v1 {index}".encode())
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == count))
    assert await syncer.stop(timeout=30) == []
    return folder


def conflict_copies(folder: Path, keys: list[str]) -> list[str]:
    """The conflict copies anywhere in `folder`, then those among `keys`."""
    return [p.name for p in folder.rglob("*") if is_conflict(p.name)] + [
        k for k in keys if is_conflict(k)
    ]


def tree_at(root: Path, work: str = ".work") -> Tree:
    """The folder `root`, held open as the engine holds it (its working folder made)."""
    (root / work).mkdir(exist_ok=True)
    tree = Tree(str(root), work)
    tree.start()
    return tree


def parents_made(tree: Tree, rel: str) -> list[str]:
    """What a download does first: open the parent of `rel`, creating what is missing; the
    directories it made."""
    created: list[str] = []
    with tree.parent(rel, created):
        pass
    return created
