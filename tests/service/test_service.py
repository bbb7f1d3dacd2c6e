"""The sidecar as a service: /metrics, /healthz, /readyz, /startupz, the healthcheck subcommand, the
supervisor that exits when syncing stops, graceful shutdown and configuration errors. Real
processes, real endpoints on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.bucket import Bucket
from support.local_http import free_port
from support.local_http import http_get as get
from support.s3_server import REGION
from support.sidecars import SCRIPT, SidecarProcess
from support.waiting import eventually, in_thread

from sidecar.service.endpoints import HealthServer
from sidecar.service.healthcheck import target_host, url_for
from sidecar.service.service import Service
from sidecar.settings.config import VARIABLES, load_settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def sidecar_env(bucket: Bucket, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        **bucket.server.env(),
        "SYNC_DIR": str(tmp_path / "data"),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": bucket.server.endpoint_pattern,
        "SYNC_REGION": REGION,
        "SYNC_POLL_INTERVAL": "0.5",
        "SYNC_HTTP_PORT": str(free_port()),
        "SYNC_LOG_FORMAT": "json",
    }


async def ready(port: int, process: SidecarProcess) -> None:
    async def check() -> bool:
        assert process.process.poll() is None, process.text()
        try:
            status, _ = await get(port, "/readyz")
        except aiohttp.ClientError:
            return False
        return status == 200

    await eventually(check, timeout=30, interval=0.1, what="/readyz 200")


def healthcheck(port: int, *args: str, **env: str) -> int:
    assert SCRIPT is not None
    return subprocess.run(
        [SCRIPT, "healthcheck", *args],
        env={**os.environ, "SYNC_HTTP_PORT": str(port), **env},
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


async def test_metrics_move_by_the_right_amounts(run_sidecar, sidecar_env, bucket: Bucket) -> None:
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], sidecar_env)
    await ready(port, process)
    status, before_text = await get(port, "/metrics")
    assert status == 200
    before = samples(before_text)
    assert value(before, "s3sync_initial_restore_done") == 1
    assert value(before, "s3sync_uploads_total", result="ok") == 0

    folder = Path(sidecar_env["SYNC_DIR"])
    sizes = [10, 2000, 30000]
    for index, size in enumerate(sizes):
        (folder / f"m{index}.bin").write_bytes(b"z" * size)
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 3))
    (folder / "m0.bin").unlink()
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 2))
    await in_thread(bucket.put, "remote.txt", b"12345")
    await eventually(lambda: (folder / "remote.txt").exists())

    async def counted() -> None:
        after = samples((await get(port, "/metrics"))[1])
        assert value(after, "s3sync_uploads_total", result="ok") == 3
        assert value(after, "s3sync_uploaded_bytes_total") == sum(sizes)
        assert value(after, "s3sync_s3_requests_total", operation="PutObject", status="200") == 3
        assert value(after, "s3sync_s3_request_duration_seconds_count", operation="PutObject") == 3
        assert value(after, "s3sync_deletes_total", side="remote", result="ok") == 1
        assert value(after, "s3sync_downloads_total", result="ok") == 1
        assert value(after, "s3sync_downloaded_bytes_total") == 5
        assert value(after, "s3sync_files_tracked") == 3  # m1, m2, remote.txt
        assert value(after, "s3sync_queue_depth", direction="upload") == 0
        assert value(after, "s3sync_oldest_pending_change_age_seconds") == 0
        assert value(after, "s3sync_inotify_watches") == 1
        assert value(after, "s3sync_last_successful_poll_timestamp_seconds") > 1.7e9
        assert value(after, "s3sync_poll_duration_seconds_count") >= 2

    await eventually(counted, what="metrics after known operations")
    families = list(text_string_to_metric_families((await get(port, "/metrics"))[1]))
    for family in families:
        assert family.name.startswith(("s3sync_", "process_")), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
    status, body = await get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0


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
    await ready(port, process)
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
    await ready(port, process)
    assert await in_thread(healthcheck, port) == 0
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0


def test_healthcheck_without_a_sidecar() -> None:
    assert healthcheck(free_port()) == 1


async def test_sigterm_with_a_burst_in_flight(run_sidecar, sidecar_env, bucket: Bucket) -> None:
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], sidecar_env)
    await ready(port, process)
    folder = Path(sidecar_env["SYNC_DIR"])
    for index in range(200):
        (folder / f"late-{index:03d}").write_bytes(str(index).encode())
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0, process.text()
    keys = await in_thread(bucket.list_keys)
    assert keys == [f"late-{index:03d}" for index in range(200)]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("SYNC_DIR", ""),
        ("SYNC_BUCKET", "no/slashes"),
        ("SYNC_REGION", " "),
        ("SYNC_ENDPOINT", "ftp://{}.example/"),
        ("SYNC_PREFIX", "/absolute/"),
        ("SYNC_POLL_INTERVAL", "0"),
        ("SYNC_EXCLUDE_LOCAL", "(["),
        ("SYNC_EXCLUDE_REMOTE", "*bad"),
        ("SYNC_UPLOAD_ON_CREATE", "[z-a]"),
        ("SYNC_UPLOAD_CONCURRENCY", "many"),
        ("SYNC_DOWNLOAD_CONCURRENCY", "1000"),
        ("SYNC_LOG_LEVEL", "LOUD"),
        ("SYNC_LOG_FORMAT", "xml"),
        ("SYNC_TLS_VERIFY", "maybe"),
        ("SYNC_CA_BUNDLE", "/no/such/ca.pem"),
        ("SYNC_MULTIPART_THRESHOLD", "1MiB"),
        ("SYNC_MULTIPART_CHUNKSIZE", "6TB"),
        ("SYNC_MAX_DELETE_PERCENT", "150"),
        ("SYNC_SHUTDOWN_TIMEOUT", "-1"),
        ("SYNC_HTTP_PORT", "70000"),
        ("SYNC_HTTP_HOST", "not a host"),
        ("SYNC_STALL_TIMEOUT", "1"),
        ("SYNC_OPEN_FILE_TIMEOUT", "never"),
        ("SYNC_MODE", "sideways"),
        ("SYNC_QUEUE_URL", "my-queue"),
    ],
)
async def test_every_bad_setting_exits_2(run_sidecar, sidecar_env, name: str, bad: str) -> None:
    process = run_sidecar([], {**sidecar_env, name: bad})
    assert await process.wait() == 2
    text = process.text()
    assert name in text
    expected = next(v.expected for v in VARIABLES if v.name == name)
    if name not in ("SYNC_DIR", "SYNC_REGION"):  # empty values read as unset: "required"
        assert expected in text, text
    assert not Path(sidecar_env["SYNC_DIR"]).exists(), "nothing touched"


def test_every_setting_is_in_the_bad_setting_table() -> None:
    tested = {name for name, _ in test_every_bad_setting_exits_2.pytestmark[0].args[1]}
    assert tested == {v.name for v in VARIABLES}


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
