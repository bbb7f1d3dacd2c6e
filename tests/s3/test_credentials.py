"""Credentials: the container endpoint provider against a real local endpoint, the environment
rules (which URIs are trusted, what start-up validation reports), and a `Syncer` uploading
through credentials that moto's STS mints and the endpoint rotates every few seconds."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from support.bucket import Bucket
from support.metrics import metric
from support.s3_server import S3Server
from support.waiting import eventually, in_thread

from sidecar.aws.chain import credential_problems, provider_from_environment
from sidecar.aws.container import ContainerCredentials, container_credentials_url
from sidecar.aws.credentials import (
    Credentials,
    CredentialsError,
    StaticCredentials,
    parse_expiration,
)
from sidecar.aws.http import HttpClient

SECRET = "SECRET-KEY-wJalrXUtnFEMI-K7MDENG"
SESSION = "SESSION-TOKEN-FwoGZXIvYXdzEBYaD"
AUTH = "AUTH-TOKEN-Zm9vYmFyYmF6"
BODY_MARKER = "BODY-MARKER-do-not-log"
FULL = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
RELATIVE = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"


def iso(moment: datetime) -> str:
    """The endpoint's format, with milliseconds so short lifetimes are exact."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeEndpoint:
    """A container credentials endpoint whose every behaviour the test sets."""

    def __init__(self) -> None:
        self.url = ""
        self.token: str | None = None  # expected Authorization; None: not checked
        self.failing = False  # answer 500 until told otherwise
        self.fail_next = 0  # answer 500 to this many more requests
        self.lifetime = 3600.0  # seconds between the fetch and the Expiration handed out
        self.expiration: str | None = None  # a fixed Expiration text instead
        self.raw: bytes | None = None  # a fixed body instead of credentials
        self.issue: Callable[[], Awaitable[dict[str, str]]] | None = None
        self.gate: asyncio.Event | None = None  # when set, answers wait for it
        self.requests = 0
        self.failures = 0
        self.unauthorized = 0
        self.served: list[float] = []  # time.monotonic() of each successful answer
        self.tokens: list[str | None] = []  # Authorization of each successful answer
        self.handed: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            self.failures += 1
            return web.Response(status=500, text=f"internal error {BODY_MARKER} {SECRET}")
        authorization = request.headers.get("Authorization")
        if self.token is not None and authorization != self.token:
            self.unauthorized += 1
            return web.Response(status=401)
        if self.raw is not None:
            self.served.append(time.monotonic())
            return web.Response(body=self.raw, content_type="application/json")
        number = len(self.served) + 1
        if self.issue is not None:
            document = await self.issue()
        else:
            document = {
                "AccessKeyId": f"ASIAFAKE{number:04d}",
                "SecretAccessKey": f"{SECRET}-{number}",
                "Token": f"{SESSION}-{number}",
            }
        document["Expiration"] = self.expiration or iso(
            datetime.now(UTC) + timedelta(seconds=self.lifetime)
        )
        document["Code"] = "Success"
        self.served.append(time.monotonic())
        self.tokens.append(authorization)
        self.handed.append(document)
        return web.json_response(document)


@pytest.fixture
async def endpoint() -> AsyncIterator[FakeEndpoint]:
    fake = FakeEndpoint()
    app = web.Application()
    app.router.add_get("/v2/credentials/{id}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}/v2/credentials/task-1"
    yield fake
    if fake.gate is not None:
        fake.gate.set()
    await runner.cleanup()


@pytest.fixture
async def make_provider(
    endpoint: FakeEndpoint,
) -> AsyncIterator[Callable[..., ContainerCredentials]]:
    made: list[ContainerCredentials] = []

    def make(**kwargs: Any) -> ContainerCredentials:
        kwargs.setdefault("url", endpoint.url)
        provider = ContainerCredentials(**kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


async def raises_credentials_error(provider: ContainerCredentials) -> str | bool:
    """The error message if `get` fails, else False; fails if it hands out expired ones."""
    try:
        creds = await provider.get()
    except CredentialsError as error:
        return str(error)
    assert creds.expiration is not None and creds.expiration > datetime.now(UTC)
    return False


# -- fetching and refreshing ----------------------------------------------------------------


async def test_fetches_the_endpoint_credentials(endpoint: FakeEndpoint, make_provider) -> None:
    endpoint.token = AUTH
    endpoint.expiration = "2100-01-02T03:04:05Z"
    refreshed: list[Credentials] = []
    provider = make_provider(token=AUTH, on_refresh=refreshed.append)
    assert not provider.valid() and provider.expiration is None

    creds = await provider.get()

    expiration = datetime(2100, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert creds == Credentials("ASIAFAKE0001", f"{SECRET}-1", f"{SESSION}-1", expiration)
    assert refreshed == [creds]
    assert endpoint.tokens == [AUTH]
    assert provider.valid() and provider.expiration == expiration
    assert provider.refresh_at == expiration - timedelta(minutes=15)
    assert await provider.get() is creds
    assert endpoint.requests == 1


async def test_refreshes_before_expiry(endpoint: FakeEndpoint, make_provider) -> None:
    endpoint.lifetime = 4.0
    provider = make_provider()
    first = await provider.get()
    assert first.expiration is not None and provider.refresh_at is not None
    lead = first.expiration - provider.refresh_at
    assert timedelta(seconds=1.5) <= lead <= timedelta(seconds=2)  # half of ~4 s

    async def refreshed() -> Credentials | bool:
        creds = await provider.get()
        assert creds.expiration is not None and creds.expiration > datetime.now(UTC)
        return creds if len(endpoint.served) == 2 else False

    second = await eventually(refreshed, timeout=10, interval=0.02)
    gap = endpoint.served[1] - endpoint.served[0]
    assert 1.9 <= gap < 3.0, gap  # at half the lifetime, well before the 4 s expiry
    assert second.access_key_id == "ASIAFAKE0002"
    assert second.expiration is not None and second.expiration > first.expiration
    assert endpoint.requests == 2


async def test_callers_do_not_queue_behind_an_early_refresh(
    endpoint: FakeEndpoint, make_provider
) -> None:
    """Between the refresh time and the last quarter of the lifetime, a caller arriving while
    a refresh is running gets the current (still valid) credentials instead of waiting."""
    endpoint.lifetime = 4.0
    provider = make_provider()
    first = await provider.get()
    refresh_at = provider.refresh_at
    assert refresh_at is not None
    await eventually(lambda: datetime.now(UTC) >= refresh_at, timeout=10, what="refresh due")
    endpoint.gate = asyncio.Event()
    refreshing = asyncio.create_task(provider.get())
    await eventually(lambda: endpoint.requests == 2, what="refresh under way")
    assert await asyncio.wait_for(provider.get(), timeout=0.5) is first
    endpoint.gate.set()
    second = await refreshing
    assert second.access_key_id == "ASIAFAKE0002"
    assert await provider.get() is second
    assert endpoint.requests == 2


async def test_refresh_lead_is_capped_at_15_minutes(endpoint: FakeEndpoint, make_provider) -> None:
    endpoint.lifetime = 2 * 3600
    provider = make_provider()
    creds = await provider.get()
    assert creds.expiration is not None
    assert provider.refresh_at == creds.expiration - timedelta(minutes=15)

    endpoint.lifetime = 20 * 60  # shorter than 30 min: half the lifetime instead
    provider.invalidate()
    creds = await provider.get()
    assert creds.expiration is not None and provider.refresh_at is not None
    lead = creds.expiration - provider.refresh_at
    assert timedelta(minutes=9, seconds=59) <= lead <= timedelta(minutes=10)
    assert endpoint.requests == 2


async def test_concurrent_gets_share_one_fetch(endpoint: FakeEndpoint, make_provider) -> None:
    provider = make_provider()
    endpoint.gate = asyncio.Event()
    tasks = [asyncio.create_task(provider.get()) for _ in range(20)]
    await eventually(lambda: endpoint.requests == 1, what="first request")
    assert not any(task.done() for task in tasks)
    endpoint.gate.set()
    results = await asyncio.gather(*tasks)
    assert all(creds is results[0] for creds in results)
    assert endpoint.requests == 1 and len(endpoint.served) == 1

    # A refresh forced by invalidate(): the same, one fetch for everyone waiting.
    endpoint.gate.clear()
    provider.invalidate()
    tasks = [asyncio.create_task(provider.get()) for _ in range(20)]
    await eventually(lambda: endpoint.requests == 2, what="second request")
    endpoint.gate.set()
    results = await asyncio.gather(*tasks)
    assert {creds.access_key_id for creds in results} == {"ASIAFAKE0002"}
    assert endpoint.requests == 2

    # A failed refresh is shared too: its error, not one more round of attempts per caller.
    endpoint.failing = True
    provider.invalidate()
    outcomes = await asyncio.gather(*(provider.get() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(outcome, CredentialsError) for outcome in outcomes)
    assert endpoint.requests == 2 + 3 and endpoint.failures == 3


async def test_invalidate_forces_one_fetch(endpoint: FakeEndpoint, make_provider) -> None:
    provider = make_provider()
    first = await provider.get()
    assert await provider.get() is first
    provider.invalidate()
    assert not provider.valid()  # S3 rejected them: not ready until new ones arrive
    second = await provider.get()
    assert (first.access_key_id, second.access_key_id) == ("ASIAFAKE0001", "ASIAFAKE0002")
    assert await provider.get() is second
    assert provider.valid()
    assert endpoint.requests == 2


async def test_token_file_is_reread_at_each_refresh(
    endpoint: FakeEndpoint, make_provider, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("AUTH-1\n")  # as `echo` writes it
    endpoint.token = "AUTH-1"
    provider = make_provider(token="IGNORED-WHEN-A-FILE-IS-SET", token_file=str(token_file))
    await provider.get()

    token_file.write_text("AUTH-2")
    endpoint.token = "AUTH-2"
    provider.invalidate()
    await provider.get()

    assert endpoint.tokens == ["AUTH-1", "AUTH-2"]
    assert endpoint.unauthorized == 0


async def test_token_with_line_break_is_refused(
    endpoint: FakeEndpoint, make_provider, tmp_path: Path
) -> None:
    failures: list[BaseException] = []
    provider = make_provider(token=f"{AUTH}\r\nX-Injected: 1", on_failure=failures.append)
    with pytest.raises(CredentialsError, match="line break") as caught:
        await provider.get()
    assert AUTH not in str(caught.value)
    assert len(failures) == 3 and all(isinstance(f, CredentialsError) for f in failures)
    assert all(AUTH not in str(f) for f in failures)

    token_file = tmp_path / "token"
    token_file.write_text(f"{AUTH}\nX-Injected: 1\n")
    provider = make_provider(token_file=str(token_file), attempts=1)
    with pytest.raises(CredentialsError, match="line break") as caught:
        await provider.get()
    assert AUTH not in str(caught.value)
    assert endpoint.requests == 0  # never sent


async def test_server_errors_are_retried_then_recover(
    endpoint: FakeEndpoint, make_provider
) -> None:
    failures: list[BaseException] = []
    refreshed: list[Credentials] = []
    provider = make_provider(attempts=3, on_failure=failures.append, on_refresh=refreshed.append)

    endpoint.failing = True
    with pytest.raises(CredentialsError, match="HTTP 500"):
        await provider.get()
    assert endpoint.requests == 3 and len(failures) == 3 and refreshed == []

    endpoint.failing = False
    endpoint.fail_next = 2  # two more 500s, then success within one get()
    creds = await provider.get()
    assert creds.access_key_id == "ASIAFAKE0001"
    assert endpoint.requests == 6 and endpoint.failures == 5
    assert len(failures) == 5 and all("HTTP 500" in str(f) for f in failures)
    assert refreshed == [creds]


async def test_unreachable_endpoint(make_provider) -> None:
    failures: list[BaseException] = []
    provider = make_provider(
        url="http://127.0.0.1:1/creds", attempts=2, timeout=2.0, on_failure=failures.append
    )
    with pytest.raises(CredentialsError, match="unreachable"):
        await provider.get()
    assert len(failures) == 2


async def test_cached_credentials_outlive_a_failing_endpoint_but_not_their_expiry(
    endpoint: FakeEndpoint, make_provider
) -> None:
    endpoint.lifetime = 4.0
    failures: list[BaseException] = []
    provider = make_provider(attempts=2, on_failure=failures.append)
    first = await provider.get()
    assert first.expiration is not None
    endpoint.failing = True
    refresh_at = provider.refresh_at
    assert refresh_at is not None
    await eventually(lambda: datetime.now(UTC) >= refresh_at, timeout=10, what="refresh due")

    assert await provider.get() is first  # refresh failed twice, the cached ones still work
    assert endpoint.requests == 3 and len(failures) == 2
    for _ in range(10):  # a cooldown, not a refresh per call
        assert await provider.get() is first
    assert endpoint.requests == 3
    assert provider.valid()
    next_try = provider.refresh_at
    assert next_try is not None and next_try <= first.expiration

    message = await eventually(
        lambda: raises_credentials_error(provider), timeout=10, interval=0.05
    )
    assert datetime.now(UTC) >= first.expiration
    assert "no valid credentials" in message and "HTTP 500" in message
    assert not provider.valid()
    assert await raises_credentials_error(provider)  # never the expired ones

    endpoint.failing = False
    recovered = await provider.get()
    assert recovered.access_key_id == "ASIAFAKE0002" and provider.valid()


async def test_expiration_formats_are_exact_utc_instants() -> None:
    expected = datetime(2026, 11, 25, 6, 3, 31, tzinfo=UTC)
    assert parse_expiration("2026-11-25T06:03:31Z") == expected
    assert parse_expiration("2026-11-25T06:03:31+00:00") == expected
    assert parse_expiration("2026-11-25T08:03:31+02:00") == expected
    assert parse_expiration("2026-11-25T06:03:31") == expected  # documented as UTC
    fractional = parse_expiration("2026-11-25T06:03:31.250Z")
    assert fractional == expected + timedelta(milliseconds=250)
    assert parse_expiration("2026-11-25T06:03:31.123456789+00:00") == expected + timedelta(
        microseconds=123456
    )
    for parsed in (fractional, parse_expiration("2026-11-25T08:03:31+02:00")):
        assert parsed.utcoffset() == timedelta(0)
    for bad in ("tomorrow", "2026-11-25", ""):
        with pytest.raises(CredentialsError, match="Expiration"):
            parse_expiration(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2100-01-02T03:04:05.678+00:00", datetime(2100, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2100-01-02T03:04:05Z", datetime(2100, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2100-01-02T04:04:05.5+01:00", datetime(2100, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
    ],
)
async def test_expiration_from_the_endpoint_ignores_the_local_time_zone(
    endpoint: FakeEndpoint,
    make_provider,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    expected: datetime,
) -> None:
    monkeypatch.setenv("TZ", "America/St_Johns")  # UTC-03:30: any local-time mix-up shows
    time.tzset()
    try:
        endpoint.expiration = text
        provider = make_provider()
        creds = await provider.get()
        assert creds.expiration == expected
        assert creds.expiration is not None and creds.expiration.utcoffset() == timedelta(0)
        assert provider.refresh_at == expected - timedelta(minutes=15)
        assert provider.valid()
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json {" + SECRET.encode(), "not JSON"),
        (b"[1, 2]", "not an object"),
        (b"[" * 60_000, "not JSON"),  # nested past the decoder's depth
        (b'{"AccessKeyId": "' + b"A" * 70_000 + b'"}', "oversized"),
        (
            json.dumps({"AccessKeyId": "A", "Expiration": "2100-01-01T00:00:00Z"}).encode(),
            "without SecretAccessKey$",
        ),
        (
            json.dumps(
                {
                    "AccessKeyId": "A",
                    "SecretAccessKey": SECRET,
                    "Token": SESSION,
                    "Expiration": "soon",
                }
            ).encode(),
            "Expiration",
        ),
        (
            json.dumps(
                {
                    "AccessKeyId": "A",
                    "SecretAccessKey": SECRET,
                    "Token": SESSION,
                    "Expiration": "2001-01-01T00:00:00Z",
                }
            ).encode(),
            "expired",
        ),
    ],
)
async def test_bad_answers_are_errors(
    endpoint: FakeEndpoint, make_provider, raw: bytes, match: str
) -> None:
    endpoint.raw = raw
    provider = make_provider(attempts=1)
    with pytest.raises(CredentialsError, match=match) as caught:
        await provider.get()
    assert SECRET not in str(caught.value) and SESSION not in str(caught.value)
    assert not provider.valid()


async def test_no_secret_in_logs_errors_or_reprs(
    endpoint: FakeEndpoint, make_provider, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text(AUTH)
    endpoint.token = AUTH
    endpoint.lifetime = 3.0
    seen: list[str] = []
    provider = make_provider(
        url=endpoint.url + "?signature=QUERY-SECRET",
        token_file=str(token_file),
        attempts=2,
        on_failure=lambda error: seen.append(str(error)),
        on_refresh=lambda creds: seen.append(repr(creds)),
    )
    creds = await provider.get()  # a refresh
    seen += [repr(provider), repr(creds), str(creds)]
    endpoint.failing = True
    refresh_at = provider.refresh_at
    assert refresh_at is not None
    await eventually(lambda: datetime.now(UTC) >= refresh_at, timeout=10)
    assert await provider.get() is creds  # failures, cached ones kept
    message = await eventually(lambda: raises_credentials_error(provider), timeout=10)
    seen.append(message)  # expired: no credentials at all
    endpoint.failing = False
    endpoint.token = "SOMETHING-ELSE"
    provider.invalidate()
    with pytest.raises(CredentialsError) as caught:  # 401
        await provider.get()
    seen.append(str(caught.value))
    endpoint.token = AUTH
    endpoint.raw = json.dumps({"SecretAccessKey": SECRET, "Token": SESSION}).encode()
    with pytest.raises(CredentialsError) as caught:
        await provider.get()
    seen.append(str(caught.value))
    seen.append(repr(provider))

    text = caplog.text + "\n".join(seen)
    for secret in (SECRET, SESSION, AUTH, BODY_MARKER, "QUERY-SECRET"):
        assert secret not in text
    assert endpoint.url in caplog.text  # the endpoint is named, without its query
    assert creds.expiration is not None and creds.expiration.isoformat() in caplog.text
    assert "HTTP 500" in caplog.text and "HTTP 401" in text


# -- the environment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/creds",
        "http://127.0.0.1:1/x",
        "http://127.5.6.7/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://169.254.170.2/x",
        "http://169.254.170.23/x",
        "http://[fd00:ec2::23]/x",
    ],
)
def test_full_uri_allowed(uri: str) -> None:
    assert container_credentials_url({FULL: uri}) == uri
    assert credential_problems({FULL: uri}) == []


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/x",
        "http://127.0.0.1.example.com/x",
        "ftp://127.0.0.1/x",
        "127.0.0.1/creds",
        "http://[::1/x",
    ],
)
def test_full_uri_refused(uri: str) -> None:
    with pytest.raises(CredentialsError, match=FULL) as caught:
        container_credentials_url({FULL: uri})
    assert "169.254.170.23" in str(caught.value)  # says which hosts are allowed
    [(name, message)] = credential_problems({FULL: uri})
    assert name == FULL and "https://" in message and "loopback" in message
    with pytest.raises(CredentialsError, match=FULL):
        provider_from_environment({FULL: uri})


def test_relative_uri() -> None:
    assert (
        container_credentials_url({RELATIVE: "/v2/credentials/abc"})
        == "http://169.254.170.2/v2/credentials/abc"
    )
    env = {
        RELATIVE: "/v2/credentials/abc",
        "SYNC_INTERNAL_CONTAINER_CREDENTIALS_HOST": "127.0.0.1:8123",
        FULL: "http://example.com/ignored",  # the relative URI wins
    }
    assert container_credentials_url(env) == "http://127.0.0.1:8123/v2/credentials/abc"
    assert container_credentials_url({}) is None
    with pytest.raises(CredentialsError, match=RELATIVE):
        container_credentials_url({RELATIVE: "v2/credentials/abc"})


def test_credential_problems(tmp_path: Path) -> None:
    keys = {KEY_ID: "AKIDEXAMPLE", SECRET_KEY: SECRET}
    token_file = tmp_path / "token"
    token_file.write_text(AUTH)
    relative = {RELATIVE: "/v2/credentials/abc"}

    assert credential_problems(keys) == []
    assert credential_problems(relative) == []
    assert credential_problems({FULL: "http://127.0.0.1/x", TOKEN_FILE: str(token_file)}) == []
    assert credential_problems(relative, "ecs") == []
    assert credential_problems(keys, "environment") == []
    assert credential_problems({**keys, FULL: "http://example.com/unused"}) == []

    assert credential_problems({KEY_ID: "AKIDEXAMPLE"}) == [
        (SECRET_KEY, f"required when {KEY_ID} is set (its value is never shown)")
    ]
    assert credential_problems({SECRET_KEY: SECRET}) == [
        (KEY_ID, f"required when {SECRET_KEY} is set")
    ]
    assert credential_problems({SECRET_KEY: SECRET, **relative}) == [
        (KEY_ID, f"required when {SECRET_KEY} is set")
    ]

    # Nothing named: instance metadata can only be known by asking it, at start.
    assert credential_problems({}) == []
    [(name, message)] = credential_problems({"AWS_EC2_METADATA_DISABLED": "true"})
    assert name == KEY_ID
    for variable in (KEY_ID, SECRET_KEY, RELATIVE, FULL, "AWS_WEB_IDENTITY_TOKEN_FILE"):
        assert variable in message
    [(name, message)] = credential_problems(relative, "environment")
    assert name == KEY_ID and SECRET_KEY in message
    [(name, message)] = credential_problems(keys, "ecs")
    assert name == RELATIVE and FULL in message and "ecs" in message

    [(name, message)] = credential_problems({FULL: "http://example.com/x"})
    assert name == FULL and "'example.com'" in message
    [(name, message)] = credential_problems({FULL: "not a url"})
    assert name == FULL and "http" in message

    [(name, message)] = credential_problems({**relative, TOKEN: f"{AUTH}\nX: 1"})
    assert name == TOKEN and "line break" in message and AUTH not in message
    token_file.write_text(f"{AUTH}\r\nX: 1")
    [(name, message)] = credential_problems({**relative, TOKEN_FILE: str(token_file)})
    assert name == TOKEN_FILE and "line break" in message and AUTH not in message

    missing = tmp_path / "missing"
    [(name, message)] = credential_problems({FULL: "http://[::1]/x", TOKEN_FILE: str(missing)})
    assert name == TOKEN_FILE and str(missing) in message and "No such file" in message
    [(name, message)] = credential_problems({**relative, TOKEN_FILE: str(tmp_path)})
    assert name == TOKEN_FILE and "Is a directory" in message

    with pytest.raises(ValueError, match="source"):
        credential_problems(keys, "instance-profile")


async def test_provider_from_environment(endpoint: FakeEndpoint, tmp_path: Path) -> None:
    keys = {KEY_ID: " AKIDEXAMPLE ", SECRET_KEY: SECRET, "AWS_SESSION_TOKEN": SESSION}
    static = provider_from_environment(keys)
    assert isinstance(static, StaticCredentials)
    assert await static.get() == Credentials("AKIDEXAMPLE", SECRET, SESSION)
    assert static.valid() and static.expiration is None
    static.invalidate()
    assert static.valid()
    assert SECRET not in repr(static) and SESSION not in repr(static)

    port = endpoint.url.split(":")[2].split("/")[0]
    relative = {
        RELATIVE: "/v2/credentials/task-1",
        "SYNC_INTERNAL_CONTAINER_CREDENTIALS_HOST": f"127.0.0.1:{port}",
    }
    refreshed: list[Credentials] = []
    failures: list[BaseException] = []
    provider = provider_from_environment(
        {**keys, **relative}, "ecs", on_refresh=refreshed.append, on_failure=failures.append
    )
    assert isinstance(provider, ContainerCredentials)
    try:
        endpoint.fail_next = 1
        creds = await provider.get()
        assert creds.access_key_id == "ASIAFAKE0001" and refreshed == [creds]
        assert len(failures) == 1
    finally:
        await provider.close()

    token_file = tmp_path / "token"
    token_file.write_text(AUTH)
    endpoint.token = AUTH
    full = {FULL: endpoint.url, TOKEN_FILE: str(token_file), TOKEN: "IGNORED"}
    provider = provider_from_environment(full)
    assert isinstance(provider, ContainerCredentials)
    try:
        assert (await provider.get()).access_key_id == "ASIAFAKE0002"
        assert endpoint.tokens == [None, AUTH]
    finally:
        await provider.close()

    with pytest.raises(CredentialsError, match=KEY_ID):
        provider_from_environment({"AWS_EC2_METADATA_DISABLED": "true"})
    with pytest.raises(CredentialsError, match=KEY_ID):
        provider_from_environment(relative, "environment")
    with pytest.raises(CredentialsError, match=RELATIVE):
        provider_from_environment(keys, "ecs")


# -- a Syncer on rotating credentials minted by moto's STS -------------------------------------


async def test_syncer_on_rotating_container_credentials(
    moto_server: S3Server,
    bucket: Bucket,
    syncer_factory,
    endpoint: FakeEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment's keys would not work: only the endpoint's credentials can.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNUSEDUNUSEDUNUS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    iam = moto_server.client("iam")
    sts = moto_server.client("sts")
    user_arn = (await in_thread(iam.get_user))["User"]["Arn"]
    assert user_arn == "arn:aws:iam::123456789012:user/sidecar"
    role_name = f"sidecar-task-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}
        ],
    }
    role_arn = (
        await in_thread(
            lambda: iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        )
    )["Role"]["Arn"]
    s3_only = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    await in_thread(
        lambda: iam.put_role_policy(
            RoleName=role_name, PolicyName="s3", PolicyDocument=json.dumps(s3_only)
        )
    )

    def assume() -> dict[str, Any]:
        answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=uuid.uuid4().hex[:12])
        return dict(answer["Credentials"])

    # moto really checks assumed-role keys and their session token:
    minted = await in_thread(assume)
    wrong = moto_server.client(
        "s3", key=minted["AccessKeyId"], secret=minted["SecretAccessKey"]
    )  # no session token
    with pytest.raises(ClientError, match=r"InvalidToken|InvalidAccessKeyId"):
        await in_thread(lambda: wrong.list_objects_v2(Bucket=bucket.name))

    async def issue() -> dict[str, str]:
        creds = await in_thread(assume)  # a fresh AssumeRole per fetch
        return {
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"],
        }

    endpoint.issue = issue
    endpoint.lifetime = 6.0  # claimed; moto's own sessions last longer
    token_file = tmp_path / "token"
    token_file.write_text("AUTH-1")
    endpoint.token = "AUTH-1"
    refreshed: list[Credentials] = []
    failures: list[BaseException] = []
    provider = ContainerCredentials(
        url=endpoint.url,
        token_file=str(token_file),
        on_refresh=refreshed.append,
        on_failure=failures.append,
    )
    syncer = await syncer_factory(credentials=provider)
    folder: Path = syncer.folder
    assert len(endpoint.served) == 1  # start-up fetched once

    written: dict[str, bytes] = {}
    writing = True

    async def writer() -> None:
        number = 0
        while writing:
            name = f"f{number:03d}.txt"
            content = f"file {number} written at {time.monotonic():.3f}\n".encode()
            (folder / name).write_bytes(content)
            written[name] = content
            number += 1
            await asyncio.sleep(0.4)  # pacing the workload, not synchronising

    writing_task = asyncio.create_task(writer())
    try:
        # Rotate the token before the next refresh, then break the endpoint until the cached
        # credentials have expired and S3 requests have had to wait for credentials.
        token_file.write_text("AUTH-2")
        endpoint.token = "AUTH-2"
        endpoint.failing = True
        await eventually(lambda: not provider.valid(), timeout=15, what="cached ones expired")
        assert len(endpoint.served) == 1 and endpoint.failures >= 3
        before = metric(syncer, "s3sync_s3_retries_total", reason="credentials")
        await eventually(
            lambda: metric(syncer, "s3sync_s3_retries_total", reason="credentials") > before,
            timeout=10,
            what="S3 requests waiting for credentials",
        )
        written_during_outage = set(written)
        endpoint.failing = False

        await eventually(lambda: len(endpoint.served) >= 3, timeout=15, what="two rotations")
        token_file.write_text("AUTH-3")  # just after a refresh: the next one is seconds away
        endpoint.token = "AUTH-3"
        await eventually(lambda: len(endpoint.served) >= 4, timeout=15, what="third rotation")
        await eventually(lambda: len(written) >= 38, timeout=20, what="~15 s of writes")
    finally:
        writing = False
        await writing_task

    async def all_uploaded() -> bool:
        keys = await in_thread(bucket.list_keys)
        if keys != sorted(written):
            return False
        for name, content in written.items():
            assert await in_thread(bucket.get, name) == content, name
        return True

    await eventually(all_uploaded, timeout=30, interval=0.3, what="every file in S3")

    # A refresh may be on its way back to the provider: wait until both sides agree.
    await eventually(lambda: len(refreshed) == len(endpoint.handed), what="in-flight refresh")
    served = len(endpoint.served)
    assert served >= 4
    assert endpoint.tokens[:2] == ["AUTH-1", "AUTH-2"] and endpoint.tokens[-1] == "AUTH-3"
    assert endpoint.unauthorized == 0  # the token file was re-read at each refresh
    key_ids = [creds.access_key_id for creds in refreshed]
    assert key_ids == [document["AccessKeyId"] for document in endpoint.handed]
    assert len(set(key_ids)) == served and all(k.startswith("ASIA") for k in key_ids)
    assert all("HTTP 500" in str(error) for error in failures)
    assert written_during_outage  # files written while no credentials could be had
    assert written_during_outage <= set(await in_thread(bucket.list_keys))


async def test_a_rejected_key_forces_one_refresh_and_one_retry(
    bucket: Bucket, syncer_factory, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 answers InvalidAccessKeyId (as it would ExpiredToken): the provider is told, the
    next credentials are fetched, and the same request is sent again with them."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    good = bucket.server.env()
    handed: list[str] = []

    async def issue() -> dict[str, str]:
        # The first answer carries a key S3 does not know; every later one the real key.
        key = "AKIAREVOKEDREVOKED00" if not handed else good["AWS_ACCESS_KEY_ID"]
        handed.append(key)
        return {"AccessKeyId": key, "SecretAccessKey": good["AWS_SECRET_ACCESS_KEY"], "Token": ""}

    endpoint.issue = issue
    provider = ContainerCredentials(url=endpoint.url)
    try:
        syncer = await syncer_factory(credentials=provider)  # the first listing recovers
        assert handed == ["AKIAREVOKEDREVOKED00", good["AWS_ACCESS_KEY_ID"]]
        assert (
            metric(syncer, "s3sync_s3_requests_total", operation="ListObjectsV2", status="403") == 1
        )
        assert (
            metric(
                syncer, "s3sync_s3_retries_total", operation="ListObjectsV2", reason="credentials"
            )
            == 1
        )
        (syncer.folder / "after.txt").write_bytes(b"ok")
        await eventually(lambda: in_thread(lambda: bucket.get("after.txt") == b"ok"))
        assert len(handed) == 2, "no further refresh was needed"
    finally:
        await provider.close()


async def test_a_factory_builds_the_provider_on_the_syncers_one_http_client(
    bucket: Bucket, syncer_factory, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the command builds its provider: on the HTTP client S3 uses (one pool, one TLS
    set-up), owned by the syncer and closed with it; the provider never closes that client."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    good = bucket.server.env()

    async def issue() -> dict[str, str]:
        return {
            "AccessKeyId": good["AWS_ACCESS_KEY_ID"],
            "SecretAccessKey": good["AWS_SECRET_ACCESS_KEY"],
            "Token": "",
        }

    endpoint.issue = issue
    built: list[tuple[HttpClient, ContainerCredentials]] = []

    def factory(http: HttpClient) -> ContainerCredentials:
        provider = ContainerCredentials(url=endpoint.url, http=http)
        built.append((http, provider))
        return provider

    syncer = await syncer_factory(credentials=factory)
    (syncer.folder / "through-the-factory.txt").write_bytes(b"ok")
    await eventually(lambda: in_thread(lambda: bucket.get("through-the-factory.txt") == b"ok"))
    ((http, provider),) = built
    assert http is syncer._engine.clients.http  # the very client S3's requests go through
    assert len(endpoint.served) == 1 and provider.valid()
    await provider.close()  # not its client to close: S3 goes on through it
    (syncer.folder / "after.txt").write_bytes(b"still")
    await eventually(lambda: in_thread(lambda: bucket.get("after.txt") == b"still"))
    await syncer.stop()
    provider.invalidate()
    with pytest.raises(RuntimeError, match="closed"):  # the syncer closed its one client
        await provider.get()
    assert len(endpoint.served) == 1
