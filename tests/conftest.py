"""Fixtures: a real moto S3 server on 127.0.0.1 that verifies SigV4 signatures, a fresh bucket
per test, and helpers to wait on conditions with a deadline (never bare sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.config import Config

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MotoServer:
    url: str
    port: int
    access_key_id: str
    secret_access_key: str
    log: Path

    @property
    def endpoint_pattern(self) -> str:
        return f"{self.url}/{{}}/"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def client(self, service: str = "s3", **credentials: str) -> Any:
        session = botocore.session.get_session()
        return session.create_client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=credentials.get("key", self.access_key_id),
            aws_secret_access_key=credentials.get("secret", self.secret_access_key),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start in time")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_process(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server


MOTO_SERVER = Path(__file__).with_name("moto_server.py")  # moto's, honouring copy If-Match


@contextlib.contextmanager
def moto_process(log: Path) -> Iterator[MotoServer]:
    """moto's server with authentication on: the first few requests (creating an IAM user and
    its key) are free, every request after that must carry a valid SigV4 signature."""
    port = free_port()
    env = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": "3",
        "AWS_ACCESS_KEY_ID": "bootstrap",
        "AWS_SECRET_ACCESS_KEY": "bootstrap",
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, time.monotonic() + 30)
        url = f"http://127.0.0.1:{port}"
        bootstrap = MotoServer(url, port, "bootstrap", "bootstrap", log)
        iam = bootstrap.client("iam")
        iam.create_user(UserName="sidecar")
        iam.put_user_policy(
            UserName="sidecar",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="sidecar")["AccessKey"]
        yield MotoServer(url, port, key["AccessKeyId"], key["SecretAccessKey"], log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Bucket:
    name: str
    client: Any
    server: MotoServer

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=key))

    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        response = self.client.put_object(
            Bucket=self.name, Key=key, Body=body, Metadata=metadata or {}
        )
        return str(response["ETag"]).strip('"')

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def set_metadata(self, key: str, metadata: dict[str, str]) -> None:
        """Another client's chmod or touch: the object copied onto itself, new metadata."""
        self.client.copy_object(
            Bucket=self.name,
            Key=key,
            CopySource={"Bucket": self.name, "Key": key},
            MetadataDirective="REPLACE",
            Metadata=metadata,
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except self.client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    name = f"t-{uuid.uuid4().hex[:16]}"
    client = moto_server.client()
    client.create_bucket(Bucket=name)
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return Bucket(name, client, moto_server)


async def eventually(
    check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `check` (sync or async; a truthy result, or None without an exception, ends it)
    until a deadline. The last failure is re-raised, so a timeout says what was wrong."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result is None or result:
                return result
            failure: BaseException = AssertionError(f"not yet: {what or check}")
        except Exception as error:
            failure = error
        if time.monotonic() > deadline:
            raise failure
        await asyncio.sleep(interval)


async def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body)."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=5)
        ) as response,
    ):
        return response.status, await response.text()


def metric(syncer: Any, name: str, **labels: str) -> float:
    """The sum of the samples called `name` (e.g. `s3sync_uploads_total`) with these labels."""
    total = 0.0
    for family in syncer.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def requests(syncer: Any, operation: str) -> int:
    """How many S3 requests of this operation (PutObject, GetObject...) the syncer made."""
    return int(metric(syncer, "s3sync_s3_requests_total", operation=operation))


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run blocking test I/O (botocore calls) without freezing the syncer in the same loop."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")


@contextlib.contextmanager
def small_inotify_queue(size: int) -> Iterator[None]:
    """inotify copies fs.inotify.max_queued_events into each instance when it is made: lower it
    for one start, so a test can overflow that instance's queue deterministically."""
    if os.geteuid() != 0:
        pytest.skip("lowering fs.inotify.max_queued_events needs root")
    old = MAX_QUEUED_EVENTS.read_text()
    MAX_QUEUED_EVENTS.write_text(str(size))
    try:
        yield
    finally:
        MAX_QUEUED_EVENTS.write_text(old)


@pytest.fixture
async def syncer_factory(
    tmp_path: Path, bucket: Bucket
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start `Syncer`s on folders under tmp_path against the test bucket; stopped at the end."""
    from sidecar import Syncer

    started: list[Any] = []

    async def start(
        directory: Path | None = None,
        prefix: str = "",
        endpoint: str | None = None,
        **kwargs: Any,
    ) -> Any:
        folder = directory if directory is not None else tmp_path / "folder"
        folder.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("download_interval", 0.3)
        syncer = Syncer(
            str(folder),
            bucket.name,
            endpoint or bucket.server.endpoint_pattern,
            REGION,
            prefix=prefix,
            **kwargs,
        )
        started.append(syncer)
        await syncer.start()
        syncer.folder = folder  # type: ignore[attr-defined]
        return syncer

    yield start
    for syncer in started:
        await syncer.stop(timeout=30)


@pytest.fixture
async def proxy(moto_server: MotoServer) -> AsyncIterator[Any]:
    """A fault-injecting HTTP proxy in front of moto (see faultproxy.py)."""
    from faultproxy import FaultProxy

    server = FaultProxy(moto_server.url)
    await server.start()
    yield server
    await server.close()


SCRIPT = shutil.which("s3sync-sidecar", path=str(Path(sys.executable).parent))


class SidecarProcess:
    """A running `s3sync-sidecar` command with its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._output = open(log, "wb")  # noqa: SIM115 - closed in wait() or kill()
        assert SCRIPT is not None, "the console script is installed"
        self.process = subprocess.Popen(
            [SCRIPT, *args], env=env, stdout=self._output, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self) -> None:
        """Until the initial restore is done (its log line), failing if the process exits."""
        await eventually(
            lambda: "syncing" in self.text() or self.process.poll() is not None,
            timeout=30,
            what="the initial restore",
        )
        assert self.process.poll() is None, self.text()

    async def wait(self, timeout: float = 60) -> int:
        code = await in_thread(self.process.wait, timeout)
        self._output.close()
        return int(code)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._output.close()


@pytest.fixture
def run_sidecar(tmp_path: Path) -> Iterator[Callable[..., SidecarProcess]]:
    """Start `s3sync-sidecar` commands (args, env); each is killed at the end if still running.
    The environment starts from PATH, text logs and a free HTTP port; `env` overrides."""
    running: list[SidecarProcess] = []

    def start(args: list[str], env: dict[str, str]) -> SidecarProcess:
        full_env = {
            "PATH": os.environ["PATH"],
            "SYNC_LOG_FORMAT": "text",
            "SYNC_HTTP_PORT": str(free_port()),
            **env,
        }
        sidecar = SidecarProcess(args, full_env, tmp_path / f"sidecar-{len(running)}.log")
        running.append(sidecar)
        return sidecar

    yield start
    for sidecar in running:
        sidecar.kill()
