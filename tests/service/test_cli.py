"""The command line: the real console script, run as a subprocess against the moto server.
mobius3's arguments and the environment, settings refused before anything is touched (exit 2,
each setting once), start failures, --help and --version, credentials sources. (The settings
alone: test_settings.py and test_settings_table.py; stopping: test_shutdown.py.)"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.s3_server import REGION
from support.sidecars import SCRIPT
from support.waiting import eventually, in_thread

from sidecar.settings.config import VARIABLES


async def test_mobius3_command_line_and_sigterm_after_a_write(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    await in_thread(bucket.put, "team/existing.txt", b"restored")
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [
            str(folder),
            bucket.name,
            bucket.server.endpoint_pattern,
            REGION,
            "--prefix",
            "team/",
            "--exclude-local",
            r".*\.swp$",
            "--log-level",
            "INFO",
        ],
        bucket.server.env(),
    )
    await sidecar.ready()
    assert (folder / "existing.txt").read_bytes() == b"restored"
    assert "restored 1 objects" in sidecar.text()
    (folder / "ignored.swp").write_bytes(b"editor swap")
    (folder / "last-words.txt").write_bytes(b"written just before SIGTERM")
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
    assert await in_thread(bucket.get, "team/last-words.txt") == b"written just before SIGTERM"
    assert not await in_thread(bucket.exists, "team/ignored.swp")
    assert "every local change is in S3" in sidecar.text()


async def test_environment_configuration_and_sigint(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    folder = tmp_path / "env-data"
    sidecar = run_sidecar(
        [],
        {
            **bucket.server.env(),
            "SYNC_DIR": str(folder),
            "SYNC_BUCKET": bucket.name,
            "SYNC_ENDPOINT": bucket.server.endpoint_pattern,
            "AWS_REGION": REGION,
            "SYNC_POLL_INTERVAL": "0.5",
            "SYNC_LOG_FORMAT": "json",
        },
    )
    await eventually(lambda: folder.is_dir())
    await eventually(lambda: '"message": "restored' in sidecar.text(), timeout=30)
    (folder / "from-env.txt").write_bytes(b"env mode")
    await eventually(lambda: in_thread(lambda: bucket.get("from-env.txt") == b"env mode"))
    await in_thread(bucket.put, "from-s3.txt", b"polled")
    await eventually(lambda: (folder / "from-s3.txt").exists(), what="poll download")
    sidecar.process.send_signal(signal.SIGINT)
    assert await sidecar.wait() == 0, sidecar.text()


async def test_bad_settings_touch_nothing(run_sidecar, bucket: Bucket, tmp_path: Path) -> None:
    folder = tmp_path / "must-not-exist"
    sidecar = run_sidecar(
        [],
        {
            **bucket.server.env(),
            "SYNC_DIR": str(folder),
            "SYNC_BUCKET": bucket.name,
            "SYNC_ENDPOINT": "http://127.0.0.1:1/no-placeholder/",
            "SYNC_REGION": REGION,
            "SYNC_POLL_INTERVAL": "soon",
            "SYNC_UPLOAD_CONCURRENCY": "0",
            "SYNC_EXCLUDE_LOCAL": "([unclosed",
        },
    )
    assert await sidecar.wait() == 2
    text = sidecar.text()
    assert "SYNC_POLL_INTERVAL='soon': expected seconds, a number from 0.1 to 86400" in text
    assert "SYNC_UPLOAD_CONCURRENCY='0': expected an integer from 1 to 512" in text
    assert "SYNC_EXCLUDE_LOCAL='([unclosed': expected a Python regular expression" in text
    assert "SYNC_ENDPOINT" in text and "{}" in text
    assert not folder.exists(), "nothing touched"
    assert await in_thread(bucket.list_keys) == []
    assert bucket.server.env()["AWS_SECRET_ACCESS_KEY"] not in text


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
        ("SYNC_HTTP_MAX_CONNECTIONS", "4"),
        ("SYNC_HTTP_REQUEST_TIMEOUT", "0.5"),
        ("SYNC_STALL_TIMEOUT", "1"),
        ("SYNC_OPEN_FILE_TIMEOUT", "never"),
        ("SYNC_SQLITE", "on"),
        ("SYNC_SQLITE_FILES_ALONE", "(["),
        ("SYNC_SQLITE_QUIET", "0"),
        ("SYNC_SQLITE_INTERVAL", "soon"),
        ("SYNC_MODE", "sideways"),
        ("SYNC_QUEUE_URL", "my-queue"),
        ("SYNC_ROLE_ARN", "my-role"),
        ("SYNC_ROLE_EXTERNAL_ID", "x"),
        ("SYNC_ROLE_SESSION_NAME", "has space"),
        ("SYNC_SSE", "kms"),
        ("SYNC_SSE_KMS_KEY_ID", "my key"),
        ("SYNC_SSE_BUCKET_KEY", "enabled"),
        ("SYNC_STORAGE_CLASS", "GLACIER"),
        ("SYNC_ACL", "everyone"),
        ("SYNC_REQUEST_PAYER", "me"),
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


async def test_missing_settings_and_credentials(run_sidecar, tmp_path: Path) -> None:
    sidecar = run_sidecar(
        [], {"SYNC_DIR": str(tmp_path / "x"), "AWS_EC2_METADATA_DISABLED": "true"}
    )
    assert await sidecar.wait() == 2
    text = sidecar.text()
    for name in ("SYNC_BUCKET", "SYNC_REGION", "AWS_ACCESS_KEY_ID"):
        assert name in text
    assert not (tmp_path / "x").exists()


async def test_secret_without_key_is_reported_without_the_secret(
    run_sidecar, tmp_path: Path
) -> None:
    sidecar = run_sidecar(
        [str(tmp_path / "d"), "b", "http://127.0.0.1:9/{}/", REGION],
        {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"},
    )
    assert await sidecar.wait() == 2
    assert "AWS_ACCESS_KEY_ID" in sidecar.text()
    assert "s3cr3t-value" not in sidecar.text()


async def test_partial_positional_arguments(run_sidecar, tmp_path: Path) -> None:
    sidecar = run_sidecar([str(tmp_path / "d"), "bucket-only"], {})
    assert await sidecar.wait() == 2
    assert "DIRECTORY BUCKET ENDPOINT REGION" in sidecar.text()


async def test_start_failure_exits_non_zero(run_sidecar, bucket: Bucket, tmp_path: Path) -> None:
    sidecar = run_sidecar(
        [str(tmp_path / "d"), "no-such-bucket", bucket.server.endpoint_pattern, REGION],
        bucket.server.env(),
    )
    assert await sidecar.wait() == 1
    assert "cannot start" in sidecar.text() and "NoSuchBucket" in sidecar.text()


def test_python_dash_m_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "--prefix" in result.stdout and "SYNC_" in result.stdout


def test_version_is_the_one_of_the_package_and_of_its_metadata() -> None:
    """`s3sync-sidecar --version` prints the version written once in sidecar/__init__.py, which
    is also what the installed distribution says (pyproject.toml reads it from there)."""
    from importlib.metadata import version

    import sidecar

    assert SCRIPT is not None
    result = subprocess.run(
        [SCRIPT, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"s3sync-sidecar {sidecar.__version__}"
    assert version("s3sync-sidecar") == sidecar.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", sidecar.__version__)


async def test_full_uri_on_a_disallowed_host_is_refused(run_sidecar, tmp_path: Path) -> None:
    sidecar = run_sidecar(
        [str(tmp_path / "d"), "bucket", "http://127.0.0.1:9/{}/", REGION],
        {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.169.254/latest/creds",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "tok3n-value",
        },
    )
    assert await sidecar.wait() == 2
    text = sidecar.text()
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in text
    assert "169.254.170.2" in text, "the message says which hosts are allowed"
    assert "tok3n-value" not in text
    assert not (tmp_path / "d").exists()


async def test_ecs_credentials_source_on_the_command_line(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    """mobius3's `--credentials-source ecs-container-endpoint`, against a credentials endpoint
    on 127.0.0.1 (standing in for 169.254.170.2) that hands out the moto user's keys."""
    from datetime import UTC, datetime, timedelta

    from aiohttp import web

    served = []

    async def credentials(request: web.Request) -> web.Response:
        served.append(request.path)
        expiration = datetime.now(UTC) + timedelta(hours=1)
        return web.json_response(
            {
                "AccessKeyId": bucket.server.access_key_id,
                "SecretAccessKey": bucket.server.secret_access_key,
                "Token": "",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    app = web.Application()
    app.router.add_get("/v2/credentials/{id}", credentials)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    folder = tmp_path / "data"
    try:
        sidecar = run_sidecar(
            [
                str(folder),
                bucket.name,
                bucket.server.endpoint_pattern,
                REGION,
                "--credentials-source",
                "ecs-container-endpoint",
            ],
            {
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-1",
                "SYNC_INTERNAL_CONTAINER_CREDENTIALS_HOST": f"{host}:{port}",
            },
        )
        await sidecar.ready()
        (folder / "via-task-role.txt").write_bytes(b"role")
        await eventually(lambda: in_thread(lambda: bucket.get("via-task-role.txt") == b"role"))
        sidecar.process.send_signal(signal.SIGTERM)
        assert await sidecar.wait() == 0, sidecar.text()
        assert served and served[0] == "/v2/credentials/task-1"
    finally:
        await runner.cleanup()
