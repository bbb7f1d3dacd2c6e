"""Fixtures of the service's tests (the command, its settings, its endpoints), thin: the
environments are built in `support.environments`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.environments import minimal_environment, sidecar_environment
from support.local_http import free_port


@pytest.fixture
def sidecar_env(bucket: Bucket, tmp_path: Path) -> dict[str, str]:
    """A sidecar on `tmp_path/data` against the test bucket: JSON logs, a poll every 0.5 s and
    an HTTP port of its own."""
    return {
        "PATH": os.environ["PATH"],
        **sidecar_environment(
            bucket,
            tmp_path / "data",
            SYNC_POLL_INTERVAL="0.5",
            SYNC_HTTP_PORT=str(free_port()),
            SYNC_LOG_FORMAT="json",
        ),
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The least `load_settings` accepts, on `tmp_path`, with no server behind it."""
    return minimal_environment(tmp_path)
