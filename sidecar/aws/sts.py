"""STS, for credentials only: where it is (`sts_origin`: `AWS_ENDPOINT_URL_STS`, then
`AWS_ENDPOINT_URL`, else the regional endpoint, as the SDKs resolve it), its two calls, and the
two sources of refreshing credentials (refreshing.py) built on them:

- `WebIdentityCredentials`: `AssumeRoleWithWebIdentity` with the token in
  `AWS_WEB_IDENTITY_TOKEN_FILE` (re-read at every fetch: EKS rotates it), for `AWS_ROLE_ARN`.
  The call is not signed (the token is the proof), so it goes on the one HTTP client directly.
- `AssumedRoleCredentials`: `AssumeRole` signed with another provider's credentials (any source,
  itself refreshing or not), on the one signed-request path (signed.py) with STS's rules: the
  role of a profile (`role_arn` + `source_profile`) and `SYNC_ROLE_ARN` on top of any source.

Both go through the proxy the environment names (STS is an AWS service like S3), never to a
link-local address. Answers are XML documents read up to 64 KiB; errors name the call, the
role and the endpoint, and never quote a token or a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

import aiohttp

from .credentials import (
    Credentials,
    CredentialsError,
    CredentialsProvider,
    env_value,
    now_utc,
    parse_expiration,
    read_token,
)
from .errors import ResponseTooLarge, Unavailable, describe
from .http import Answer, HttpClient, Origin
from .refreshing import RefreshingCredentials
from .signed import Refusal, SignedRequests

STS_ENDPOINT_URL = "AWS_ENDPOINT_URL_STS"
ENDPOINT_URL = "AWS_ENDPOINT_URL"
WEB_IDENTITY_TOKEN_FILE = "AWS_WEB_IDENTITY_TOKEN_FILE"  # noqa: S105 - a variable's name
ROLE_ARN = "AWS_ROLE_ARN"
ROLE_SESSION_NAME = "AWS_ROLE_SESSION_NAME"

MAX_BODY = 64 * 1024
VERSION = "2011-06-15"
DURATION = 3600  # seconds asked for: every role allows at least one hour
_REFRESH_CODES = ("ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch")


def sts_origin(env: Mapping[str, str], region: str) -> Origin:
    """Where STS is: `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`, else the regional endpoint
    (`https://sts.<region>.amazonaws.com`, `.com.cn` in China, as the SDKs default to).
    ValueError naming the variable when one is set but is not an http(s) URL."""
    for name in (STS_ENDPOINT_URL, ENDPOINT_URL):
        value = env_value(env, name)
        if value:
            return endpoint_origin(value, name)
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return Origin("https", f"sts.{region}.{suffix}")


def endpoint_origin(url: str, name: str) -> Origin:
    """An `AWS_ENDPOINT_URL*` value as an origin (scheme and host, no path)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{name}: not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: expected an http:// or https:// URL such as https://sts.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{name}: expected a URL without a path or query")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = 443 if parts.scheme == "https" else 80
    return Origin(parts.scheme, host if port in (None, default) else f"{host}:{port}")


def default_session_name() -> str:
    return f"s3sync-sidecar-{int(time.time())}"


class StsRules:
    """STS's refusals: `<ErrorResponse><Error><Code>`; throttling and 5xx retried."""

    service = "sts"

    def refusal(self, method: str, answer: Answer) -> Refusal:
        code, message = _error(answer.body, answer.status)
        return Refusal(
            code,
            message,
            retry=answer.status >= 500 or answer.status == 429 or "Throttl" in code,
            refresh=code in _REFRESH_CODES,
        )

    def error(self, operation: str, subject: str, status: int, refusal: Refusal) -> Exception:
        return CredentialsError(
            f"STS {operation} for {subject} refused (HTTP {status} {refusal.code}: "
            f"{refusal.message[:300]})"
        )


STS_RULES = StsRules()


class WebIdentityCredentials(RefreshingCredentials):
    """`AssumeRoleWithWebIdentity` (IRSA on EKS, any OIDC provider): the token file re-read at
    every fetch, the call unsigned, each answer's credentials refreshed before they expire."""

    def __init__(
        self,
        *,
        http: HttpClient,
        origin: Origin,
        role_arn: str,
        token_file: str,
        session_name: str | None = None,
        timeout: float = 10.0,
        on_refresh: Callable[[Credentials], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(
            display=f"web identity ({role_arn} through STS at {origin.scheme}://{origin.host})",
            on_refresh=on_refresh,
            on_failure=on_failure,
        )
        self._http = http
        self._origin = origin
        self._role_arn = role_arn
        self._token_file = token_file
        self._session_name = session_name or default_session_name()
        self._timeout = timeout

    async def _fetch(self) -> Credentials:
        token = read_web_identity_token(self._token_file)
        body = urlencode(
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": VERSION,
                "RoleArn": self._role_arn,
                "RoleSessionName": self._session_name,
                "WebIdentityToken": token,
                "DurationSeconds": str(DURATION),
            }
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        what = f"STS AssumeRoleWithWebIdentity for {self._role_arn}"
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._http.exchange(
                    self._origin, "POST", "/", headers, body, limit=MAX_BODY, error_limit=MAX_BODY
                )
        except TimeoutError:
            raise CredentialsError(f"{what}: no answer within {self._timeout:g} s") from None
        except ResponseTooLarge:
            raise CredentialsError(f"{what}: an oversized answer") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise CredentialsError(f"{what}: unreachable ({type(error).__name__})") from None
        if answer.status != 200:
            refusal = STS_RULES.refusal("POST", answer)
            raise STS_RULES.error(
                "AssumeRoleWithWebIdentity", self._role_arn, answer.status, refusal
            )
        return parse_assumed_credentials(answer.body, what)


class AssumedRoleCredentials(RefreshingCredentials):
    """`AssumeRole` into `role_arn`, signed with `source`'s credentials: a profile's role, or
    `SYNC_ROLE_ARN` on top of whichever source the chain found (for a bucket in another
    account). The source is closed with it."""

    def __init__(
        self,
        *,
        http: HttpClient,
        origin: Origin,
        region: str,
        source: CredentialsProvider,
        role_arn: str,
        external_id: str | None = None,
        session_name: str | None = None,
        on_refresh: Callable[[Credentials], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        super().__init__(
            display=f"the role {role_arn} (STS at {origin.scheme}://{origin.host})",
            on_refresh=on_refresh,
            on_failure=on_failure,
        )
        self.source = source
        self._role_arn = role_arn
        self._external_id = external_id
        self._session_name = session_name or default_session_name()
        self._requests = SignedRequests(
            http=http,
            origin=origin,
            region=region,
            credentials=source,
            rules=STS_RULES,
            limit=MAX_BODY,
            error_limit=MAX_BODY,
            attempts=2,  # the refresh makes its own attempts (refreshing.py)
        )

    async def close(self) -> None:
        await self.source.close()

    async def _fetch(self) -> Credentials:
        fields = {
            "Action": "AssumeRole",
            "Version": VERSION,
            "RoleArn": self._role_arn,
            "RoleSessionName": self._session_name,
            "DurationSeconds": str(DURATION),
        }
        if self._external_id:
            fields["ExternalId"] = self._external_id
        body = urlencode(fields).encode()
        what = f"STS AssumeRole for {self._role_arn}"
        try:
            answer = await self._requests.request(
                "AssumeRole",
                "POST",
                "/",
                subject=self._role_arn,
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                body=body,
                payload_hash=hashlib.sha256(body).hexdigest(),
                seconds=15.0,
            )
        except Unavailable as error:
            raise CredentialsError(f"{what}: {describe(error)}") from None
        return parse_assumed_credentials(answer.body, what)


def read_web_identity_token(path: str) -> str:
    """The token in `path` (surrounding whitespace removed); CredentialsError naming the file."""
    return read_token(path, "web identity token file")


def parse_assumed_credentials(body: bytes, what: str) -> Credentials:
    """The `<Credentials>` of an AssumeRole* answer; errors name what is missing, never a value."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - stdlib expat: no external entities, bounded
    except ET.ParseError:
        raise CredentialsError(f"{what}: an answer that is not XML") from None
    found: dict[str, str] = {}
    for element in root.iter():
        if _local(element.tag) == "Credentials":
            found = {_local(child.tag): (child.text or "").strip() for child in element}
            break
    names = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    missing = [name for name in names if not found.get(name)]
    if missing:
        raise CredentialsError(f"{what}: an answer without {', '.join(missing)}")
    expiration = parse_expiration(found["Expiration"], what)
    if expiration <= now_utc():
        raise CredentialsError(f"{what}: credentials that expired at {expiration.isoformat()}")
    return Credentials(
        found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"], expiration
    )


def _error(body: bytes, status: int) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return f"HTTP{status}", f"HTTP {status}"
    fields: dict[str, str] = {}
    for element in root.iter():
        if _local(element.tag) == "Error":
            fields = {_local(child.tag): (child.text or "").strip() for child in element}
            break
    return fields.get("Code") or f"HTTP{status}", fields.get("Message") or f"HTTP {status}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
