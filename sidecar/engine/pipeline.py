"""One pass over one path: gather the facts (lstat now, remote now, last synced, hints; the
file's bytes when only its ctime can tell whether they changed: `proof.unproven`), ask
`reconcile` what to do, have the executor do it, and turn whatever happened into an `Outcome`
for the scheduler. This is the scheduler's worker callback; nothing else runs a decision.

Every way a pass can end is one `except` clause here, mapped to one outcome, so "what happens
when X fails" has one answer:
- the path changed under the pass (`LocalChanged`): decide again at once, then with back-off;
- S3 changed under it (`PreconditionFailed`, `NotFound`, `RemoteChanged`): learn what S3 holds
  (one HEAD), then decide again; if S3 contradicts itself, back off as a failure;
- an error (S3, network, credentials, I/O): back off (state.py holds the one retry policy);
  S3 not answering, or failing every try, while its outage is under way (said when it begins
  and ends, aws/outage.py) is not said again per path;
- a name that cannot be synced: counted, logged, and left until it changes;
- a file or directory we may not read or write: counted, and retried like an error (never
  settled: the change is still pending, and a stop reports it);
- an object S3 holds archived (`Archived`): said once, looked at again at a slowing pace
  (archived.py); a download settles (nothing local waits), a conflict waits with its local
  change still pending. A pass whose look is due begins with one HEAD (restored yet?).
Followups an operation recorded are submitted however the pass ended.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import aiohttp

from ..aws.credentials import CredentialsError
from ..core.keys import UnsyncableName, parents_of
from ..core.model import Hint, Kind, SyncMode
from ..core.moves import Moves
from ..core.reconcile import Decision, Facts, Op, reconcile
from ..core.scheduler import DOWNLOAD, UPLOAD, Pool, Scheduler
from ..core.state import Seen, SyncState
from ..local.databases import Databases
from ..local.proof import unproven
from ..local.safefs import UnsafeParentError
from ..metrics import Metrics
from ..ops.checks import Checks
from ..ops.executor import Executor
from ..ops.job import Archived, IntegrityError, Job, LocalChanged, RemoteChanged
from ..s3.client import (
    BodyChanged,
    NotFound,
    PreconditionFailed,
    ResponseTooLarge,
    S3Error,
    S3Unavailable,
)
from ..skips import SkipReason
from .archived import ArchivedObjects

log = logging.getLogger("sidecar")


class Verdict(Enum):
    SETTLED = "settled"  # nothing left to do until something changes
    AGAIN = "again"  # decide once more, now (a path that changed type)
    WAITING = "waiting"  # brought back by an event: its close, its archived object readable
    RETRY = "retry"  # decide again after `delay` seconds


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    delay: float = 0.0


SETTLED = Outcome(Verdict.SETTLED)
AGAIN = Outcome(Verdict.AGAIN)
WAITING = Outcome(Verdict.WAITING)
NOW = Outcome(Verdict.RETRY)
# What writes bytes into the folder: one that succeeds says the volume has room again.
_WRITES_HERE = frozenset({Op.DOWNLOAD, Op.CONFLICT})
# Decisions that change the folder because of S3: waiting after one is not a local change.
_FROM_S3 = frozenset({Op.DOWNLOAD, Op.MKDIR, Op.APPLY_REMOTE_META, Op.DELETE_LOCAL, Op.RMDIR})
STOPPING_RETRY = 2.0  # seconds between tries of a failing path while a stop drains the queue


class PassHealth(Protocol):
    """What a pass tells the sidecar's health (engine/health.py's `Health`)."""

    def progressed(self) -> None: ...
    def no_space(self, full: bool) -> None: ...
    def denied(self, rel: str) -> bool: ...  # True the first time, until `allowed`
    def allowed(self, rel: str) -> None: ...


class Pipeline:
    def __init__(
        self,
        *,
        state: SyncState,
        executor: Executor,
        checks: Checks,
        health: PassHealth,
        archived: ArchivedObjects,
        moves: Moves,
        scheduler: Scheduler,
        metrics: Metrics,
        excluded: Callable[[str], bool],
        remote_excluded: Callable[[str, bool], bool],
        stopping: Callable[[], bool],
        submit: Callable[[str, Hint], None],
        passed: Callable[[str, Outcome], None],
        mode: SyncMode,
        s3_failing: Callable[[], bool] = lambda: False,
        databases: Databases | None = None,
    ) -> None:
        self._mode = mode
        self._state = state
        self._executor = executor
        self._checks = checks  # what is at a path now; proofs of a file's bytes
        self._health = health  # told how passes end: progress, a full volume, a denied path
        self._archived = archived  # objects S3 holds archived: skipped, looked at again
        self._moves = moves  # renames of synced files: a path's first pass after one ends it
        self._scheduler = scheduler
        self._metrics = metrics
        self._excluded = excluded
        self._remote_excluded = remote_excluded  # (rel, is_dir): listings leave it out
        self._stopping = stopping
        self._submit = submit  # a followup: what an operation asks to be looked at again
        self._passed = passed  # told of every pass's outcome (the start-up restore listens)
        self._s3_failing = s3_failing  # S3's outage under way (aws/outage.py): said already
        self._databases = databases  # SYNC_SQLITE=snapshot: companions are never synced alone

    async def process(self, rel: str, pool: Pool) -> None:
        outcome = await self.run(rel, pool)
        scheduler = self._scheduler
        verdict = outcome.verdict
        if verdict is Verdict.SETTLED:
            scheduler.done(rel)
        elif verdict is Verdict.AGAIN or (verdict is Verdict.RETRY and outcome.delay <= 0):
            scheduler.submit(rel, pool)
        elif verdict is Verdict.RETRY:
            scheduler.later(rel, pool, outcome.delay)
        self._passed(rel, outcome)
        self._health.progressed()
        self._state.prune(rel)

    async def run(self, rel: str, pool: Pool) -> Outcome:
        state = self._state
        ps, seen = state.begin(rel)
        job: Job | None = None
        op: Op | None = None  # what was decided, once it was
        move = self._moves.moved_here(rel)  # a synced file renamed here: ended by this pass
        try:
            if self._archived.due(rel):  # archived when last seen: restored since? (a HEAD)
                await self._checks.learn_remote(rel)
                ps, seen = state.begin(rel)
            excluded = self._excluded(rel)
            if not excluded and self._databases is not None and self._databases.companion(rel):
                state.settled(rel)  # synced only in its database's snapshots
                return SETTLED
            local = None if excluded else self._checks.local_entry(rel)
            if (
                local is not None
                and ps.synced is not None
                and not ps.writing
                and not seen.hint & Hint.WRITTEN
                and unproven(local, ps.synced)
            ):
                # Its ctime moved, and nothing else shows whether its bytes did: read it
                # first, then look again (what that found is a hint this pass sees).
                await self._checks.prove_synced(rel, ps.synced, local)
                ps, seen = state.begin(rel)
                local = self._checks.local_entry(rel)
            is_dir = (local is not None and local.kind is Kind.DIR) or (
                ps.remote is not None and ps.remote.is_dir
            )
            facts = Facts(
                local=local,
                remote=ps.remote,
                synced=ps.synced,
                remote_children=state.remote_children(rel),
                hint=seen.hint,
                writing=ps.writing,
                initial=state.is_initial(rel),
                excluded=excluded,
                remote_excluded=self._remote_excluded(rel, is_dir),
                shadowed=ps.shadowed,
                stopping=self._stopping(),
                mode=self._mode,
                moved_from=move,
                leaving=self._moves.leaving(rel),
            )
            decision = reconcile(facts)
            op = decision.op
            if op is Op.DEFER:
                return SETTLED
            if op is Op.WAIT:
                return WAITING
            if op is Op.SKIP:
                self._skip(rel, decision)
                self._archived.cleared(rel)
                return SETTLED
            if op is not Op.NOTHING:
                log.debug("%s: %s", rel, op.value)
                job = Job(rel, facts, decision, ps, seen.mod_gen)
                await self._executor.run(job)
                if op in _WRITES_HERE:
                    self._health.no_space(False)
            state.settled(rel)
            self._health.allowed(rel)
            self._archived.cleared(rel)
            return AGAIN if decision.again else SETTLED
        except LocalChanged:
            return Outcome(Verdict.RETRY, state.raced(rel))
        except BodyChanged:
            log.debug("%s changed while it was uploaded; waiting for its close", rel)
            return WAITING if ps.writing else NOW
        except (PreconditionFailed, NotFound, RemoteChanged) as error:
            return await self._remote_changed(rel, pool, error)
        except Archived as error:
            return self._archived_skip(rel, seen, op, error)
        except UnsyncableName as error:
            self._metrics.inc(self._metrics.skipped, error.reason.value)
            log.warning("not syncing %r: %s", rel, error)
            return SETTLED
        except UnsafeParentError as error:
            self._metrics.inc(self._metrics.skipped, SkipReason.UNSAFE_KEY.value)
            log.warning("not syncing %r: reached through a symlink or a file (%s)", rel, error)
            return SETTLED
        except (
            S3Error,
            S3Unavailable,
            IntegrityError,
            aiohttp.ClientError,
            TimeoutError,
            CredentialsError,
        ) as error:
            return self._failed(rel, pool, error, op)
        except PermissionError as error:
            # Not settled: a change that was not synced stays pending (and a stop says so);
            # it is retried with back-off, and at once when the path changes. Said once per
            # path (and shown in /healthz until it passes): most such paths stay so.
            first = self._health.denied(rel)
            if first:
                self._metrics.inc(self._metrics.skipped, SkipReason.UNREADABLE.value)
            self._metrics.inc(self._metrics.local_errors, "permission")
            return self._failed(rel, pool, error, op, quiet=not first)
        except OSError as error:
            self._metrics.inc(self._metrics.local_errors, "io")
            if error.errno == errno.ENOSPC:
                self._health.no_space(True)
            return self._failed(rel, pool, error, op)
        finally:
            if move is not None:  # copied or not, its old key may go now: look at it again
                for source in self._moves.done(rel, move):
                    self._submit(source, Hint.NONE)
            if job is not None:
                for followup in job.followups:
                    if followup.remote:
                        self._scheduler.submit(followup.rel, DOWNLOAD)
                    else:
                        self._submit(followup.rel, followup.hint)

    async def _remote_changed(self, rel: str, pool: Pool, failed: Exception) -> Outcome:
        """S3 no longer holds what the decision saw: learn what it holds now, decide again. A
        refusal S3 explains by its own misreading of the condition (the quoted ETag it holds:
        `Checks.learn_remote`) is tried again at once, in the form it reads."""
        state = self._state
        ps = state.get(rel)
        seen = ps.remote
        parents = {parent: state.in_s3_through_keys(parent) for parent in parents_of(rel)}
        try:
            misread = await self._checks.learn_remote(rel, failed)
        except Exception as error:
            return self._failed(rel, pool, error)
        # Gone (or there) in S3 after all: a directory above may now exist in S3 only through
        # its marker, or not at all (a listing would have said so: `fold._Fold.finish`).
        for parent in state.flipped(parents):
            self._scheduler.submit(parent, DOWNLOAD)
        if ps.remote == seen and not misread:  # S3 contradicts itself: do not spin on it
            return self._failed(rel, pool, S3Unavailable(f"{rel!r}: S3 answers disagree"))
        return NOW

    def _archived_skip(self, rel: str, seen: Seen, op: Op | None, error: Archived) -> Outcome:
        """S3's version cannot be read until it is restored: known so (the next pass asks
        for nothing), said once, looked at again later (archived.py). A download settles:
        nothing local waits. A conflict waits, its local change pending (S3's version is kept
        beside it once it can be read); in download-only a local change never goes to S3."""
        self._state.found_archived(rel, error.etag)
        self._archived.skipped(rel, error.etag)
        if op is Op.CONFLICT and self._mode is not SyncMode.DOWNLOAD_ONLY:
            return WAITING
        self._scheduler.not_local(rel)
        if op is not Op.CONFLICT:  # a download: no local change was seen (its hints go)
            self._state.settled(rel)
        return SETTLED

    def _skip(self, rel: str, decision: Decision) -> None:
        self._metrics.inc(self._metrics.skipped, decision.reason)
        if decision.reason is not SkipReason.EXCLUDED:
            log.warning("not syncing %r: %s", rel, decision.reason.replace("_", " "))

    def _failed(
        self,
        rel: str,
        pool: Pool,
        error: BaseException,
        op: Op | None = None,
        *,
        quiet: bool = False,
    ) -> Outcome:
        """Back off (stopping: briefly, the drain is bounded), and say when the next try is,
        as it will be. What waits after a decision to change the folder because of S3 is not
        a local change for S3 (a stop and a flush do not wait for it)."""
        delay = self._state.failed(rel)
        if self._stopping():
            delay = min(delay, STOPPING_RETRY)
        attempts = self._state.get(rel).failures
        _count_error(self._metrics, op, pool)
        if _s3_failed(error) and self._s3_failing():
            quiet = True  # S3's outage is said once, when it begins and when it ends
        if op in _FROM_S3:
            self._scheduler.not_local(rel)
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "sync of %r failed (attempt %d, retrying in %.0fs): %s",
            rel,
            attempts,
            delay,
            error,
        )
        return Outcome(Verdict.RETRY, delay)


def _count_error(metrics: Metrics, op: Op | None, pool: Pool) -> None:
    """`result="error"` on the counter of what failed (by pool if nothing was tried)."""
    if op in (Op.DELETE_REMOTE, Op.DELETE_LOCAL, Op.RMDIR):
        metrics.inc(metrics.deletes, "remote" if op is Op.DELETE_REMOTE else "local", "error")
    elif op in (Op.UPLOAD_META, Op.APPLY_REMOTE_META):
        side = "remote" if op is Op.UPLOAD_META else "local"
        metrics.inc(metrics.metadata_updates, side, "error")
    elif op in (Op.DOWNLOAD, Op.MKDIR) or (op is None and pool != UPLOAD):
        metrics.inc(metrics.downloads, "error")
    else:
        metrics.inc(metrics.uploads, "error")


def _s3_failed(error: BaseException) -> bool:
    """S3 gave no answer after every try (an answer over its bound is one), or answered each
    with what is retried (5xx, throttling)."""
    if isinstance(error, S3Error):
        return error.status >= 500 or error.status == 429
    return isinstance(error, S3Unavailable) and not isinstance(error, ResponseTooLarge)
