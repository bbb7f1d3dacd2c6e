"""The one request path of `S3Client`'s operations: `s3_requests`, the signed-request path to an S3
endpoint (aws/signed.py with S3's rules and bounds, s3/errors.py), and `S3Requests`, the base
every operation sends through: the headers every request carries (`request_headers`: requester
pays), the key's path on the endpoint, what every write must say (`write_headers`, headers.py),
and a write's conditions (`_guarded`, with the HEAD that checks them where the endpoint does not
honour them: conditions.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from .. import checksums
from ..aws.credentials import CredentialsProvider
from ..aws.http import Answer, HttpClient
from ..aws.outage import Outage
from ..aws.signed import SignedRequests
from ..backoff import REQUEST, Backoff
from ..metrics import Metrics
from .answers import ObjectHead
from .conditions import Conditions, Look
from .endpoint import Endpoint
from .errors import ERROR_DOCUMENT_LIMIT, RESULT_LIMIT, S3_RULES, NotFound

Reply = Answer  # a whole answer: status, headers, body


def s3_requests(
    http: HttpClient,
    endpoint: Endpoint,
    *,
    region: str,
    credentials: CredentialsProvider,
    metrics: Metrics | None,
    on_reachable: Callable[[bool], None] | None = None,
    attempts: int = 8,
    retry: Backoff = REQUEST,
    outage: Outage | None = None,
) -> SignedRequests:
    """The signed-request path to S3 at `endpoint`: S3's rules and bounds, counted in
    `metrics` (s3_requests, s3_retries, durations; None: not counted, as the probe's),
    reachability told to `on_reachable`, its outages said when they begin and end
    (aws/outage.py)."""
    return SignedRequests(
        http=http,
        origin=endpoint.origin,
        region=region,
        credentials=credentials,
        rules=S3_RULES,
        limit=RESULT_LIMIT,
        error_limit=ERROR_DOCUMENT_LIMIT,
        attempts=attempts,
        retry=retry,
        metrics=metrics,
        on_reachable=on_reachable,
        outage=outage or Outage("S3", logging.getLogger("sidecar.s3")),
    )


class S3Requests:
    """What every operation of `S3Client` sends its request through: the signed path with the
    headers every request carries, the key's path, a write's headers."""

    def __init__(
        self,
        requests: SignedRequests,
        endpoint: Endpoint,
        bucket: str,
        *,
        write_headers: Mapping[str, str] | None = None,
        request_headers: Mapping[str, str] | None = None,
        conditions: Conditions | None = None,
    ) -> None:
        """`conditions`: what the endpoint honours, probed before the first conditional write;
        without, AWS's semantics are assumed (never probed)."""
        self.endpoint = endpoint
        self.bucket = bucket
        self._requests = requests
        self._write_headers = dict(write_headers or {})
        self._request_headers = dict(request_headers or {})  # on every request (requester pays)
        self.conditions = conditions if conditions is not None else Conditions()

    async def _request(self, operation: str, method: str, path: str, **options: Any) -> Reply:
        """A request with what every request carries (`request_headers`)."""
        return await self._requests.request(operation, method, path, **self._every(options))

    async def _stream(
        self, operation: str, method: str, path: str, **options: Any
    ) -> aiohttp.ClientResponse:
        return await self._requests.stream(operation, method, path, **self._every(options))

    def _every(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` with `request_headers` added to its headers."""
        if self._request_headers:
            options["headers"] = {**(options.get("headers") or {}), **self._request_headers}
        return options

    def _path(self, key: str | None) -> str:
        return self.endpoint.path_for(key) if key is not None else self.endpoint.base_path

    def _writing(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers of a request that creates an object version, with what every write
        must carry (`write_headers`)."""
        return {**headers, **self._write_headers}

    async def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = await self._request(
                "HeadObject", "HEAD", self._path(key), subject=key, headers=checksums.MODE
            )
        except NotFound:
            return None
        return ObjectHead.from_headers(response.headers)

    async def _guarded(
        self, operation: str, key: str, if_match: str | None, if_none_match: bool
    ) -> tuple[dict[str, str], Callable[[], Awaitable[None]] | None]:
        """A write's condition headers (`Conditions.headers`: a HEAD first where the endpoint
        does not honour the condition), and what runs before each retry (`Conditions.again`)."""
        look = self._look(key)
        headers = await self.conditions.headers(operation, key, if_match, if_none_match, look)
        return headers, self.conditions.again(operation, key, if_match, if_none_match, look)

    def _look(self, key: str) -> Look:
        """A HEAD of `key` when called: the ETag S3 holds then, or None (conditions.py's
        `Look`)."""

        async def look() -> str | None:
            head = await self.head_object(key)
            return None if head is None else head.etag

        return look


__all__ = ["Reply", "S3Requests", "s3_requests"]
