"""Temporary credentials refreshed before they expire, whatever hands them out. A source of
temporary credentials (the container endpoint today: container.py; web identity, instance
metadata or an assumed role next) is a subclass that says how to fetch once (`_fetch`) and how
to name itself in logs (`display`); everything else is written here once.

Modelled on aiobotocore's refreshable credentials: they are refreshed *before* they expire, at
`expiration - min(15 min, half the lifetime they had when fetched)`, so AWS never sees expired
ones; one refresh runs at a time and concurrent callers share its outcome. A refresh makes up to
`attempts` fetches, waiting backoff.py's `CREDENTIALS` in between. When every fetch fails, the
cached credentials are used for as long as they are valid (tried again after a short cooldown
rather than on every call); expired credentials are never handed out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..backoff import CREDENTIALS
from .credentials import Credentials, CredentialsError, notify, now_utc

log = logging.getLogger("sidecar.credentials")


class RefreshingCredentials:
    """A `CredentialsProvider` for credentials that expire (see the module docstring)."""

    _REFRESH_LEAD = timedelta(minutes=15)
    # Inside this window callers wait for a running refresh instead of using the old ones.
    _MANDATORY_LEAD = timedelta(minutes=10)
    _COOLDOWN = timedelta(seconds=5)

    def __init__(
        self,
        *,
        display: str,
        attempts: int = 3,
        on_refresh: Callable[[Credentials], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.display = display  # where they come from, for logs: never a secret
        self._attempts = max(1, attempts)
        self._on_refresh = on_refresh
        self._on_failure = on_failure
        self._lock = asyncio.Lock()
        self._credentials: Credentials | None = None
        self._invalidated = False
        never = datetime.min.replace(tzinfo=UTC)
        self._refresh_at = never
        self._mandatory_at = never
        self._generation = 0  # bumped when a refresh ends, so waiters can share its outcome
        self._last_error = ""

    async def _fetch(self) -> Credentials:
        """One fetch from the source: credentials with an expiration, or CredentialsError
        (whose message names the source and never a secret)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        expiration = self.expiration
        shown = expiration.isoformat() if expiration is not None else None
        return f"{type(self).__name__}(url={self.display!r}, expiration={shown!r})"

    @property
    def expiration(self) -> datetime | None:
        return self._credentials.expiration if self._credentials is not None else None

    @property
    def refresh_at(self) -> datetime | None:
        """When the next refresh is due (aware UTC), None before the first fetch."""
        return self._refresh_at if self._credentials is not None else None

    def valid(self) -> bool:
        """Held, not rejected by AWS since, and not expired."""
        return self._usable(now_utc()) is not None

    def invalidate(self) -> None:
        """AWS rejected them: the next `get` fetches, and will not fall back on these."""
        self._invalidated = True

    async def close(self) -> None:
        """Nothing of its own to release (a subclass may have)."""

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
        """Under the lock: `attempts` fetches with back-off, then the cache or an error."""
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
            self.display,
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
