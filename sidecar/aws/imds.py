"""Temporary credentials from EC2 instance metadata (an instance profile: ECS on EC2 without a
task role, a plain EC2 host), with IMDSv2 only: a session token got with `PUT /latest/api/token`
and sent with every `GET`. One source of refreshing credentials (refreshing.py), on the sidecar's
one HTTP client, never through a proxy, each answer read up to 64 KiB, each request bounded by
`timeout` (1 s, as the SDKs: a host without metadata is told quickly).

Where: `http://169.254.169.254`, `http://[fd00:ec2::254]` with
`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`, or `AWS_EC2_METADATA_SERVICE_ENDPOINT` (for tests
and odd networks). `AWS_EC2_METADATA_DISABLED=true` takes it out of the chain.

IMDSv1 (GETs without a token) is never used: an instance that requires IMDSv2 refuses it, and
one that allows it can serve v2 too. The PUT's answer crosses one network hop per router: from
a container on a bridge network it needs the instance's `HttpPutResponseHopLimit` at 2 (the
default of 1 drops it, and the fetch times out; the README says so).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

import aiohttp

from .credentials import Credentials, CredentialsError, env_value, now_utc, parse_credentials
from .errors import ResponseTooLarge
from .http import HttpClient, Origin
from .refreshing import RefreshingCredentials

DISABLED = "AWS_EC2_METADATA_DISABLED"
ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
ENDPOINT_MODE = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
IPV4_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"

TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path
ROLES_PATH = "/latest/meta-data/iam/security-credentials/"
TOKEN_TTL = 21600  # seconds: the longest IMDS allows
MAX_BODY = 64 * 1024


def metadata_disabled(env: Mapping[str, str]) -> bool:
    return env_value(env, DISABLED).lower() == "true"


def metadata_endpoint(env: Mapping[str, str]) -> str:
    """The endpoint the environment names (ValueError naming the variable if it is wrong)."""
    endpoint = env_value(env, ENDPOINT)
    if endpoint:
        try:
            parts = urlsplit(endpoint)
            _ = parts.port
        except ValueError:
            raise ValueError(f"{ENDPOINT}: not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{ENDPOINT}: expected an http:// URL such as {IPV4_ENDPOINT}")
        return endpoint.rstrip("/")
    mode = env_value(env, ENDPOINT_MODE) or "IPv4"
    if mode.lower() == "ipv4":
        return IPV4_ENDPOINT
    if mode.lower() == "ipv6":
        return IPV6_ENDPOINT
    raise ValueError(f"{ENDPOINT_MODE}: expected IPv4 or IPv6")


class InstanceMetadataCredentials(RefreshingCredentials):
    """The instance profile's role credentials, through IMDSv2 (see the module docstring)."""

    def __init__(
        self,
        *,
        http: HttpClient,
        endpoint: str = IPV4_ENDPOINT,
        timeout: float = 1.0,
        attempts: int = 3,
        on_refresh: Callable[[Credentials], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        host = parts.netloc.rsplit("@", 1)[-1]
        super().__init__(
            display=f"EC2 instance metadata at {parts.scheme}://{host}",
            attempts=attempts,
            on_refresh=on_refresh,
            on_failure=on_failure,
        )
        self._origin = Origin(parts.scheme, host)
        self._base = parts.path.rstrip("/")
        self._http = http
        self._timeout = timeout
        self._token: str | None = None
        self._token_until = 0.0  # time.monotonic() past which the token is not used

    async def _fetch(self) -> Credentials:
        for _ in range(2):
            token = await self._session_token()
            status, body = await self._get(ROLES_PATH, token)
            if status == 401:  # the token expired or was revoked: get another, once
                self._token = None
                continue
            if status == 404:
                raise CredentialsError(f"{self.display}: the instance has no IAM role")
            if status != 200:
                raise CredentialsError(f"{self.display} answered HTTP {status} for the role")
            role = body.decode("utf-8", "replace").strip().splitlines()[0:1]
            if not role or not role[0].strip():
                raise CredentialsError(f"{self.display}: the instance has no IAM role")
            # The role's name goes into the path: quoted, so no answer can bend the request.
            status, body = await self._get(ROLES_PATH + quote(role[0].strip(), safe=""), token)
            if status == 401:
                self._token = None
                continue
            if status != 200:
                raise CredentialsError(
                    f"{self.display} answered HTTP {status} for the role's credentials"
                )
            creds = parse_credentials(body, self.display)
            assert creds.expiration is not None
            if creds.expiration <= now_utc():
                raise CredentialsError(
                    f"{self.display} handed out credentials that expired at "
                    f"{creds.expiration.isoformat()}"
                )
            return creds
        raise CredentialsError(f"{self.display} refused its own session token (HTTP 401)")

    async def _session_token(self) -> str:
        if self._token is not None and time.monotonic() < self._token_until:
            return self._token
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)}
        began = time.monotonic()
        status, body = await self._request("PUT", TOKEN_PATH, headers)
        if status != 200:
            raise CredentialsError(
                f"{self.display} refused an IMDSv2 session token (HTTP {status})"
            )
        token = body.decode("ascii", "replace").strip()
        if not token or any(c in token for c in "\r\n"):
            raise CredentialsError(f"{self.display} answered with an unusable session token")
        self._token = token
        self._token_until = began + TOKEN_TTL - 60
        return token

    async def _get(self, path: str, token: str) -> tuple[int, bytes]:
        return await self._request("GET", path, {"X-aws-ec2-metadata-token": token})

    async def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._http.exchange(
                    self._origin,
                    method,
                    self._base + path,
                    headers,
                    b"" if method == "PUT" else None,
                    limit=MAX_BODY,
                    error_limit=0,
                    direct=True,
                )
        except TimeoutError:
            raise CredentialsError(
                f"{self.display} did not answer within {self._timeout:g} s (from a container "
                "on EC2, the instance's HttpPutResponseHopLimit must be 2)"
            ) from None
        except ResponseTooLarge:
            raise CredentialsError(f"{self.display} answered with an oversized body") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            reason = type(error).__name__
            if isinstance(error, OSError) and error.strerror:
                reason += f": {error.strerror}"
            raise CredentialsError(f"{self.display} unreachable ({reason})") from None
        return answer.status, answer.body
