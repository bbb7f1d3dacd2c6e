"""What the endpoint honours of the conditions the sidecar's writes carry, and what is done where
it does not. A conditional write is how a concurrent change by another client is caught instead
of overwritten or deleted (ops/checks.py), so on a store that ignores a condition silently the
sidecar must find that out, and look for itself.

The conditions (`Condition`): `If-Match` and `If-None-Match: *` on PutObject and on
CompleteMultipartUpload, `If-Match` on DeleteObject, an object's `<ETag>` in DeleteObjects
(deletes sent together: deletes.py, which batches only where it is honoured), and
`x-amz-copy-source-if-match` on CopyObject (a metadata update copies an object onto itself).
Each is `HONOURED` (another version is refused, 412), `IGNORED` (the request is carried out
whatever S3 holds), `REFUSED` (even the right version is refused, or the header is not
implemented: sending it fails every write) or `UNKNOWN`. And the form of an ETag in
`If-Match`: quoted (`"<etag>"`, RFC 7232, AWS) unless the endpoint refuses the right ETag
quoted and takes it bare (Ceph RGW 16.2 on PUT).

How it is learned:
- Once per process, before the first conditional write, by the probe (probe.py), on a key of
  the sidecar's own under the working folder's name (never synced, and left out of listings
  silently): never by touching a user's key. Until then, and if the probe may not write there
  (403), every condition is `UNKNOWN`. Downloads never wait for it: a sidecar that never writes
  never probes.
- From answers: a 412 to an `If-Match` whose HEAD shows the very ETag that was sent says the
  quoted form is not understood (`refused_as_sent`): ETags are sent bare from then on, once.

What it costs where a condition is not `HONOURED` (`checked`): the S3 client looks with a HEAD
right before the request and answers `PreconditionFailed` itself when S3 holds another version
(`verify`), which the pipeline handles as S3's own 412. One request more each, and a window of
one round trip between the HEAD and the write in which another client's newer version can still
be overwritten or deleted; the header is still sent unless `REFUSED`. What was learned, and that
cost, is logged once and exported (`s3sync_s3_condition`, `s3sync_s3_if_match_form`,
`s3sync_s3_checks_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..metrics import Metrics
from .errors import PreconditionFailed

log = logging.getLogger("sidecar.s3")


class Condition(Enum):
    PUT_IF_MATCH = "put_if_match"
    PUT_IF_NONE_MATCH = "put_if_none_match"
    DELETE_IF_MATCH = "delete_if_match"
    DELETE_OBJECTS_IF_MATCH = "delete_objects_if_match"  # an object's <ETag> (s3/deletes.py)
    COPY_SOURCE_IF_MATCH = "copy_source_if_match"
    COPY_IF_NONE_MATCH = "copy_if_none_match"
    COMPLETE_IF_MATCH = "complete_if_match"
    COMPLETE_IF_NONE_MATCH = "complete_if_none_match"

    @property
    def header(self) -> str:
        """How the condition is named in a log line."""
        return _HEADERS[self]


_HEADERS = {
    Condition.PUT_IF_MATCH: "If-Match on PUT",
    Condition.PUT_IF_NONE_MATCH: "If-None-Match on PUT",
    Condition.DELETE_IF_MATCH: "If-Match on DELETE",
    Condition.DELETE_OBJECTS_IF_MATCH: "ETag in DeleteObjects",
    Condition.COPY_SOURCE_IF_MATCH: "x-amz-copy-source-if-match",
    Condition.COPY_IF_NONE_MATCH: "If-None-Match on CopyObject",
    Condition.COMPLETE_IF_MATCH: "If-Match on CompleteMultipartUpload",
    Condition.COMPLETE_IF_NONE_MATCH: "If-None-Match on CompleteMultipartUpload",
}


# Each conditional operation's conditions: on If-Match, and on If-None-Match: * (None: none).
_OPERATIONS: dict[str, tuple[Condition, Condition | None]] = {
    "PutObject": (Condition.PUT_IF_MATCH, Condition.PUT_IF_NONE_MATCH),
    "DeleteObject": (Condition.DELETE_IF_MATCH, None),
    "CopyObject": (Condition.COPY_SOURCE_IF_MATCH, Condition.COPY_IF_NONE_MATCH),
    "UploadPartCopy": (Condition.COPY_SOURCE_IF_MATCH, None),  # as CopyObject's, not probed
    "CompleteMultipartUpload": (Condition.COMPLETE_IF_MATCH, Condition.COMPLETE_IF_NONE_MATCH),
}


def _condition_of(operation: str, if_match: str | None, if_none_match: bool) -> Condition | None:
    on_match, on_none_match = _OPERATIONS[operation]
    return on_match if if_match else on_none_match if if_none_match else None


class Verdict(Enum):
    UNKNOWN = "unknown"
    HONOURED = "honoured"
    IGNORED = "ignored"
    REFUSED = "refused"


class EtagForm(Enum):
    QUOTED = "quoted"
    BARE = "bare"


CLOSE_TIMEOUT = 5.0  # seconds a probe under way may take to delete its key when it is ended

# Not a condition: an answer that should name the new version's ETag and names none (Ceph RGW's
# CompleteMultipartUpload), learned with a HEAD after it (the client's `_answered_etag`).
ANSWER_ETAG = "answer_etag"
CHECKS = (*(condition.value for condition in Condition), ANSWER_ETAG)
CHECK_RESULTS = ("held", "changed")


@dataclass(frozen=True, slots=True)
class Findings:
    """What a probe found: the form of ETags that `If-Match` understands, and each condition's
    verdict (one left out is `UNKNOWN`)."""

    form: EtagForm
    verdicts: Mapping[Condition, Verdict] = field(default_factory=dict)
    note: str = ""  # why some are unknown, for the log
    form_known: bool = True  # False: `form` is a guess (the probe could not write)

    @classmethod
    def trusted(cls) -> Findings:
        """AWS's semantics, assumed rather than probed (a client built without a probe)."""
        return cls(EtagForm.QUOTED, dict.fromkeys(Condition, Verdict.HONOURED))


Probe = Callable[[], Awaitable[Findings]]
Look = Callable[[], Awaitable[str | None]]  # a HEAD: the ETag S3 holds now, None for none


class Conditions:
    """One endpoint's conditions: `ready` (probed once, before the first conditional write),
    what to send (`header`, `sent`), where to look first (`checked`, `verify`). Changed only by
    the probe's findings and `refused_as_sent`."""

    def __init__(self, probe: Probe | None = None, metrics: Metrics | None = None) -> None:
        """Without `probe`, AWS's semantics are assumed (`Findings.trusted`)."""
        self._probe = probe
        self._metrics = metrics
        self.form = EtagForm.QUOTED
        self._form_known = False
        self._verdicts = dict.fromkeys(Condition, Verdict.UNKNOWN)
        self._probing: asyncio.Future[Findings] | None = None
        self._closed = False
        self._probed = False
        self._told: set[str] = set()  # what was logged once
        self._export()
        if probe is None:
            self._learned(Findings.trusted(), quiet=True)

    # -- learning --------------------------------------------------------------------------

    async def ready(self) -> None:
        """Once: the probe's findings (callers waiting meanwhile share its one run). A probe
        that fails raises its error to every caller waiting, and the next call probes again."""
        if self._probed:
            return
        if self._closed:
            raise RuntimeError("the S3 client is closed")
        if self._probing is None:
            assert self._probe is not None  # without one, the findings are there from the start
            self._probing = asyncio.ensure_future(self._probe())
            self._probing.add_done_callback(self._probe_ended)
        await asyncio.shield(self._probing)

    async def close(self) -> None:
        """A probe still under way is cancelled and waited for (its key's delete is tried on
        the way out), before the connections it uses close; a probe after this is refused."""
        self._closed = True
        probing = self._probing
        if probing is not None:
            probing.cancel()
            await asyncio.wait([probing], timeout=CLOSE_TIMEOUT)

    def _probe_ended(self, probing: asyncio.Future[Findings]) -> None:
        self._probing = None
        if probing.cancelled():
            return
        error = probing.exception()  # retrieved: a probe that failed is tried again
        if error is None:
            self._learned(probing.result())
        else:
            log.debug("probing what the S3 endpoint honours failed: %s", error)

    def _learned(self, findings: Findings, *, quiet: bool = False) -> None:
        self._probed = True
        self.form = findings.form
        self._form_known = findings.form_known
        for condition in Condition:
            self._verdicts[condition] = findings.verdicts.get(condition, Verdict.UNKNOWN)
        self._export()
        if not quiet:
            self._log(findings.note)

    def assume(self, form: EtagForm) -> None:
        """For the probe's own client (built without a probe): send ETags in `form`."""
        assert self._probe is None
        self.form = form

    def refused_as_sent(self, operation: str) -> bool:
        """S3 refused an `If-Match` (412) naming the very ETag it holds: the quoted form is not
        understood. ETags go bare from now on; True if that changed anything (only once, and
        never where the probe proved the form: then S3 contradicts itself)."""
        if self.form is EtagForm.BARE or self._form_known:
            return False
        self.form = EtagForm.BARE
        self._export()
        log.warning(
            "S3 refused %s's If-Match naming the ETag it holds, quoted: ETags are sent bare "
            "from now on",
            operation,
        )
        return True

    # -- using what was learned --------------------------------------------------------------

    def verdict(self, condition: Condition) -> Verdict:
        return self._verdicts[condition]

    def header(self, etag: str) -> str:
        """`etag` as `If-Match` (and `x-amz-copy-source-if-match`) send it here."""
        return f'"{etag}"' if self.form is EtagForm.QUOTED else etag

    def sent(self, condition: Condition) -> bool:
        """Whether the request carries the condition (not where it is refused)."""
        return self._verdicts[condition] is not Verdict.REFUSED

    def checked(self, condition: Condition) -> bool:
        """Whether a HEAD must look right before the request (the condition is not honoured,
        or not known to be)."""
        return self._verdicts[condition] is not Verdict.HONOURED

    async def copies_as_safe_as_puts(self) -> bool:
        """Whether a CopyObject onto a key that must hold nothing is kept from replacing an
        object there as surely as a PutObject is: `If-None-Match` honoured on CopyObject, or
        on PutObject not either. Where not (Ceph RGW), a rename is uploaded, not copied
        (ops/rename.py): the copy's HEAD would leave a round trip in which another client's new
        object there is overwritten, where the upload's condition leaves none. Said once."""
        await self.ready()
        safe = not self.checked(Condition.COPY_IF_NONE_MATCH) or self.checked(
            Condition.PUT_IF_NONE_MATCH
        )
        if not safe and "renames" not in self._told:
            self._told.add("renames")
            log.info(
                "S3 honours If-None-Match on PutObject but not on CopyObject: a file renamed "
                "here is uploaded under its new name, not copied in S3, so that another "
                "client's object there is never overwritten (README: Tested S3 servers)"
            )
        return safe

    async def headers(
        self, operation: str, key: str, if_match: str | None, if_none_match: bool, look: Look
    ) -> dict[str, str]:
        """The condition headers of `operation` on `key` (`If-Match: if_match`, else
        `If-None-Match: *` if `if_none_match`), once `guard` let it through; none where the
        endpoint refuses the condition. CopyObject's `If-Match` is sent by the caller as
        `x-amz-copy-source-if-match`."""
        condition = _condition_of(operation, if_match, if_none_match)
        if condition is None or not await self.guard(condition, operation, key, if_match, look):
            return {}
        return {"If-Match": self.header(if_match)} if if_match else {"If-None-Match": "*"}

    def again(
        self, operation: str, key: str, if_match: str | None, if_none_match: bool, look: Look
    ) -> Callable[[], Awaitable[None]] | None:
        """What must run before the request is sent again (the signed path's retry): where
        its condition is checked with a HEAD, that HEAD again. The first one is stale once a
        back-off has passed, or once a send may have reached S3 (chaos seed 45 on RGW: a DELETE
        retried after a reset deleted another client's version written in the meantime)."""
        condition = _condition_of(operation, if_match, if_none_match)
        if condition is None or not self.checked(condition):
            return None
        checked = condition

        async def look_again() -> None:
            await self.guard(checked, operation, key, if_match, look)

        return look_again

    async def guard(
        self, condition: Condition, operation: str, key: str, if_match: str | None, look: Look
    ) -> bool:
        """Before a request carrying `condition` on `key` (`If-Match: if_match`, or for an
        `If-None-Match` condition no object at all): the probe's findings first; where the
        endpoint does not honour the condition, a look right before (`look`: a HEAD, the ETag
        S3 holds or None), which raises `PreconditionFailed` as S3 would have answered.
        Whether the request should carry the condition's header (`sent`)."""
        await self.ready()
        if self.checked(condition):
            found = await look()
            held = found == if_match if if_match is not None else found is None
            self._count(condition.value, held)
            if not held:
                raise PreconditionFailed(
                    operation,
                    412,
                    "PreconditionFailed",
                    f"(S3 holds {found or 'no object'}, not {if_match or 'no object'}: seen "
                    f"by a HEAD, as the endpoint does not honour {condition.header})",
                    key,
                )
        return self.sent(condition)

    async def answered(
        self, operation: str, key: str, etag: str, expected: str | None, look: Look
    ) -> str:
        """The ETag of the version a write made: the answer's, or where the answer names none
        (Ceph RGW's CompleteMultipartUpload), what a HEAD right after finds, taken for ours
        only if it is `expected` (computed from what was sent, where that can be); else
        `PreconditionFailed`: another version is there already, and the pipeline looks again.
        Said once per operation (one request more each)."""
        if etag:
            return etag
        if operation not in self._told and self._probe is not None:  # not the probe's own
            self._told.add(operation)
            log.info(
                "S3 answers %s without an ETag: the new version's ETag is learned with a HEAD "
                "right after each (one request more)",
                operation,
            )
        found = await look()
        held = found is not None and expected in (None, found)
        self._count(ANSWER_ETAG, held)
        if found is None or not held:
            raise PreconditionFailed(
                operation,
                412,
                "PreconditionFailed",
                f"(the answer named no ETag, and S3 holds {found or 'no object'} right after, "
                f"not {expected})",
                key,
            )
        return found

    def _count(self, check: str, held: bool) -> None:
        if self._metrics is not None:
            metrics = self._metrics
            metrics.inc(metrics.s3_checks, check, "held" if held else "changed")

    # -- telling ---------------------------------------------------------------------------

    def _export(self) -> None:
        if self._metrics is None:
            return
        for check in CHECKS:  # at 0 from the start
            for result in CHECK_RESULTS:
                self._metrics.s3_checks.labels(check, result)
        for condition, verdict in self._verdicts.items():
            self._metrics.s3_condition.labels(condition.value).state(verdict.value)
        self._metrics.s3_if_match_form.state(self.form.value)

    def _log(self, note: str) -> None:
        by_verdict: dict[Verdict, list[str]] = {}
        for condition, verdict in self._verdicts.items():
            by_verdict.setdefault(verdict, []).append(condition.header)
        form = (
            "; If-Match understands only a bare ETag: sent bare"
            if self.form is EtagForm.BARE
            else ""
        )
        if set(by_verdict) == {Verdict.HONOURED}:
            log.info("S3 honours every condition the sidecar sends%s", form)
            return
        parts = [
            f"{verdict.value}: {', '.join(names)}"
            for verdict, names in by_verdict.items()
            if verdict is not Verdict.HONOURED
        ]
        log.warning(
            "S3 does not honour every condition the sidecar sends (%s)%s%s. For each, a HEAD "
            "looks right before the request instead: one request more, and a window of one "
            "round trip in which another client's newer version can still be overwritten or "
            "deleted (README: Tested S3 servers)",
            "; ".join(parts),
            form,
            f"; {note}" if note else "",
        )


def both_looks(
    first: Callable[[], Awaitable[None]] | None, second: Callable[[], Awaitable[None]] | None
) -> Callable[[], Awaitable[None]] | None:
    """What runs before a retry of a request with two guarded conditions: both looks."""
    if first is None or second is None:
        return first or second
    looks = (first, second)

    async def both() -> None:
        for look in looks:
            await look()

    return both


@contextlib.contextmanager
def naming(if_match: str | None) -> Iterator[None]:
    """Around a request that sent `If-Match: if_match` (None: no If-Match): S3's 412 to it says
    which ETag it refused (`PreconditionFailed.if_match`, for `Conditions.refused_as_sent`)."""
    try:
        yield
    except PreconditionFailed as error:
        error.if_match = if_match
        raise


__all__ = [
    "ANSWER_ETAG",
    "CHECKS",
    "CHECK_RESULTS",
    "Condition",
    "Conditions",
    "EtagForm",
    "Findings",
    "Look",
    "Probe",
    "Verdict",
    "both_looks",
    "naming",
]
