"""Credentials and where they come from, behind one small interface the request path depends
on (`CredentialsProvider`): keys in the environment (`StaticCredentials`), or temporary ones
refreshed before they expire (refreshing.py), such as the container credentials endpoint's
(`ContainerCredentials`, container.py); chosen by `chain.py` in the order the AWS SDKs try them
inside a container. Another source is one more class and one more step in the chain. A
provider that fetches over HTTP is built on the sidecar's one HTTP client: the `Syncer` takes a
`CredentialsFactory` that builds it on that client. Secrets (secret keys, session tokens,
authorization tokens) never appear in logs, exceptions or reprs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from .http import HttpClient

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


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None  # aware UTC; None when they do not expire


class CredentialsError(Exception):
    """Credentials cannot be had right now (the message never contains a secret)."""


@runtime_checkable
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


# Builds a provider on the sidecar's one HTTP client (the provider is then the builder's to close).
CredentialsFactory = Callable[["HttpClient"], CredentialsProvider]


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
        return expiration is None or now_utc() < expiration

    @property
    def expiration(self) -> datetime | None:
        return self._credentials.expiration

    async def close(self) -> None:
        return None


def parse_credentials(body: bytes, source: str = "the endpoint") -> Credentials:
    """The endpoint's JSON; errors name the missing fields, never a value."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
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


def environment_credentials(env: Mapping[str, str]) -> Credentials | None:
    """`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`)."""
    key = env.get(ACCESS_KEY_ID, "").strip()
    secret = env.get(SECRET_ACCESS_KEY, "").strip()
    if not key or not secret:
        return None
    token = env.get(SESSION_TOKEN, "").strip() or None
    return Credentials(key, secret, token)


def now_utc() -> datetime:
    """Aware UTC: expirations are compared as instants, whatever the local time zone."""
    return datetime.now(UTC)


def env_value(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def notify(callback: Callable[[_T], None] | None, value: _T, name: str) -> None:
    """Callbacks are for metrics and logs: one that raises must not break credentials."""
    if callback is None:
        return
    try:
        callback(value)
    except Exception as error:
        log.warning("credentials %s callback failed: %s", name, type(error).__name__)


def read_token(path: str, what: str) -> str:
    """The token in the file at `path`, surrounding whitespace (a trailing newline) removed;
    a CredentialsError naming it as `what` when it cannot be read, is not text or is empty."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except OSError as error:
        reason = error.strerror or error
        raise CredentialsError(f"cannot read the {what} {path}: {reason}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"the {what} {path} is not UTF-8 text") from None
    if not token:
        raise CredentialsError(f"the {what} {path} is empty")
    return token
