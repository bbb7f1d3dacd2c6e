"""Nothing acts through a symlinked directory below the synced folder (issue 8, item 7).

A directory inside the folder that is a symlink to somewhere outside, planted before the start
or swapped in while running with renameat2(RENAME_EXCHANGE), must not let any operation read,
write, copy, chmod or delete a file outside: an upload never sends outside content to S3, a
download or a conflict never writes outside, a remote delete or chmod never reaches outside.
Real symlinks, real renameat2, real inotify, a real S3 server; nothing is mocked.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from sidecar.safefs import Tree, UnsafeParentError

# -- the tree itself: every operation refuses a symlinked parent --------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Any:
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"outside")
    os.symlink(outside, root / "link")
    (root / "a").mkdir()
    os.symlink(outside, root / "a" / "link")
    (root / "file").write_bytes(b"a file")
    mounted = tmp_path / "mounted"
    os.symlink(root, mounted)  # the root itself may be a symlink: that one is followed
    opened = Tree(str(mounted), "work")
    opened.start()
    yield opened
    opened.close()
    assert (outside / "f").read_bytes() == b"outside"
    assert sorted(p.name for p in outside.iterdir()) == ["f"]


@pytest.mark.parametrize("rel", ["link/f", "a/link/f", "link/new/f", "file/f"])
def test_every_tree_operation_refuses_a_symlinked_or_file_parent(tree: Tree, rel: str) -> None:
    assert tree.lstat_or_none(rel) is None
    for action in (
        lambda: tree.open(rel, os.O_RDONLY),
        lambda: tree.readlink(rel),
        lambda: tree.ensure_parents(rel),
    ):
        with pytest.raises(UnsafeParentError):
            action()
    with pytest.raises(UnsafeParentError), tree.parent(rel):
        pass


def test_tree_follows_the_root_and_works_below_it(tree: Tree, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert tree.ensure_parents("x/y/z") == ["x", "x/y"]
    assert (root / "x" / "y").is_dir()
    fd = tree.open("x/y/z", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"hello")
    os.close(fd)
    entry = tree.lstat_or_none("x/y/z")
    assert entry is not None and entry.st_size == 5
    assert tree.readlink("link") == os.fsencode(tmp_path / "outside")
    with pytest.raises(OSError) as raised:
        tree.open("link", os.O_RDONLY)  # the last component is never followed either
    assert raised.value.errno == errno.ELOOP
