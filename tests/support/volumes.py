"""A small volume of its own for a test (a tmpfs this process mounts), and filling it to the last
byte: a full disk, for real. Needs root (or the right to mount): `small_volume` skips the test
with the reason otherwise."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_volume(where: Path, size: str = "2m", options: str = "mode=0755") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` for the test's length (`options`: its root's mode
    and owner, as mount(8) takes them)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},{options}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small volume here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(volume: Path) -> Path:
    """Fill `volume` to the last byte: the file written, to remove when space is wanted."""
    filler = volume / f".filler-{uuid.uuid4().hex}"
    with open(filler, "wb") as file:
        block = b"\0" * 65536
        try:
            while True:
                file.write(block)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(volume / ".filler-last", "wb") as file:
        for _ in range(65536):  # the blocks a 64 KiB write could not have
            file.write(b"\0")
            file.flush()
    return filler


def free(volume: Path, filler: Path) -> None:
    """Undo `fill`."""
    filler.unlink()
    (volume / ".filler-last").unlink(missing_ok=True)
