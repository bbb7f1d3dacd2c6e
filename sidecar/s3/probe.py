"""Finding out what the endpoint honours (conditions.py), on a key of the sidecar's own: never a
user's. The key is `<prefix><working folder's name>/probe-<random>`: under the prefix, so the
sidecar's permissions allow it, and under the one name the folder never syncs (listings leave
it out silently: remote/poll.py); random, so that sidecars sharing a prefix never probe each
other's key.

The requests, each on that key, through a client of its own that sends exactly what it is told
(no probe, no HEAD first; its requests are not counted in `s3sync_s3_requests_total`). The
key's prefix is `core.keys.probe_prefix`.
1. PUT, then PUT with `If-Match` naming the ETag just made, quoted, then bare: the form the
   endpoint understands (neither: `If-Match` on PUT is REFUSED);
2. PUT with `If-Match` naming another ETag, PUT with `If-None-Match: *`, CopyObject onto itself
   with `x-amz-copy-source-if-match` naming another ETag and with `If-None-Match: *`, two
   one-part multipart uploads completed with `If-Match` naming another ETag and with
   `If-None-Match: *`, DELETE with `If-Match` naming another ETag: each refused with a 412
   (HONOURED), carried out (IGNORED), or refused otherwise, 400, 405 or 501 (REFUSED: not
   implemented); then the key put again and DeleteObjects naming another ETag (refused), then
   the right one (deleted: the ETag's form is understood there too);
3. the key deleted, and probe keys left by a sidecar that was killed mid-probe (over ten
   minutes old) deleted too.

About 20 requests, once per process, before its first conditional write. A probe that may not
write its key (401, 403) finds nothing: every condition is then UNKNOWN (sent, and checked with
a HEAD first); one that may write it but is refused a single request otherwise (a policy
without s3:DeleteObject, say) leaves that one condition UNKNOWN. S3 unwell (5xx, 429, no
answer) is raised: the write that needed the probe fails, and is retried as any failed write
is, probing again.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from urllib.parse import unquote_plus

from .. import checksums
from .client import S3Client
from .conditions import Condition, EtagForm, Findings, Verdict
from .errors import PreconditionFailed, S3Error, S3Unavailable

log = logging.getLogger("sidecar.s3")

ANOTHER_ETAG = "0" * 32  # no object's ETag (the MD5 of no content is d41d8cd9...)
LEFTOVER_AGE = 600  # seconds: a probe key older than this was left by a probe that died
_NOT_IMPLEMENTED = (400, 405, 501)


async def probe(s3: S3Client, key_prefix: str) -> Findings:
    """What the endpoint behind `s3` honours (see the module). `s3` must be a client that sends
    conditions as it is told (built without a probe)."""
    key = key_prefix + uuid.uuid4().hex
    try:
        etag = (await s3.put_object(key, b"probe", 5, {}, checksum=checksums.full(b"probe"))).etag
    except S3Error as error:
        if error.status not in (401, 403):
            raise
        return Findings(
            EtagForm.QUOTED,
            note=f"the probe may not write {key!r} ({error.status} {error.code}): every "
            "condition is checked with a HEAD",
            form_known=False,
        )
    try:
        form = await _form(s3, key, etag)
        verdicts: dict[Condition, Verdict] = {}
        if form is None:
            verdicts[Condition.PUT_IF_MATCH] = Verdict.REFUSED
        elif not isinstance(form, EtagForm):
            verdicts[Condition.PUT_IF_MATCH] = Verdict.UNKNOWN
        else:
            s3.conditions.assume(form)
            verdicts[Condition.PUT_IF_MATCH] = await _verdict(
                s3.put_object(
                    key,
                    b"probe 2",
                    7,
                    {},
                    checksum=checksums.full(b"probe 2"),
                    if_match=ANOTHER_ETAG,
                )
            )
        verdicts[Condition.PUT_IF_NONE_MATCH] = await _verdict(
            s3.put_object(
                key, b"probe 3", 7, {}, checksum=checksums.full(b"probe 3"), if_none_match=True
            )
        )
        verdicts[Condition.COPY_SOURCE_IF_MATCH] = await _verdict(
            s3.copy_object_metadata(key, {"x-amz-meta-probe": "1"}, if_match=ANOTHER_ETAG)
        )
        verdicts[Condition.COPY_IF_NONE_MATCH] = await _verdict(
            s3.copy_object(
                key, key, {"x-amz-meta-probe": "2"}, if_source_match=None, if_none_match=True
            )
        )
        verdicts[Condition.COMPLETE_IF_MATCH] = await _completed(s3, key, ANOTHER_ETAG, False)
        verdicts[Condition.COMPLETE_IF_NONE_MATCH] = await _completed(s3, key, None, True)
        verdicts[Condition.DELETE_IF_MATCH] = await _verdict(
            s3.delete_object(key, if_match=ANOTHER_ETAG)
        )
        verdicts[Condition.DELETE_OBJECTS_IF_MATCH] = await _deletes_together(s3, key)
    finally:
        # Best effort, also when the probe is ended (cancelled) at a stop: a key left is
        # deleted by a later probe (`_clear_leftovers`).
        with contextlib.suppress(Exception):
            await s3.delete_object(key)
    with contextlib.suppress(S3Error, S3Unavailable):
        await _clear_leftovers(s3, key_prefix)
    tried = form is not Verdict.UNKNOWN
    return Findings(
        form if isinstance(form, EtagForm) else EtagForm.QUOTED,
        verdicts,
        note="" if tried else "If-Match on PUT could not be tried: ETags are sent quoted",
        form_known=tried,
    )


async def _form(s3: S3Client, key: str, etag: str) -> EtagForm | Verdict | None:
    """The form in which `If-Match` matches the ETag the key holds; None if in neither (or
    not implemented); `Verdict.UNKNOWN` where S3 refused otherwise (a 403, say)."""
    for form in (EtagForm.QUOTED, EtagForm.BARE):
        s3.conditions.assume(form)
        try:
            await s3.put_object(
                key, b"probe", 5, {}, checksum=checksums.full(b"probe"), if_match=etag
            )
        except PreconditionFailed:
            continue
        except S3Error as error:
            if error.status in _NOT_IMPLEMENTED:
                return None
            if _transient(error):
                raise
            return Verdict.UNKNOWN
        return form
    return None


def _transient(error: S3Error) -> bool:
    """An error worth probing again for (the write that waits for the probe fails, and is
    retried): S3 unwell, not a refusal of this request."""
    return error.status >= 500 or error.status == 429


async def _verdict(request: Awaitable[object]) -> Verdict:
    """A request whose condition does not hold: refused with a 412 (HONOURED), carried out
    (IGNORED), refused as not implemented (REFUSED); refused otherwise (a 403: a policy that
    allows the sidecar's writes but not this one) UNKNOWN, so a HEAD looks first."""
    try:
        await request
    except PreconditionFailed:
        return Verdict.HONOURED
    except S3Error as error:
        return _refused(error)
    return Verdict.IGNORED


def _refused(error: S3Error) -> Verdict:
    """A probing request refused otherwise than by its condition: not implemented (REFUSED),
    S3 unwell (raised: the probe is made again), anything else (a 403) UNKNOWN."""
    if error.status in _NOT_IMPLEMENTED:
        return Verdict.REFUSED
    if _transient(error):
        raise error
    return Verdict.UNKNOWN


async def _deletes_together(s3: S3Client, key: str) -> Verdict:
    """DeleteObjects on `key` (put again: the DELETE before may have taken it), first naming
    another ETag (refused: HONOURED; deleted: IGNORED), then the one it holds, in the form
    `If-Match` takes (deleted: the form is right; refused: REFUSED, as batches would never
    delete anything there). Refused as not implemented: REFUSED."""
    put = await s3.put_object(key, b"probe 4", 7, {}, checksum=checksums.full(b"probe 4"))
    try:
        kept = (await s3.delete_objects([(key, ANOTHER_ETAG)])).get(key)
        if kept != "PreconditionFailed":
            return Verdict.IGNORED if kept is None else Verdict.UNKNOWN
        gone = (await s3.delete_objects([(key, put.etag)])).get(key)
    except S3Error as error:
        return _refused(error)
    return Verdict.HONOURED if gone is None else Verdict.REFUSED


async def _completed(s3: S3Client, key: str, if_match: str | None, if_none_match: bool) -> Verdict:
    """A one-part multipart upload on `key` (which exists), completed with a condition that
    does not hold; aborted unless completed. UNKNOWN where the upload cannot be made."""
    try:
        upload_id = await s3.create_multipart_upload(key, {})
    except S3Error as error:
        if _transient(error):
            raise
        return Verdict.UNKNOWN
    try:
        try:
            part = await s3.upload_part(
                key, upload_id, 1, _one_byte, 1, checksum=checksums.full(b"p")
            )
        except S3Error as error:
            if _transient(error):
                raise
            return Verdict.UNKNOWN
        return await _verdict(
            s3.complete_multipart_upload(
                key,
                upload_id,
                [part],
                [checksums.full(b"p")],
                if_match=if_match,
                if_none_match=if_none_match,
            )
        )
    finally:
        with contextlib.suppress(Exception):  # best effort, as the key's delete
            await s3.abort_multipart_upload(key, upload_id)


async def _one_byte() -> AsyncIterator[bytes]:
    yield b"p"


async def _clear_leftovers(s3: S3Client, key_prefix: str) -> None:
    """Probe keys over `LEFTOVER_AGE` old, by the server's clock (its answer's `Date`)."""
    async for page in s3.list_objects(key_prefix):
        now = page.answered_at
        for listed in page.objects:
            if (
                now.isdigit()
                and listed.last_modified.isdigit()
                and int(now) - int(listed.last_modified) > LEFTOVER_AGE
            ):
                key = unquote_plus(listed.key) if page.encoded else listed.key
                await s3.delete_object(key)
                log.info("deleted %r, left by a probe that did not finish", key)


__all__ = ["LEFTOVER_AGE", "probe"]
