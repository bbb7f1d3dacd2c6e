"""Health: /healthz, /readyz and /startupz, the `healthcheck` subcommand that asks them and where
they listen (SYNC_HTTP_HOST), and the supervisor that ends the process when syncing stops (a
dead internal task, a stalled upload queue). Real processes, real endpoints on 127.0.0.1.
(/metrics: test_observability.py; stopping: test_shutdown.py; bad settings: test_cli.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.local_http import free_port
from support.local_http import http_get as get
from support.sidecars import SCRIPT
from support.waiting import eventually, in_thread

from sidecar.service.endpoints import HealthServer
from sidecar.service.healthcheck import target_host, url_for
from sidecar.service.service import Service
from sidecar.settings.config import load_settings


def healthcheck(port: int, *args: str, **env: str) -> int:
    assert SCRIPT is not None
    return subprocess.run(
        [SCRIPT, "healthcheck", *args],
        env={**os.environ, "SYNC_HTTP_PORT": str(port), **env},
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


async def test_readiness_follows_restore_and_s3(
    run_sidecar, sidecar_env, bucket: Bucket, proxy
) -> None:
    for index in range(30):
        await in_thread(bucket.put, f"restore/{index:02d}.txt", b"r")
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.3  # a slow restore, so that it can be watched
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar(
        [],
        {**sidecar_env, "SYNC_ENDPOINT": proxy.endpoint_pattern, "SYNC_DOWNLOAD_CONCURRENCY": "2"},
    )

    async def restoring() -> None:
        status, body = await get(port, "/readyz")
        assert status == 503
        assert json.loads(body)["failing"] == ["restore"]
        assert healthcheck(port) == 1

        assert healthcheck(port, "--ready") == 1

    await eventually(restoring, timeout=30, what="/readyz 503 during the restore")
    proxy.faults.delay = 0
    await process.answering(port, "/readyz")
    assert len(list((Path(sidecar_env["SYNC_DIR"]) / "restore").iterdir())) == 30
    assert await in_thread(healthcheck, port) == 0

    proxy.faults.down = True

    async def unreachable() -> None:
        status, body = await get(port, "/readyz")
        assert status == 503
        assert "poll" in json.loads(body)["failing"]

    await eventually(unreachable, timeout=30, what="/readyz 503 with S3 unreachable")
    assert await in_thread(healthcheck, port) == 0, "an outage must not get the task replaced"
    assert await in_thread(healthcheck, port, "--ready") == 1
    proxy.faults.down = False
    await process.answering(port, "/readyz")
    assert await in_thread(healthcheck, port) == 0
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0


def test_healthcheck_without_a_sidecar() -> None:
    assert healthcheck(free_port()) == 1


async def service_ready(service: Service, port: int) -> asyncio.Task[int]:
    task = asyncio.create_task(service.run())
    await eventually(lambda: service.syncer.status().restore_done, timeout=30)
    status, _ = await get(port, "/readyz")
    assert status == 200
    return task


def in_process_service(sidecar_env: dict[str, str], **overrides: str) -> Service:
    """The service the command would run with this environment, in this process."""
    env = {**sidecar_env, **overrides}
    return Service(load_settings(env), env)


async def test_a_dead_internal_task_ends_the_process(sidecar_env, caplog) -> None:
    service = in_process_service(sidecar_env)
    task = await service_ready(service, service.settings.http_port)
    poller = next(t for t in service.syncer.internal_tasks if t.get_name() == "poller")
    poller.cancel()
    assert await asyncio.wait_for(task, 10) == 1
    assert "internal task poller stopped" in caplog.text


async def test_healthz_names_a_dead_task(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    port = free_port()
    server = HealthServer(syncer, "127.0.0.1", port)
    await server.start()
    try:
        status, body = await get(port, "/healthz")
        assert status == 200 and json.loads(body) == {
            "status": "ok",
            "problems": [],
            "degraded": [],
        }
        next(t for t in syncer.internal_tasks if t.get_name() == "poller").cancel()

        async def unhealthy() -> None:
            status, body = await get(port, "/healthz")
            assert status == 503
            assert json.loads(body)["problems"] == ["internal task poller stopped"]

        await eventually(unhealthy)
    finally:
        await server.close()


async def test_a_stalled_upload_queue_ends_the_process(sidecar_env, proxy, caplog) -> None:
    service = in_process_service(
        sidecar_env, SYNC_STALL_TIMEOUT="10", SYNC_ENDPOINT=proxy.endpoint_pattern
    )
    task = await service_ready(service, service.settings.http_port)
    proxy.faults.methods = {"PUT"}
    proxy.faults.hang = True  # uploads never answered, while listings still are
    (Path(service.settings.directory) / "never.txt").write_bytes(b"x")
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(task, 60) == 1
    assert asyncio.get_running_loop().time() - started >= 10
    assert "upload queue made no progress" in caplog.text


async def test_http_host_binds_the_endpoints_to_loopback_only(sidecar_env) -> None:
    service = in_process_service(sidecar_env, SYNC_HTTP_HOST="127.0.0.1")
    port = service.settings.http_port
    task = await service_ready(service, port)
    try:
        assert service.http.addresses == [("127.0.0.1", port)]
        env = {"SYNC_HTTP_HOST": "127.0.0.1"}
        assert await in_thread(lambda: healthcheck(port, **env)) == 0
    finally:
        service.request_stop(signal.SIGTERM)
        assert await asyncio.wait_for(task, 30) == 0


async def test_http_host_defaults_to_every_interface(sidecar_env) -> None:
    service = in_process_service(sidecar_env)
    port = service.settings.http_port
    task = await service_ready(service, port)
    try:
        assert service.http.addresses == [("0.0.0.0", port)]
        assert await in_thread(healthcheck, port) == 0
    finally:
        service.request_stop(signal.SIGTERM)
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.parametrize(
    ("bound", "asked"),
    [
        ("", "http://127.0.0.1:9464/p"),
        ("0.0.0.0", "http://127.0.0.1:9464/p"),
        ("127.0.0.1", "http://127.0.0.1:9464/p"),
        ("::", "http://[::1]:9464/p"),
        ("::1", "http://[::1]:9464/p"),
        ("10.0.3.7", "http://10.0.3.7:9464/p"),
        ("fd00::7", "http://[fd00::7]:9464/p"),
        ("localhost", "http://localhost:9464/p"),
    ],
)
def test_healthcheck_asks_where_the_sidecar_listens(bound: str, asked: str) -> None:
    assert url_for(target_host(bound), 9464, "/p") == asked


async def test_ready_once_then_alive_through_an_s3_outage(
    sidecar_env, bucket: Bucket, proxy
) -> None:
    """The container health check (`/startupz`, `s3sync-sidecar healthcheck`) holds the app back
    until the restore is done, then does not fail for an outage: ECS would replace the task,
    and the changes written meanwhile on its volume would be lost."""
    for index in range(10):
        await in_thread(bucket.put, f"r/{index}.txt", b"r")
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.3  # a slow restore, so that it can be watched
    service = in_process_service(
        sidecar_env, SYNC_ENDPOINT=proxy.endpoint_pattern, SYNC_DOWNLOAD_CONCURRENCY="1"
    )
    port = service.settings.http_port
    task = asyncio.create_task(service.run())
    try:

        async def restoring() -> None:
            assert not service.syncer.status().restore_done
            status, body = await get(port, "/startupz")
            assert (status, json.loads(body)["status"]) == (503, "starting")
            assert await in_thread(healthcheck, port) == 1
            assert not service.syncer.status().restore_done, "still restoring afterwards"

        await eventually(restoring, timeout=30, what="/startupz 503 during the restore")
        proxy.faults.delay = 0
        await eventually(lambda: service.syncer.status().restore_done, timeout=30)
        assert (await get(port, "/startupz"))[0] == 200
        assert await in_thread(healthcheck, port) == 0

        proxy.faults.methods = set()
        proxy.faults.down = True  # S3 unreachable: listings and uploads fail from now on
        (Path(service.settings.directory) / "written-during-the-outage.txt").write_bytes(b"x")

        async def outage() -> None:
            status, body = await get(port, "/readyz")
            assert status == 503 and "poll" in json.loads(body)["failing"]

        await eventually(outage, timeout=30, what="/readyz 503 with S3 unreachable")
        status, body = await get(port, "/startupz")
        assert status == 200, body
        assert json.loads(body) == {
            "status": "ok",
            "restored": True,
            "problems": [],
            "degraded": [],
        }
        assert await in_thread(healthcheck, port) == 0
        assert await in_thread(healthcheck, port, "--ready") == 1
        assert not task.done(), "the outage does not end the process either"

        proxy.faults.down = False
        await eventually(
            lambda: in_thread(bucket.exists, "written-during-the-outage.txt"), timeout=60
        )
    finally:
        service.request_stop(signal.SIGTERM)
        assert await asyncio.wait_for(task, 30) == 0


async def test_startupz_fails_when_the_sidecar_stops_syncing(syncer_factory) -> None:
    syncer = await syncer_factory()
    port = free_port()
    server = HealthServer(syncer, "127.0.0.1", port)
    await server.start()
    try:
        assert (await get(port, "/startupz"))[0] == 200
        next(t for t in syncer.internal_tasks if t.get_name() == "poller").cancel()

        async def unhealthy() -> None:
            status, body = await get(port, "/startupz")
            assert status == 503
            assert json.loads(body) == {
                "status": "unhealthy",
                "restored": True,
                "problems": ["internal task poller stopped"],
                "degraded": [],
            }

        await eventually(unhealthy)
    finally:
        await server.close()
