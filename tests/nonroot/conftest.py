"""The non-root lane's fixtures: a shared folder both users reach, and the sidecars started on
it (killed at the end). See tests/support/users.py."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.users import PYTHON, SETPRIV, SHARED_GID, SIDECAR_UID, NonRootSidecar


@pytest.fixture
def volume() -> Iterator[Path]:
    """A shared folder both users can reach: its parents are traversable, it is owned by the
    sidecar's user and the shared group, group-writable with the setgid bit."""
    if os.geteuid() != 0 or SETPRIV is None:
        pytest.skip("switching users needs root and setpriv (util-linux)")
    if PYTHON is None:
        pytest.skip(
            f"no Python {sys.version_info.major}.{sys.version_info.minor} that uid "
            f"{SIDECAR_UID} may run (this one is under a private directory)"
        )
    base = Path(tempfile.mkdtemp(prefix="s3sync-nonroot-"))
    os.chmod(base, 0o755)
    shared = base / "shared"
    shared.mkdir()
    os.chown(shared, SIDECAR_UID, SHARED_GID)
    os.chmod(shared, 0o2775)
    try:
        yield shared
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def nonroot(bucket: Bucket, volume: Path, tmp_path: Path) -> Iterator[list[NonRootSidecar]]:
    started: list[NonRootSidecar] = []
    yield started
    for sidecar in started:
        sidecar.kill()
