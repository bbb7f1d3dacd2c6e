"""The non-root lane's fixtures: the shared volume (skipped, with the reason, where users
cannot be switched) and the sidecars started on it (support/users.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.users import NonRootSidecar, shared_volume, why_not_usable


@pytest.fixture
def volume() -> Iterator[Path]:
    """A shared folder both users can reach (support.users.shared_volume)."""
    reason = why_not_usable()
    if reason is not None:
        pytest.skip(reason)
    shared = shared_volume()
    try:
        yield shared
    finally:
        shutil.rmtree(shared.parent, ignore_errors=True)


@pytest.fixture
def nonroot(bucket: Bucket, volume: Path, tmp_path: Path) -> Iterator[list[NonRootSidecar]]:
    started: list[NonRootSidecar] = []
    yield started
    for sidecar in started:
        sidecar.kill()
