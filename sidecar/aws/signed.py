"""The one signed-request path to AWS, for every service: sign, send, classify, retry, read
within bounds. What differs between services is a small `Rules` value (S3's XML error
documents: s3/errors.py; SQS's JSON protocol errors: sqs.py), never a second loop.

- Sign: SigV4 (sigv4.py) with what the credentials provider hands out, at the local clock
  corrected by the offset the service reported (a `skewed` refusal: from its `Date` header).
- Send: over the one HTTP client (http.py). A body in memory with the answer read whole goes
  on `exchange` under one deadline; a streamed body (`BodyFactory`) or a streamed answer
  (`stream`) goes through the session, with a deadline per read however long it takes.
- Classify: the service's `Rules` read a refusal (any status not asked for as `ok`): send it
  again, refresh the credentials once and send it again, or raise the service's own error.
- Retry: connection failures, what the rules call retryable, and credentials that cannot be
  had, up to `attempts` sends, waiting the `retry` back-off (backoff.py) in between. A body
  that gave up because its file changed (`BodyChanged`) is never sent again.
- Read within bounds: an answer asked for is read up to `limit` (over it, `ResponseTooLarge`,
  not retried here: the same endpoint would most likely answer the same, and the caller's own
  retry comes later); a refusal's document up to `error_limit`, past which only its status
  counts.

Metrics (requests by status, retries by reason, durations), the reachability callback and the
outage record (outage.py: what is retried and why, said once when requests begin to fail and
once when the service answers again) are reported for the paths that are given them (S3's);
SQS's reports none, as before (its caller, the change feed, logs its own transitions).

Cost: about 0.05 ms of CPU per request on top of the HTTP client's (bench/request_cpu.py: a
1 KiB PUT 0.32 ms in all), of which signing is 0.012 (its daily key cached, sigv4.py); the rest
is the headers' dicts, two counters and a histogram, and the answer's headers read by the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp

from ..backoff import REQUEST, Backoff
from ..metrics import Metrics
from .credentials import CredentialsError, CredentialsProvider
from .errors import BodyChanged, ResponseTooLarge, Unavailable, describe
from .http import USER_AGENT, Answer, HttpClient, Origin, read_bounded, read_capped
from .outage import Outage
from .sigv4 import EMPTY_SHA256, canonical_query_string, sign_request

log = logging.getLogger("sidecar.aws")

BodyFactory = Callable[[], AsyncIterator[bytes]]
Body = bytes | BodyFactory | None

SHORT_SECONDS = 120.0  # a request with its body in memory and its answer read whole


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a service's refusal says: its code and message, and what to do about it."""

    code: str
    message: str
    retry: bool = False  # worth sending again after a back-off (5xx, throttling)
    refresh: bool = False  # the credentials were rejected: fetch new ones, send again once
    skewed: bool = False  # our clock is off: correct it from the answer's `Date`


class Rules(Protocol):
    """One service's part of the path: its SigV4 name, how it refuses, what it raises."""

    @property
    def service(self) -> str: ...

    def refusal(self, method: str, answer: Answer) -> Refusal: ...

    def error(self, operation: str, subject: str, status: int, refusal: Refusal) -> Exception: ...


class _BodyWatch:
    """Tells a failed request apart from a body that abandoned itself (BodyChanged)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: BodyChanged | None = None

    def wrap(self, factory: BodyFactory) -> AsyncIterator[bytes]:
        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in factory():
                    yield chunk
            except BodyChanged as error:
                self.changed = error
                raise

        return body()


class SignedRequests:
    """Signs, sends, classifies and retries requests to one service at one origin."""

    def __init__(
        self,
        *,
        http: HttpClient,
        origin: Origin,
        region: str,
        credentials: CredentialsProvider,
        rules: Rules,
        limit: int,
        error_limit: int,
        attempts: int = 8,
        retry: Backoff = REQUEST,
        metrics: Metrics | None = None,
        on_reachable: Callable[[bool], None] | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.origin = origin
        self.credentials = credentials
        self._http = http
        self._region = region
        self._rules = rules
        self._limit = limit
        self._error_limit = error_limit
        self._attempts = attempts
        self._retry = retry
        self._metrics = metrics
        self._on_reachable = on_reachable or _nobody
        self._outage = outage
        self._clock_offset = timedelta(0)

    async def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        subject: str = "",
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        payload_hash: str = EMPTY_SHA256,
        ok: tuple[int, ...] = (200,),
        seconds: float = SHORT_SECONDS,
        before_retry: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer:
        """Send, retrying what may be retried; the whole answer (read up to its bound).
        `subject` names what the request is about in errors (a key, a queue). `before_retry`
        runs before each send after the first, and may raise to send no more (a condition
        checked by a HEAD is looked at again: s3/conditions.py)."""
        answer = await self._send(
            operation,
            method,
            path,
            subject=subject,
            query=query,
            headers=headers,
            body=body,
            payload_hash=payload_hash,
            ok=ok,
            seconds=seconds,
            before_retry=before_retry,
        )
        assert isinstance(answer, Answer)
        return answer

    async def stream(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        subject: str = "",
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> aiohttp.ClientResponse:
        """Send, retrying what may be retried; the answer unread (the caller releases it)."""
        response = await self._send(
            operation, method, path, subject=subject, headers=headers, ok=ok, seconds=None
        )
        assert isinstance(response, aiohttp.ClientResponse)
        return response

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        subject: str,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None,
        body: Body = None,
        payload_hash: str = EMPTY_SHA256,
        ok: tuple[int, ...],
        seconds: float | None,  # None: the answer is streamed to the caller
        before_retry: Callable[[], Awaitable[None]] | None = None,
    ) -> Answer | aiohttp.ClientResponse:
        query_string = canonical_query_string(query)
        target = f"{path}?{query_string}" if query_string else path
        headers = dict(headers or {})
        host = self.origin.host
        refreshed = False
        attempt = 0
        tries = _Tries()  # whether S3 answered: the outage record is told at the end
        try:
            while True:
                attempt += 1
                if attempt > 1 and before_retry is not None:
                    await before_retry()
                try:
                    creds = await self.credentials.get()
                except CredentialsError as error:
                    if attempt >= self._attempts:
                        raise Unavailable(f"{operation}: no credentials: {error}") from error
                    self._count_retry(operation, "credentials")
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                signed = sign_request(
                    method=method,
                    host=host,
                    path=path,
                    query=query_string,
                    headers=headers,
                    payload_hash=payload_hash,
                    access_key_id=creds.access_key_id,
                    secret_access_key=creds.secret_access_key,
                    session_token=creds.session_token,
                    region=self._region,
                    now=datetime.now(UTC) + self._clock_offset,
                    service=self._rules.service,
                )
                send_headers = {"Host": host, "User-Agent": USER_AGENT, **headers, **signed}
                watch: _BodyWatch | None = None
                started = time.monotonic()
                try:
                    if callable(body):
                        watch = _BodyWatch()
                        sent: Answer | aiohttp.ClientResponse = await self._http.open(
                            self.origin, method, target, send_headers, data=watch.wrap(body)
                        )
                    elif seconds is None:
                        sent = await self._http.open(
                            self.origin, method, target, send_headers, data=body
                        )
                    else:
                        async with asyncio.timeout(seconds):
                            sent = await self._http.exchange(
                                self.origin,
                                method,
                                target,
                                send_headers,
                                body,
                                ok=ok,
                                limit=self._limit,
                                error_limit=self._error_limit,
                            )
                except asyncio.CancelledError:
                    raise
                except ResponseTooLarge as error:
                    raise _too_large(operation, subject, error) from None
                except Exception as error:
                    if watch is not None and watch.changed is not None:
                        raise watch.changed from None
                    if not isinstance(error, aiohttp.ClientError | TimeoutError | OSError):
                        raise
                    self._count(operation, "error")
                    self._on_reachable(False)
                    if attempt >= self._attempts:
                        raise Unavailable(f"{operation} {subject!r}: {describe(error)}") from error
                    self._count_retry(operation, "connection")
                    self._failed(tries, operation, f"is not answering ({describe(error)})", attempt)
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                if self._metrics is not None:
                    metrics = self._metrics
                    metrics.observe(
                        metrics.s3_request_duration, operation, value=time.monotonic() - started
                    )
                self._count(operation, str(sent.status))
                self._on_reachable(True)
                if isinstance(sent, Answer):
                    if sent.status in ok:
                        tries.answered = True
                        return sent
                    answer = sent
                elif sent.status in ok:
                    if seconds is None:
                        tries.answered = True
                        return sent  # streamed to the caller
                    try:
                        content = await read_capped(sent, self._limit)
                    except ResponseTooLarge as error:
                        raise _too_large(operation, subject, error) from None
                    except (aiohttp.ClientError, TimeoutError) as error:
                        sent.release()
                        if attempt >= self._attempts:
                            raise Unavailable(f"{operation}: {describe(error)}") from error
                        self._count_retry(operation, "connection")
                        why = f"is not answering (its answer cut: {describe(error)})"
                        self._failed(tries, operation, why, attempt)
                        await asyncio.sleep(self._retry.delay(attempt))
                        continue
                    tries.answered = True
                    return Answer(sent.status, sent.headers, content)
                else:
                    answer = await _refusal_of(sent, self._error_limit)
                refusal = self._rules.refusal(method, answer)
                if refusal.refresh and not refreshed:
                    refreshed = True
                    self.credentials.invalidate()
                    self._count_retry(operation, "credentials")
                    continue
                if refusal.skewed:
                    offset = _clock_offset(answer.headers.get("Date"), self._rules.service)
                    self._clock_offset = self._clock_offset if offset is None else offset
                if refusal.retry and attempt < self._attempts:
                    self._count_retry(operation, refusal.code or str(answer.status))
                    why = f"answers HTTP {answer.status} {refusal.code}".rstrip()
                    self._failed(tries, operation, why, attempt)
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                if not refusal.retry:
                    tries.answered = True  # a refusal it means (404, 412, 403): S3 answers
                raise self._rules.error(operation, subject, answer.status, refusal)
        finally:
            if self._outage is not None:
                self._outage.ended(tries, tries.answered)

    def _count(self, operation: str, status: str) -> None:
        if self._metrics is not None:
            self._metrics.inc(self._metrics.s3_requests, operation, status)

    def _count_retry(self, operation: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.inc(self._metrics.s3_retries, operation, reason)

    def _failed(self, tries: _Tries, operation: str, why: str, attempt: int) -> None:
        if self._outage is not None:  # try `attempt` failed, and is retried
            self._outage.failed(
                tries, operation, why, attempt=attempt, attempts=self._attempts, retry=self._retry
            )


def _clock_offset(date: str | None, service: str) -> timedelta | None:
    """How far the clock is behind the server's `Date` (said), None when it says no date."""
    try:
        server = parsedate_to_datetime(date or "")
    except (TypeError, ValueError):
        return None
    offset = server - datetime.now(UTC)
    log.warning("%s reports clock skew; signing with an offset of %s", service.upper(), offset)
    return offset


def _nobody(reachable: bool) -> None:
    """Told whether the service answered, when no one else is."""


class _Tries:
    """One request's tries, as the outage record knows them (its token)."""

    __slots__ = ("answered",)

    def __init__(self) -> None:
        self.answered = False


def _too_large(operation: str, subject: str, error: ResponseTooLarge) -> ResponseTooLarge:
    """An answer over its bound, named by the operation."""
    return ResponseTooLarge(f"{operation} {subject!r}", error.limit, error.announced)


async def _refusal_of(response: aiohttp.ClientResponse, limit: int) -> Answer:
    """A streamed request's refusal, its document read up to `limit` (else `oversized`)."""
    oversized = False
    try:
        content = await read_bounded(response.content, limit, announced=response.content_length)
    except ResponseTooLarge:
        content, oversized = b"", True
        response.close()
    except (aiohttp.ClientError, TimeoutError):
        content = b""
    finally:
        response.release()
    return Answer(response.status, response.headers, content, oversized)
