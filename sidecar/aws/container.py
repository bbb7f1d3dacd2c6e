"""Temporary credentials from the container credentials endpoint (ECS, Fargate, EKS Pod
Identity), refreshed before they expire, under a lock so a burst of requests makes one fetch.
Only https, or plain http to a loopback or AWS link-local address, is ever asked: anything
else could send credentials requests and tokens to a stranger.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp

from ..backoff import CREDENTIALS
from .credentials import (
    ECS_CONTAINER_HOST,
    FULL_URI,
    INTERNAL_CONTAINER_HOST,
    RELATIVE_URI,
    Credentials,
    CredentialsError,
    env_value,
    notify,
    now_utc,
    parse_credentials,
)

log = logging.getLogger("sidecar.credentials")

# Plain-http hosts a FULL_URI may name besides loopback: the ECS agent and EKS Pod Identity.
_ALLOWED_HTTP_HOSTS = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_ALLOWED_HOSTS_TEXT = (
    "an https:// URL, or an http:// URL whose host is a loopback address "
    "(127.0.0.0/8, [::1], localhost), 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]"
)


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
        return self._usable(now_utc()) is not None

    def invalidate(self) -> None:
        """S3 rejected them: the next `get` fetches, and will not fall back on these."""
        self._invalidated = True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self) -> Credentials:
        now = now_utc()
        current = self._usable(now)
        if current is not None and (
            now < self._refresh_at or (self._lock.locked() and now < self._mandatory_at)
        ):
            # Fresh, or a refresh is running and these are not close enough to expiry to wait.
            return current
        generation = self._generation
        async with self._lock:
            now = now_utc()
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
                await asyncio.sleep(CREDENTIALS.delay(attempt - 1))
            try:
                creds = await self._fetch()
            except CredentialsError as failure:
                error = failure
                log.debug("credentials attempt %d/%d failed: %s", attempt, self._attempts, error)
                notify(self._on_failure, failure, "on_failure")
                continue
            self._store(creds)
            return creds
        return self._failed(error)

    def _store(self, creds: Credentials) -> None:
        assert creds.expiration is not None
        now = now_utc()
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
        notify(self._on_refresh, creds, "on_refresh")

    def _failed(self, error: CredentialsError) -> Credentials:
        now = now_utc()
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
        if creds.expiration <= now_utc():
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
    relative = env_value(env, RELATIVE_URI)
    if relative:
        reason = relative_uri_problem(relative)
        if reason:
            raise CredentialsError(f"{RELATIVE_URI}: {reason}")
        host = env_value(env, INTERNAL_CONTAINER_HOST) or ECS_CONTAINER_HOST
        return f"http://{host}{relative}"
    full = env_value(env, FULL_URI)
    if full:
        reason = full_uri_problem(full)
        if reason:
            raise CredentialsError(f"{FULL_URI}: {reason}")
        return full
    return None


def relative_uri_problem(relative: str) -> str | None:
    if not relative.startswith("/"):
        return "a path starting with / (such as /v2/credentials/...)"
    return None


def full_uri_problem(full: str) -> str | None:
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
