"""Fixtures, thin: the helpers they wrap are in `support` (tests/support/)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import rgw
from support.bucket import Bucket
from support.faultproxy import FaultProxy
from support.s3_server import S3Server, moto_process
from support.sidecars import SidecarProcess, Sidecars
from support.syncers import Syncers

# Network tests reach 127.0.0.1 only: a Syncer left without credentials must not ask EC2's
# instance metadata (169.254.169.254). Tests of it name their own endpoint.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server with SigV4 on, one for the session."""
    with moto_process(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def rgw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Ceph's RADOS Gateway on a one-node cluster of its own (support/rgw.py), one for the
    session, started by the first test that needs it (10-17 s). Without Ceph's packages the
    tests on it are skipped, saying how to install them; under CI=true they fail instead."""
    absent = rgw.missing()
    if absent:
        reason = f"Ceph RGW is not installed (no {', '.join(absent)}): {rgw.INSTALL}; .ci/run does"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: under CI=true nothing is skipped")
        pytest.skip(reason)
    with rgw.rgw_process(tmp_path_factory.mktemp("rgw")) as server:
        yield server


@pytest.fixture
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """The S3 server of a test: moto, or for a test marked `any_s3`, moto and then Ceph RGW
    (`pytest_generate_tests`: the test runs once on each, `[moto]` and `[rgw]`)."""
    name = getattr(request, "param", "moto")
    server: S3Server = request.getfixturevalue(f"{name}_server")
    return server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("any_s3") and "s3_server" in metafunc.fixturenames:
        metafunc.parametrize("s3_server", ["moto", "rgw"], indirect=True)


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh bucket, and the server's keys in the environment (no session token)."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return Bucket.create(s3_server)


@pytest.fixture
async def syncer_factory(
    tmp_path: Path, bucket: Bucket
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start `Syncer`s on folders under tmp_path against the test bucket; stopped at the end."""
    syncers = Syncers(tmp_path / "folder", bucket)
    yield syncers.start
    await syncers.stop_all()


@pytest.fixture
async def proxy(s3_server: S3Server) -> AsyncIterator[FaultProxy]:
    """A fault-injecting HTTP proxy in front of the test's S3 server (support/faultproxy.py)."""
    server = FaultProxy(s3_server.url)
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
