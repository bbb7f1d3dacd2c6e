"""The one sync decision: what to do with a path, given what is on disk now, what is in S3 now,
and what both sides agreed on when the path was last synced.

This is pure: no I/O, no clock, no globals. Start-up, inotify events, polls, overflow rescans and
retries all come here, so a rule is written once and tested exhaustively
(tests/sync/test_reconcile.py walks every row). The executor re-checks the local facts just
before it acts, so a decision made on facts that changed a moment later is abandoned, never
applied.

Safety rules encoded here:
- a file that was never seen on both sides is never deleted; one side's copy is uploaded or
  downloaded, and when both exist and differ, both are kept (a conflict copy);
- a local change that is not yet uploaded is never overwritten: it wins, and a concurrent remote
  change is kept beside it as a conflict copy;
- a remote change beats a local delete (nothing is lost: the file comes back);
- a local file is deleted only when it is exactly the version last synced;
- an excluded path is never touched; nothing is done to the folder because of S3 for a path
  whose remote side is unknown (shadowed by a file key above it, or left out of listings by
  the remote exclude pattern), nor while stopping (a conflict still goes on, except when
  shadowed: it carries a local change to upload and keeps both versions);
- more deletions at once than the max-delete guard allows are held back (`too_many_deletions`);
- a file renamed here is copied in S3 from its synced object only if it is untouched since
  (`_renamed_untouched`); the old key (or for a rename in S3, the old file) is deleted only
  once the new name's pass, which may copy from it, is over (`leaving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

from ..skips import SkipReason
from .model import Hint, Kind, LocalEntry, RemoteEntry, Synced, SyncMode
from .moves import Move


class Op(Enum):
    NOTHING = "nothing"
    RECORD = "record"  # both sides already agree: remember it
    FORGET = "forget"  # gone on both sides: drop what we remembered
    WAIT = "wait"  # being written (its close brings us back), or its key is a copy's source
    SKIP = "skip"  # cannot be synced (logged and counted with its `reason`)
    UPLOAD = "upload"
    UPLOAD_META = "upload_meta"  # chmod/touch: copy the object onto itself with new metadata
    COPY_REMOTE = "copy_remote"  # a synced file renamed here, untouched: copy its object here
    PUT_MARKER = "put_marker"  # a `dir/` object for a directory
    DELETE_REMOTE = "delete_remote"
    DOWNLOAD = "download"
    MKDIR = "mkdir"
    DELETE_LOCAL = "delete_local"
    RMDIR = "rmdir"
    APPLY_REMOTE_META = "apply_remote_meta"  # same object, new metadata (another client's chmod)
    CONFLICT = "conflict"  # both sides changed: keep both
    DEFER = "defer"  # not now (shadowed remote side, or stopping): leave the path as it is


class Winner(Enum):
    LOCAL = "local"  # the local file keeps the name; the remote version becomes the copy
    NEWER = "newer"  # at start, with no history: the newer mtime keeps the name
    REMOTE = "remote"  # download-only: S3's version keeps the name; the local one, the copy


@dataclass(frozen=True, slots=True)
class Facts:
    local: LocalEntry | None
    remote: RemoteEntry | None  # the object at the path's file key, else its `dir/` marker
    synced: Synced | None
    remote_children: int = 0  # keys strictly below the path (it is a directory remotely)
    hint: Hint = Hint.NONE
    writing: bool = False  # modified and not yet closed
    initial: bool = False  # restoring at start: the app is not running yet
    excluded: bool = False  # matched by the local exclude pattern: never synced
    remote_excluded: bool = False  # matched by the remote exclude pattern: S3's side unseen
    shadowed: bool = False  # a file key above it hides its remote side
    stopping: bool = False  # shutting down: only local changes still go to S3
    mode: SyncMode = SyncMode.BIDIRECTIONAL
    # Where this path's file or object was just renamed from and what was synced there
    # (core/moves.py): a rename inotify paired by its cookie, the file quiet at the time, or
    # a key gone in S3 and one with its ETag come in the same listing; None for any other.
    moved_from: Move | None = None
    # This path was renamed away (here or in S3) and its new name is being made from what it
    # holds (its object copied in S3, or its file copied here): its delete waits for that.
    leaving: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    op: Op
    if_match: str | None = None  # the remote write must find this ETag...
    if_none_match: bool = False  # ...or no object at all
    winner: Winner | None = None
    again: bool = False  # reconcile once more after this (a path that changed type)
    reason: SkipReason | Literal[""] = ""  # why a SKIP skips ("" for every other op)


NOTHING = Decision(Op.NOTHING)
WAIT = Decision(Op.WAIT)
FORGET = Decision(Op.FORGET)


# Decisions that act on the local folder because of what S3 says.
_REMOTE_DRIVEN = frozenset(
    {Op.DOWNLOAD, Op.DELETE_LOCAL, Op.RMDIR, Op.MKDIR, Op.APPLY_REMOTE_META, Op.CONFLICT}
)
# Of those, what waits while stopping, or never happens for a key the listing leaves out: a
# conflict still carries a local change to upload (and keeps both versions).
_CHANGES_LOCAL_ONLY = _REMOTE_DRIVEN - {Op.CONFLICT}
_WRITES_REMOTE = frozenset(
    {Op.UPLOAD, Op.UPLOAD_META, Op.COPY_REMOTE, Op.PUT_MARKER, Op.DELETE_REMOTE}
)
EXCLUDED = Decision(Op.SKIP, reason=SkipReason.EXCLUDED)
DEFER = Decision(Op.DEFER)


def reconcile(f: Facts) -> Decision:
    if f.excluded:
        return EXCLUDED
    decision = _decide(f)
    if f.mode is not SyncMode.BIDIRECTIONAL:
        decision = _one_way(f.mode, decision)
    if (f.shadowed and decision.op in _REMOTE_DRIVEN) or (
        (f.stopping or f.remote_excluded) and decision.op in _CHANGES_LOCAL_ONLY
    ):
        return DEFER
    if decision.op in (Op.DELETE_REMOTE, Op.DELETE_LOCAL) and f.leaving:
        return WAIT  # a rename's new name is made from what is here: its end brings us back
    return decision


def _one_way(mode: SyncMode, decision: Decision) -> Decision:
    """The two-way decision, kept to one direction.

    Upload-only: the folder is the source of truth. Nothing in it is created, changed or
    deleted because of S3; a local change is written over whatever S3 holds (no condition: what
    another client wrote to that key is replaced), but a delete still needs the object to be the
    one we wrote (`If-Match`), so another client's newer object is never deleted.

    Download-only: S3 is. Nothing is written to it. A local change stays local until the key
    changes in S3: then S3's version takes the name and the local one is kept beside it as a
    conflict copy (local only, never uploaded). Local deletes and new local files stay local."""
    op = decision.op
    if mode is SyncMode.UPLOAD_ONLY:
        if op in _CHANGES_LOCAL_ONLY:
            return NOTHING
        if op in (Op.UPLOAD, Op.CONFLICT):
            return Decision(Op.UPLOAD, again=decision.again)
        if op is Op.COPY_REMOTE:  # the new key is written over whatever S3 holds there
            return Decision(Op.COPY_REMOTE)
        return decision
    if op in _WRITES_REMOTE:
        return NOTHING
    if op is Op.CONFLICT:
        return Decision(Op.CONFLICT, if_match=decision.if_match, winner=Winner.REMOTE)
    return decision


def too_many_deletions(deletions: int, files: int, max_delete_percent: float) -> bool:
    """The max-delete guard (rclone bisync's): more than `max_delete_percent` of the synced
    files, and more than 10, would be deleted at once. `100` turns it off."""
    if max_delete_percent >= 100:
        return False
    return deletions > max(10.0, files * max_delete_percent / 100.0)


def _decide(f: Facts) -> Decision:
    local, remote, synced = f.local, f.remote, f.synced
    if local is not None and local.kind is Kind.OTHER:
        return Decision(Op.SKIP, reason=SkipReason.UNSUPPORTED_TYPE)
    synced_dir = synced is not None and synced.local.kind is Kind.DIR

    if local is not None and local.kind is Kind.DIR:
        if synced is not None and not synced_dir:
            return _type_changed(f, synced)
        if remote is not None and not remote.is_dir:
            return Decision(Op.SKIP, reason=SkipReason.TYPE_CONFLICT)
        return _directory(f)

    if local is not None:  # a file or a symlink
        if synced is not None and synced_dir:
            return _type_changed(f, synced)
        if remote is not None and remote.is_dir:
            # S3 can hold `a` and `a/`; the local file keeps the name (the marker is shadowed).
            remote = None
        return _file(f, local, remote, synced)

    # Gone locally (or never there).
    if synced is not None:
        if synced_dir:
            return _directory(f)
        if remote is not None and remote.is_dir:
            return Decision(Op.FORGET, again=True)
        return _file(f, None, remote, synced)
    if remote is None:
        return NOTHING
    if remote.is_dir:
        return Decision(Op.MKDIR)
    return Decision(Op.DOWNLOAD)


def _type_changed(f: Facts, synced: Synced) -> Decision:
    """A file became a directory or the other way round: first remove the old key."""
    old = synced.remote
    remote = f.remote
    if old is None or remote is None:
        return Decision(Op.FORGET, again=True)
    if remote.same_object(old):
        return Decision(Op.DELETE_REMOTE, if_match=remote.etag, again=True)
    return Decision(Op.SKIP, reason=SkipReason.TYPE_CONFLICT)


def _file(
    f: Facts, local: LocalEntry | None, remote: RemoteEntry | None, synced: Synced | None
) -> Decision:
    if synced is None:
        if local is None:
            return Decision(Op.DOWNLOAD) if remote is not None else NOTHING
        if f.writing:
            return WAIT
        if remote is None:
            if f.moved_from is not None and _renamed_untouched(local, f.moved_from, f.hint):
                return Decision(Op.COPY_REMOTE, if_none_match=True)
            return Decision(Op.UPLOAD, if_none_match=True)
        winner = Winner.NEWER if f.initial else Winner.LOCAL
        return Decision(Op.CONFLICT, if_match=remote.etag, winner=winner)

    old = synced.remote
    local_changed = local != synced.local or (
        local is not None and local.kind is Kind.FILE and bool(f.hint & Hint.WRITTEN)
    )
    remote_changed = remote is None or old is None or not remote.same_object(old)
    if local is not None and f.writing:
        return WAIT

    if not local_changed:
        if remote is None:
            return Decision(Op.DELETE_LOCAL)
        if remote_changed:
            return Decision(Op.DOWNLOAD)
        if old is not None and (
            (old.last_modified and remote.last_modified != old.last_modified)
            # our write, not listed before a restart: rewritten (metadata) by another since
            or (not old.last_modified and old.written_since(remote))
            # seen within its Last-Modified second, listed after it: look again (a HEAD)
            or old.settled_by(remote)
            # a HEAD found another mode or mtime (a metadata copy within the same second)
            or old.metadata_differs(remote)
        ):
            return Decision(Op.APPLY_REMOTE_META)
        return NOTHING

    if local is None:
        if remote is None:
            return FORGET
        if remote_changed:
            return Decision(Op.DOWNLOAD)  # a remote change beats a local delete
        return Decision(Op.DELETE_REMOTE, if_match=remote.etag)

    if remote is None:
        return Decision(Op.UPLOAD, if_none_match=True)  # a local change beats a remote delete
    if remote_changed:
        return Decision(Op.CONFLICT, if_match=remote.etag, winner=Winner.LOCAL)
    if local.kind is Kind.SYMLINK or _content_changed(local, synced.local, f.hint):
        return Decision(Op.UPLOAD, if_match=remote.etag)
    return Decision(Op.UPLOAD_META, if_match=remote.etag)


def _renamed_untouched(local: LocalEntry, move: Move, hint: Hint) -> bool:
    """Whether `local` is the file synced as `move` says, renamed and nothing more: the same
    inode, size and mtime (a rename moves only its ctime), no close after a write since, and
    the synced object holds those bytes (its size). Moved with a directory above it, its own
    ctime did not move: it must still be the one its bytes were proven at (`Move.in_tree`).
    The mode may differ: it is restated."""
    old, remote = move.synced.local, move.synced.remote
    return (
        remote is not None
        and not remote.is_dir
        and local.kind is Kind.FILE
        and old.kind is Kind.FILE
        and local.ino == old.ino
        and local.size == old.size == remote.size
        and local.mtime_ns == old.mtime_ns
        and not hint & Hint.WRITTEN
        and (not move.in_tree or local.ctime_ns == old.ctime_ns != 0)
    )


def _content_changed(local: LocalEntry, old: LocalEntry, hint: Hint) -> bool:
    if hint & Hint.CONTENT:
        return True
    if local.kind != old.kind or local.size != old.size or local.ino != old.ino:
        return True
    # Same size and inode: a touch (IN_ATTRIB only) changes mtime without a write. Without
    # an event to say so (a rescan), a changed mtime is treated as a content change.
    return local.mtime_ns != old.mtime_ns and not hint & Hint.META


def _directory(f: Facts) -> Decision:
    local, synced = f.local, f.synced
    marker = f.remote if f.remote is not None and f.remote.is_dir else None
    remote_present = marker is not None or f.remote_children > 0

    if local is not None:
        if synced is None:
            if remote_present:
                return Decision(Op.RECORD)
            return Decision(Op.PUT_MARKER, if_none_match=True)
        if remote_present:
            if marker is not None and f.hint & Hint.META and local.mode != synced.local.mode:
                return Decision(Op.PUT_MARKER)
            if marker != synced.remote:
                return Decision(Op.RECORD)
            return NOTHING
        if f.hint & Hint.CHILD_REMOVED:
            # The last key below it went because of a local delete: keep the empty directory.
            return Decision(Op.PUT_MARKER, if_none_match=True)
        return Decision(Op.RMDIR)

    if synced is None:
        return Decision(Op.MKDIR) if marker is not None else NOTHING
    if marker is not None:
        return Decision(Op.DELETE_REMOTE, if_match=marker.etag)
    if f.remote is not None:  # S3 now holds a file at this name: decide again, as a file
        return Decision(Op.FORGET, again=True)
    return FORGET
