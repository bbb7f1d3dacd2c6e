"""Fixtures, thin: the helpers they wrap are in `support` (tests/support/)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.faultproxy import FaultProxy
from support.s3_server import MotoServer, moto_process
from support.sidecars import SidecarProcess, Sidecars
from support.syncers import Syncers

# Network tests reach 127.0.0.1 only: a Syncer left without credentials must not ask EC2's
# instance metadata (169.254.169.254). Tests of it name their own endpoint.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server with SigV4 on, one for the session."""
    with moto_process(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket, and moto's keys in the environment (no session token)."""
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return Bucket.create(moto_server)


@pytest.fixture
async def syncer_factory(
    tmp_path: Path, bucket: Bucket
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start `Syncer`s on folders under tmp_path against the test bucket; stopped at the end."""
    syncers = Syncers(tmp_path / "folder", bucket)
    yield syncers.start
    await syncers.stop_all()


@pytest.fixture
async def proxy(moto_server: MotoServer) -> AsyncIterator[FaultProxy]:
    """A fault-injecting HTTP proxy in front of moto (support/faultproxy.py)."""
    server = FaultProxy(moto_server.url)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def run_sidecar(tmp_path: Path) -> Iterator[Callable[..., SidecarProcess]]:
    """Start `s3sync-sidecar` commands (args, env, optionally a `prefix` that execs them); each
    is killed at the end if still running.
    The environment starts from PATH, text logs and a free HTTP port; `env` overrides."""
    sidecars = Sidecars(tmp_path)
    yield sidecars.start
    sidecars.kill_all()
