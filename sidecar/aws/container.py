"""Temporary credentials from the container credentials endpoint (ECS, Fargate, EKS Pod
Identity): one source of refreshing credentials (refreshing.py: refreshed before they expire,
one fetch at a time), fetched over the sidecar's one HTTP client (http.py) and read up to 64 KiB.
Only https, or plain http to a loopback or AWS link-local address, is ever asked: anything
else could send credentials requests and tokens to a stranger. Those addresses are asked
directly, never through a proxy. No redirect is followed (it
would carry the token elsewhere).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp

from .credentials import (
    ECS_CONTAINER_HOST,
    FULL_URI,
    INTERNAL_CONTAINER_HOST,
    RELATIVE_URI,
    Credentials,
    CredentialsError,
    env_value,
    now_utc,
    parse_credentials,
    read_token,
)
from .errors import ResponseTooLarge
from .http import HttpClient, Origin
from .refreshing import RefreshingCredentials

# Plain-http hosts a FULL_URI may name besides loopback: the ECS agent and EKS Pod Identity.
_ALLOWED_HTTP_HOSTS = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_ALLOWED_HOSTS_TEXT = (
    "an https:// URL, or an http:// URL whose host is a loopback address "
    "(127.0.0.0/8, [::1], localhost), 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]"
)
MAX_BODY = 64 * 1024


class ContainerCredentials(RefreshingCredentials):
    """Temporary credentials from the container credentials endpoint (ECS, Fargate, EKS), on
    `http` (the sidecar's one client; without it, a small one of its own, closed by `close`)."""

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
        http: HttpClient | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the container credentials url must be an http:// or https:// URL")
        # What is sent and what logs show: no user info; logs show no query either (either
        # could carry a secret).
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        port = f":{parts.port}" if parts.port is not None else ""
        super().__init__(
            display=f"{parts.scheme}://{host}{port}{parts.path}",
            attempts=attempts,
            on_refresh=on_refresh,
            on_failure=on_failure,
        )
        self._origin = Origin(parts.scheme, f"{host}{port}")
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Loopback and the link-local agents are never reached through a proxy (proxy.py).
        self._direct = _allowed_http_host(parts.hostname)
        self._token = token
        self._token_file = token_file
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http if http is not None else HttpClient(connections=2)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.close()

    def _authorization(self) -> str | None:
        """The token to send, the file re-read every time (it is rotated under our feet)."""
        if self._token_file is not None:
            token: str | None = read_token_file(self._token_file)
        else:
            token = self._token
        if token is not None:
            check_token(token)
        return token

    async def _fetch(self) -> Credentials:
        display = self.display
        headers = {"Accept": "application/json"}
        token = self._authorization()
        if token is not None:
            headers["Authorization"] = token
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._http.exchange(
                    self._origin,
                    "GET",
                    self._target,
                    headers,
                    limit=MAX_BODY,
                    error_limit=0,
                    direct=self._direct,
                )
        except TimeoutError:
            raise CredentialsError(f"{display} did not answer within {self._timeout:g} s") from None
        except ResponseTooLarge:
            raise CredentialsError(f"{display} answered with an oversized body") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            # Our own words only: aiohttp's messages may quote the full URL or a header.
            reason = type(error).__name__
            if isinstance(error, OSError) and error.strerror:
                reason += f": {error.strerror}"
            raise CredentialsError(f"{display} unreachable ({reason})") from None
        if answer.status != 200:
            raise CredentialsError(f"{display} answered HTTP {answer.status}")
        creds = parse_credentials(answer.body, display)
        assert creds.expiration is not None
        if creds.expiration <= now_utc():
            raise CredentialsError(
                f"{display} handed out credentials that expired at {creds.expiration.isoformat()}"
            )
        return creds


def check_token(token: str) -> None:
    """A CR or LF would let the token inject HTTP headers: refused, as the AWS SDKs do."""
    if "\r" in token or "\n" in token:
        raise CredentialsError(
            "the container authorization token contains a line break (CR or LF); not sent"
        )


def read_token_file(path: str) -> str:
    """The token in `path`, surrounding whitespace (a trailing newline) removed."""
    return read_token(path, "authorization token file")


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
