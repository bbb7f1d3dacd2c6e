"""Deletes that many passes make at once, sent together: one DeleteObjects (up to 1,000 keys,
each under its own condition, `<ETag>`) where there would have been as many DeleteObject
requests. A tree renamed or removed here deletes one key per file.

Group commit: a delete goes at once, alone, when no other delete request is under way, so no
wait is ever added to a lone delete. Deletes asked for while one is under way wait for it, then
go together as the next request. So at most one delete request is under way at a time, and a
batch holds what the passes asked for meanwhile (at most one per worker).

Each key's outcome is its own, as a DeleteObject's would be: deleted (or gone already,
`NoSuchKey`); refused because S3 holds another version (`PreconditionFailed`, raised to that
pass only); anything else, and the key is sent again alone (DeleteObject, with its own retries
and errors). Batched only: keys an XML document carries verbatim, and, for a conditional delete,
an endpoint the probe proved to honour the condition in DeleteObjects and to delete the right
version under it (`Condition.DELETE_OBJECTS_IF_MATCH`). Everything else goes alone, as before.
An endpoint that refuses DeleteObjects itself (400, 405, 501) is not asked again.

Invariants: a waiting delete is sent once (a pass cancelled while waiting is left out of its
batch, or its outcome dropped); the request under way is the only one; a batch is at most
`LIMIT` keys, and no key is twice in one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from .conditions import Condition, Conditions, Verdict
from .errors import PreconditionFailed, S3Error
from .xml import carried_verbatim

log = logging.getLogger("sidecar.s3")

LIMIT = 1000  # keys in one DeleteObjects (S3's limit)
_REFUSED = (400, 405, 501)  # DeleteObjects not implemented

Send = Callable[[Sequence[tuple[str, str | None]]], Awaitable[dict[str, str]]]


class _Outcome(Enum):
    DELETED = "deleted"
    CHANGED = "changed"  # another version is there (412)
    ALONE = "alone"  # to be sent again, alone


class DeleteBatches:
    """The deletes of one S3 client: `delete` each; `close` at the end."""

    def __init__(self, send: Send, conditions: Conditions) -> None:
        self._send = send  # S3Client.delete_objects
        self._conditions = conditions
        self._waiting: dict[str, tuple[str | None, asyncio.Future[_Outcome]]] = {}
        self._busy = False  # a delete request is under way
        self._sender: asyncio.Task[None] | None = None
        self._refused = False

    async def delete(
        self, key: str, if_match: str | None, alone: Callable[[], Awaitable[None]]
    ) -> None:
        """Delete `key` (only if it holds `if_match`, where given), with the deletes asked for
        meanwhile; `alone` is its own DeleteObject. Raises as `alone` would."""
        if not await self._batched(key, if_match):
            await alone()
            return
        if not self._busy:
            self._busy = True
            try:
                await alone()
            finally:
                self._busy = False
                self._next()
            return
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[key] = (if_match, future)
        try:
            outcome = await future
        finally:
            if self._waiting.get(key, (None, None))[1] is future:
                del self._waiting[key]  # (cancelled before its batch went)
        if outcome is _Outcome.CHANGED:
            raise PreconditionFailed(
                "DeleteObject",
                412,
                "PreconditionFailed",
                "(S3 holds another version: refused in DeleteObjects)",
                key,
            )
        if outcome is _Outcome.ALONE:
            await alone()

    async def _batched(self, key: str, if_match: str | None) -> bool:
        if self._refused or key in self._waiting or not carried_verbatim(key):
            return False
        if if_match is None:
            return True
        await self._conditions.ready()
        return self._conditions.verdict(Condition.DELETE_OBJECTS_IF_MATCH) is Verdict.HONOURED

    def _next(self) -> None:
        """The deletes waiting, sent together, if no request is under way."""
        if self._busy or not self._waiting:
            return
        batch: dict[str, tuple[str | None, asyncio.Future[_Outcome]]] = {}
        for key in list(self._waiting)[:LIMIT]:
            batch[key] = self._waiting.pop(key)
        self._busy = True
        self._sender = asyncio.ensure_future(self._flush(batch))

    async def _flush(self, batch: dict[str, tuple[str | None, asyncio.Future[_Outcome]]]) -> None:
        live = {key: entry for key, entry in batch.items() if not entry[1].done()}
        try:
            outcomes = await self._outcomes({key: entry[0] for key, entry in live.items()})
        except Exception as error:
            for _, future in live.values():
                if not future.done():
                    future.set_exception(error)
        except BaseException:  # (cancelled: close)
            for _, future in live.values():
                future.cancel()
            raise
        else:
            for key, (_, future) in live.items():
                if not future.done():
                    future.set_result(outcomes[key])
        finally:
            self._busy = False
            self._next()

    async def _outcomes(self, wanted: dict[str, str | None]) -> dict[str, _Outcome]:
        if not wanted:
            return {}
        if len(wanted) == 1:  # nothing to save: its own DeleteObject
            return dict.fromkeys(wanted, _Outcome.ALONE)
        try:
            failed = await self._send(list(wanted.items()))
        except S3Error as error:
            if error.status not in _REFUSED:
                raise
            self._refused = True
            log.warning(
                "S3 refuses DeleteObjects (%s %s): every delete goes alone from now on",
                error.status,
                error.code,
            )
            return dict.fromkeys(wanted, _Outcome.ALONE)
        return {key: _outcome(failed.get(key)) for key in wanted}

    async def close(self) -> None:
        """The request under way, ended; its waiting passes get the cancellation."""
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


def _outcome(code: str | None) -> _Outcome:
    """A key's outcome from what DeleteObjects said of it (None: deleted)."""
    if code is None or code == "NoSuchKey":
        return _Outcome.DELETED
    if code == "PreconditionFailed":
        return _Outcome.CHANGED
    return _Outcome.ALONE


__all__ = ["LIMIT", "DeleteBatches"]
