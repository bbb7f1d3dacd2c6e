"""Where AWS credentials come from, behind one small interface the S3 client depends on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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

    async def close(self) -> None: ...


class StaticCredentials:
    """Credentials fixed for the life of the process (environment variables)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    async def get(self) -> Credentials:
        return self._credentials

    def invalidate(self) -> None:
        """Nothing to refresh: a rejected static key stays rejected."""

    async def close(self) -> None:
        return None


def environment_credentials(env: Mapping[str, str]) -> Credentials | None:
    """`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`)."""
    key = env.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not key or not secret:
        return None
    token = env.get("AWS_SESSION_TOKEN", "").strip() or None
    return Credentials(key, secret, token)
