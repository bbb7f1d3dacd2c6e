"""Where AWS credentials come from, behind one small interface the S3 client depends on.

Two sources, in the order the AWS SDKs try them inside a container: keys in the environment
(static), then the container credentials endpoint (ECS, Fargate, EKS Pod Identity), whose
temporary credentials `ContainerCredentials` refreshes before they expire. Secrets (secret keys,
session tokens, authorization tokens) never appear in logs, exceptions or reprs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("sidecar.credentials")

_T = TypeVar("_T")

# Names of environment variables (S105 mistakes them for hard-coded secrets).
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105
SESSION_TOKEN = "AWS_SESSION_TOKEN"  # noqa: S105
RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105
AUTHORIZATION_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105
# Internal, for tests only: where RELATIVE_URI points instead of the ECS agent's address.
INTERNAL_CONTAINER_HOST = "SYNC_INTERNAL_CONTAINER_CREDENTIALS_HOST"

ECS_CONTAINER_HOST = "169.254.170.2"
SOURCES = ("auto", "environment", "ecs")

# Plain-http hosts a FULL_URI may name besides loopback: the ECS agent and EKS Pod Identity.
_ALLOWED_HTTP_HOSTS = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_ALLOWED_HOSTS_TEXT = (
    "an https:// URL, or an http:// URL whose host is a loopback address "
    "(127.0.0.0/8, [::1], localhost), 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None  # aware UTC; None when they do not expire


class CredentialsError(Exception):
    """Credentials cannot be had right now (the message never contains a secret)."""


class CredentialsProvider(Protocol):
    async def get(self) -> Credentials:
        """Valid credentials, refreshed first if they are about to expire."""
        ...

    def invalidate(self) -> None:
        """S3 rejected the current credentials: the next `get` must fetch new ones."""
        ...

    def valid(self) -> bool:
        """Credentials are held and not expired: what readiness reports, without fetching."""
        ...

    @property
    def expiration(self) -> datetime | None:
        """When the held credentials expire (aware UTC); None if they never do or none held."""
        ...

    async def close(self) -> None: ...


class StaticCredentials:
    """Credentials fixed for the life of the process (environment variables)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"

    async def get(self) -> Credentials:
        return self._credentials

    def invalidate(self) -> None:
        """Nothing to refresh: a rejected static key stays rejected."""

    def valid(self) -> bool:
        """Environment keys do not expire, so they are always valid as far as we can tell."""
        expiration = self._credentials.expiration
        return expiration is None or _now() < expiration

    @property
    def expiration(self) -> datetime | None:
        return self._credentials.expiration

    async def close(self) -> None:
        return None


class ContainerCredentials:
    """Temporary credentials from the container credentials endpoint (ECS, Fargate, EKS).

    Modelled on aiobotocore's refreshable credentials: they are refreshed *before* they expire,
    at `expiration - min(15 min, half the lifetime they had when fetched)`, so S3 never sees
    expired ones; one refresh runs at a time and concurrent callers share its outcome. When the
    endpoint fails, the cached credentials are used for as long as they are valid (retrying after
    a short cooldown rather than on every call); expired credentials are never handed out.
    """

    _REFRESH_LEAD = timedelta(minutes=15)
    # Inside this window callers wait for a running refresh instead of using the old ones.
    _MANDATORY_LEAD = timedelta(minutes=10)
    _COOLDOWN = timedelta(seconds=5)
    _BACKOFF_BASE = 0.2
    _BACKOFF_CAP = 2.0
    _MAX_BODY = 64 * 1024

    def __init__(
        self,
        *,
        url: str,
        token: str | None = None,
        token_file: str | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        on_refresh: Callable[[Credentials], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the container credentials url must be an http:// or https:// URL")
        self._url = url
        # What logs show: no user info, no query (either could carry a secret).
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        port = f":{parts.port}" if parts.port is not None else ""
        self._display = f"{parts.scheme}://{host}{port}{parts.path}"
        self._token = token
        self._token_file = token_file
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._on_refresh = on_refresh
        self._on_failure = on_failure
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._credentials: Credentials | None = None
        self._invalidated = False
        never = datetime.min.replace(tzinfo=UTC)
        self._refresh_at = never
        self._mandatory_at = never
        self._generation = 0  # bumped when a refresh ends, so waiters can share its outcome
        self._last_error = ""

    def __repr__(self) -> str:
        expiration = self.expiration
        shown = expiration.isoformat() if expiration is not None else None
        return f"ContainerCredentials(url={self._display!r}, expiration={shown!r})"

    @property
    def expiration(self) -> datetime | None:
        return self._credentials.expiration if self._credentials is not None else None

    @property
    def refresh_at(self) -> datetime | None:
        """When the next refresh is due (aware UTC), None before the first fetch."""
        return self._refresh_at if self._credentials is not None else None

    def valid(self) -> bool:
        """Held, not rejected by S3 since, and not expired."""
        return self._usable(_now()) is not None

    def invalidate(self) -> None:
        """S3 rejected them: the next `get` fetches, and will not fall back on these."""
        self._invalidated = True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self) -> Credentials:
        now = _now()
        current = self._usable(now)
        if current is not None and (
            now < self._refresh_at or (self._lock.locked() and now < self._mandatory_at)
        ):
            # Fresh, or a refresh is running and these are not close enough to expiry to wait.
            return current
        generation = self._generation
        async with self._lock:
            now = _now()
            current = self._usable(now)
            if self._generation != generation:
                # A refresh ended while this caller waited: share its outcome, do not repeat it.
                if current is not None:
                    return current
                if self._last_error:
                    raise CredentialsError(self._last_error)
            if current is not None and now < self._refresh_at:
                return current
            return await self._refresh()

    def _usable(self, now: datetime) -> Credentials | None:
        creds = self._credentials
        if creds is None or self._invalidated or creds.expiration is None:
            return None
        return creds if now < creds.expiration else None

    async def _refresh(self) -> Credentials:
        """Under the lock: `attempts` fetches with backoff, then the cache or an error."""
        error = CredentialsError("no attempt made")
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._backoff(attempt - 1))
            try:
                creds = await self._fetch()
            except CredentialsError as failure:
                error = failure
                log.debug("credentials attempt %d/%d failed: %s", attempt, self._attempts, error)
                _notify(self._on_failure, failure, "on_failure")
                continue
            self._store(creds)
            return creds
        return self._failed(error)

    def _store(self, creds: Credentials) -> None:
        assert creds.expiration is not None
        now = _now()
        lifetime = creds.expiration - now
        self._refresh_at = creds.expiration - min(self._REFRESH_LEAD, lifetime / 2)
        self._mandatory_at = creds.expiration - min(self._MANDATORY_LEAD, lifetime / 4)
        self._credentials = creds
        self._invalidated = False
        self._last_error = ""
        self._generation += 1
        log.info(
            "fetched credentials from %s; they expire at %s",
            self._display,
            creds.expiration.isoformat(),
        )
        _notify(self._on_refresh, creds, "on_refresh")

    def _failed(self, error: CredentialsError) -> Credentials:
        now = _now()
        current = self._usable(now)
        self._generation += 1
        if current is None:
            self._last_error = f"no valid credentials: {error}"
            log.warning("%s", self._last_error)
            raise CredentialsError(self._last_error)
        assert current.expiration is not None
        # Not on every call: wait a little (never past expiry) before trying again.
        self._refresh_at = now + min(self._COOLDOWN, (current.expiration - now) / 2)
        self._last_error = str(error)
        log.warning(
            "refreshing credentials failed (%s); using the current ones, which expire at %s",
            error,
            current.expiration.isoformat(),
        )
        return current

    def _backoff(self, retry: int) -> float:
        ceiling = min(self._BACKOFF_CAP, self._BACKOFF_BASE * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _authorization(self) -> str | None:
        """The token to send, the file re-read every time (it is rotated under our feet)."""
        if self._token_file is not None:
            token: str | None = read_token_file(self._token_file)
        else:
            token = self._token
        if token is not None:
            check_token(token)
        return token

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Our own small session: the S3 one may be closed or saturated, and proxies from
            # the environment must not see link-local credential requests (trust_env=False).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=2),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def _fetch(self) -> Credentials:
        headers = {"Accept": "application/json"}
        token = self._authorization()
        if token is not None:
            headers["Authorization"] = token
        try:
            async with self._client().get(
                self._url,
                headers=headers,
                allow_redirects=False,  # a redirect would carry the token elsewhere
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                if response.status != 200:
                    raise CredentialsError(f"{self._display} answered HTTP {response.status}")
                body = await _read_limited(response.content, self._MAX_BODY + 1)
        except TimeoutError:
            raise CredentialsError(
                f"{self._display} did not answer within {self._timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            # Our own words only: aiohttp's messages may quote the full URL or a header.
            reason = type(error).__name__
            if isinstance(error, OSError) and error.strerror:
                reason += f": {error.strerror}"
            raise CredentialsError(f"{self._display} unreachable ({reason})") from None
        if len(body) > self._MAX_BODY:
            raise CredentialsError(f"{self._display} answered with an oversized body")
        creds = parse_credentials(body, self._display)
        assert creds.expiration is not None
        if creds.expiration <= _now():
            raise CredentialsError(
                f"{self._display} handed out credentials that expired at "
                f"{creds.expiration.isoformat()}"
            )
        return creds


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes (a bigger answer is refused, not buffered whole)."""
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def parse_credentials(body: bytes, source: str = "the endpoint") -> Credentials:
    """The endpoint's JSON; errors name the missing fields, never a value."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsError(f"{source} answered with something that is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{source} answered with JSON that is not an object")
    names = ("AccessKeyId", "SecretAccessKey", "Expiration")
    missing = [
        name for name in names if not isinstance(document.get(name), str) or not document[name]
    ]
    if missing:
        raise CredentialsError(f"{source} answered without {', '.join(missing)}")
    token = document.get("Token")
    if token is not None and not isinstance(token, str):
        raise CredentialsError(f"{source} answered with a Token that is not a string")
    return Credentials(
        document["AccessKeyId"],
        document["SecretAccessKey"],
        token or None,  # a local endpoint may serve long-term keys, which have no token
        parse_expiration(document["Expiration"], source),
    )


def parse_expiration(text: str, source: str = "the endpoint") -> datetime:
    """ISO 8601 (`Z` or an offset, fractional seconds or not) as an aware UTC datetime.

    Without an offset the time is taken as UTC, which is what the endpoint documents.
    """
    try:
        if "T" not in text.upper():
            raise ValueError
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CredentialsError(f"{source} answered with an unreadable Expiration") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_token(token: str) -> None:
    """A CR or LF would let the token inject HTTP headers: refused, as the AWS SDKs do."""
    if "\r" in token or "\n" in token:
        raise CredentialsError(
            "the container authorization token contains a line break (CR or LF); not sent"
        )


def read_token_file(path: str) -> str:
    """The token in `path`, surrounding whitespace (a trailing newline) removed."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except OSError as error:
        raise CredentialsError(
            f"cannot read the authorization token file {path}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise CredentialsError(f"the authorization token file {path} is not UTF-8 text") from None
    if not token:
        raise CredentialsError(f"the authorization token file {path} is empty")
    return token


def container_credentials_url(env: Mapping[str, str]) -> str | None:
    """The container credentials endpoint the environment names, None if it names none.

    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is a path on the ECS agent (169.254.170.2); the
    host can be changed only through `SYNC_INTERNAL_CONTAINER_CREDENTIALS_HOST`, an internal
    variable for tests, not a documented setting. Otherwise `AWS_CONTAINER_CREDENTIALS_FULL_URI`
    is used if it is https, or plain http to a loopback or AWS link-local address (anything
    else could send credentials requests and tokens to a stranger); CredentialsError if not.
    """
    relative = _value(env, RELATIVE_URI)
    if relative:
        reason = _relative_uri_problem(relative)
        if reason:
            raise CredentialsError(f"{RELATIVE_URI}: {reason}")
        host = _value(env, INTERNAL_CONTAINER_HOST) or ECS_CONTAINER_HOST
        return f"http://{host}{relative}"
    full = _value(env, FULL_URI)
    if full:
        reason = _full_uri_problem(full)
        if reason:
            raise CredentialsError(f"{FULL_URI}: {reason}")
        return full
    return None


def credential_problems(env: Mapping[str, str], source: str = "auto") -> list[tuple[str, str]]:
    """(variable, what is wrong) for start-up validation; never quotes a secret.

    `source`: "auto" (environment keys, else the container endpoint), "environment" (keys
    only) or "ecs" (the container endpoint only: `--credentials-source ecs-container-endpoint`).
    Only what that source would use is checked.
    """
    _check_source(source)
    problems: list[tuple[str, str]] = []
    if source != "ecs":
        key = _value(env, ACCESS_KEY_ID)
        secret = _value(env, SECRET_ACCESS_KEY)
        if secret and not key:
            problems.append((ACCESS_KEY_ID, f"required when {SECRET_ACCESS_KEY} is set"))
        elif key and not secret:
            problems.append(
                (
                    SECRET_ACCESS_KEY,
                    f"required when {ACCESS_KEY_ID} is set (its value is never shown)",
                )
            )
        if key and secret:
            return problems
        if source == "environment":
            if not key and not secret:
                problems.append(
                    (
                        ACCESS_KEY_ID,
                        f"required: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY} "
                        f"(and {SESSION_TOKEN} for temporary credentials)",
                    )
                )
            return problems

    relative = _value(env, RELATIVE_URI)
    full = _value(env, FULL_URI)
    if not relative and not full:
        if source == "ecs":
            problems.append(
                (
                    RELATIVE_URI,
                    "required with the ecs-container-endpoint credentials source: "
                    f"set {RELATIVE_URI} or {FULL_URI}",
                )
            )
        elif not problems:
            problems.append(
                (
                    ACCESS_KEY_ID,
                    f"no credentials found: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, "
                    f"or run where {RELATIVE_URI} or {FULL_URI} is set (ECS, Fargate, EKS)",
                )
            )
        return problems

    if relative:
        reason = _relative_uri_problem(relative)
        if reason:
            problems.append((RELATIVE_URI, reason))
    else:
        reason = _full_uri_problem(full)
        if reason:
            problems.append((FULL_URI, reason))

    token_file = _value(env, AUTHORIZATION_TOKEN_FILE)
    if token_file:
        try:
            check_token(read_token_file(token_file))
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN_FILE, str(error)))
    else:
        token = env.get(AUTHORIZATION_TOKEN, "")
        try:
            check_token(token)
        except CredentialsError as error:
            problems.append((AUTHORIZATION_TOKEN, f"{error} (its value is never shown)"))
    return problems


def provider_from_environment(
    env: Mapping[str, str],
    source: str = "auto",
    *,
    on_refresh: Callable[[Credentials], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> CredentialsProvider:
    """The first source that applies, in the SDKs' order for containers.

    (1) `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (skipped for "ecs");
    (2) `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`; (3) `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (wins) or `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    CredentialsError when none applies: validate with `credential_problems` first.
    """
    _check_source(source)
    if source != "ecs":
        found = environment_credentials(env)
        if found is not None:
            return StaticCredentials(found)
        if source == "environment":
            raise CredentialsError(
                f"no AWS credentials: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}"
            )
    url = container_credentials_url(env)
    if url is None:
        raise CredentialsError(
            f"no AWS credentials: set {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, "
            f"or {RELATIVE_URI} or {FULL_URI}"
        )
    return ContainerCredentials(
        url=url,
        token=env.get(AUTHORIZATION_TOKEN) or None,
        token_file=_value(env, AUTHORIZATION_TOKEN_FILE) or None,
        on_refresh=on_refresh,
        on_failure=on_failure,
    )


def environment_credentials(env: Mapping[str, str]) -> Credentials | None:
    """`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`)."""
    key = env.get(ACCESS_KEY_ID, "").strip()
    secret = env.get(SECRET_ACCESS_KEY, "").strip()
    if not key or not secret:
        return None
    token = env.get(SESSION_TOKEN, "").strip() or None
    return Credentials(key, secret, token)


def _now() -> datetime:
    """Aware UTC: expirations are compared as instants, whatever the local time zone."""
    return datetime.now(UTC)


def _value(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown credentials source {source!r}: one of {', '.join(SOURCES)}")


def _relative_uri_problem(relative: str) -> str | None:
    if not relative.startswith("/"):
        return "a path starting with / (such as /v2/credentials/...)"
    return None


def _full_uri_problem(full: str) -> str | None:
    """Why a FULL_URI is refused (naming only its host), None if it is acceptable."""
    try:
        parts = urlsplit(full)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return f"not a URL: expected {_ALLOWED_HOSTS_TEXT}"
    if parts.scheme not in ("http", "https") or not host:
        return f"not an http:// or https:// URL: expected {_ALLOWED_HOSTS_TEXT}"
    if parts.scheme == "https" or _allowed_http_host(host):
        return None
    return f"host {host!r} is not allowed over plain http: expected {_ALLOWED_HOSTS_TEXT}"


def _allowed_http_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: never resolved, so never trusted
    return address.is_loopback or address in _ALLOWED_HTTP_HOSTS


def _notify(callback: Callable[[_T], None] | None, value: _T, name: str) -> None:
    """Callbacks are for metrics and logs: one that raises must not break credentials."""
    if callback is None:
        return
    try:
        callback(value)
    except Exception as error:
        log.warning("credentials %s callback failed: %s", name, type(error).__name__)
