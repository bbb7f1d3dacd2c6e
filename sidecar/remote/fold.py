"""The fold of what S3 holds into the state: a listing (`apply_snapshot`, by the poller and the
start-up restore) or what single requests found about single paths (`apply_findings`, the change
feed's HEADs), under one set of rules (`_Fold`), so that "deleted in S3" and "changed in S3" are
noticed in one place and the decision stays in `reconcile`.

Invariants:
- A listing or a finding describes S3 at the moment it *started*: a path our own request changed
  after that moment, or one being synced right now, keeps what we know (`_Fold.stale`), so a
  fold can never undo a fresh upload or delete.
- Keys that listings leave out (the remote exclude pattern) and keys hidden below a file's name
  (shadowed) are never taken as deleted; more deletions at once than the max-delete guard allows
  are held back, and reported, instead of applied (a key whose object the same listing shows
  under a new key was renamed, not deleted: it is not counted).
- An object we saw within its Last-Modified second is handed back once as a change by the first
  listing after that second (`Applied.checked`: one HEAD learns what the second ended with);
  a directory whose presence in S3 flipped because keys below it came or went is a change too
  (`_Fold.finish`).
- A key gone and a new one with its ETag and size, in one fold, are a rename in S3 (`aws s3
  mv`, rclone: a copy then a delete; a prefix's rename is many at once, paired together):
  the new path is told where its bytes may already be here (`SyncState.moves`), so that its
  download copies them from the synced file, proven by the ETag, instead of fetching them;
  the old file is deleted after that (`Facts.leaving`). A new key that no gone key holds is
  paired with a synced file here that holds its object, its key gone or not (a rename seen
  half done, a copy in S3): copied from, not moved. Only paths the fold hands back as
  changed are paired: each has a pass, which ends the pairing whatever it finds.
- The poller's listings delete a synced file here only when two in a row miss its key
  (`missed`): a listing that sees a prefix's rename half done (the new name not copied when
  its page was read, the old one deleted when its page was) keeps the file for the next,
  which pairs it.

Cost: the fold skips every key whose entry tells nothing new (`RemoteEntry.unchanged_in`), by
identity when the same entry was found so before (`PathState.listed`), and looks for gone keys
only when fewer known keys were listed than are known (`SyncState.remote_count`): about 0.05 s
at 100,000 unchanged keys. A new key no gone key holds costs one look at every path for a
synced file holding its object (`_pair_with_files_here`): 0.03 s at 100,000 paths, once per
listing that has any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ..core.keys import parents_of
from ..core.model import Kind, RemoteEntry, Synced, is_plain_md5
from ..core.moves import Moves
from ..core.reconcile import too_many_deletions
from ..core.state import SyncState


@dataclass(slots=True)
class Snapshot:
    """A listing: the entries by path, the paths hidden by a file key above them, and when it
    began."""

    entries: dict[str, RemoteEntry]
    shadowed: set[str]
    started: float  # monotonic time the listing began


@dataclass(slots=True)
class Applied:
    changed: list[str] = field(default_factory=list)
    held_deletions: int = 0
    # Same bytes, new Last-Modified or metadata: one HEAD tells (the scheduler's check pool).
    checked: list[str] = field(default_factory=list)
    # Synced files whose keys this listing missed and whose deletion here waits for the next
    # (`apply_snapshot`'s `missed`): to pass to it.
    missed: set[str] = field(default_factory=set)


def apply_snapshot(
    state: SyncState,
    snapshot: Snapshot,
    *,
    busy: Callable[[str], bool],
    max_delete_percent: float,
    initial: bool,
    trust_after: float = 0.0,
    unlisted: Callable[[str, bool], bool] = lambda rel, is_dir: False,
    missed: set[str] | None = None,
) -> Applied:
    """Fold a listing into `state`; return the paths whose remote side changed.

    Paths changed by our own requests since the listing began, or being synced right now,
    keep what we know (`trust_after` widens that window, for stores that are only eventually
    consistent: mobius3's `local_modification_persistance`). When more synced files would be
    deleted locally than the max-delete guard allows, those deletions are held back (and
    reported) instead of applied. Keys that listings leave out (`unlisted`: the remote exclude
    pattern) are never taken as deleted.

    `missed` (the poller's listings): a synced file is deleted here only when two listings in
    a row miss its key (those the last one missed, `Applied.missed` then), unless this one
    shows its object under a new key. A listing reads its pages one after another, and a
    prefix renamed meanwhile (`aws s3 mv`: a copy, then a delete, key by key) may be listed
    with a key's new name not copied yet when its page was read and its old one deleted when
    its page was: the next listing shows the new key, paired then, and no byte is downloaded.
    A listing that wrongly misses keys deletes nothing either. None: deleted at once (the
    start-up restore, which never runs beside a rename it could not see whole next time).
    """
    fold = _Fold(state, snapshot.started, busy, trust_after)
    entries = snapshot.entries
    paths = state.paths
    known_before = state.remote_count
    known_listed = 0  # listed paths whose remote was known: all known ones, when none is gone
    for rel, entry in entries.items():
        ps = paths.get(rel)
        if ps is not None and (remote := ps.remote) is not None:
            known_listed += 1
            # What `listed` checks first, without the call: the steady state. An entry of a
            # listing taken again was already compared with this `remote` (`listed`).
            if ps.listed is entry:
                continue
            if remote.unchanged_in(entry):
                state.listed_unchanged(ps, entry)
                continue
        fold.listed(rel, entry)

    removed = [
        rel
        for rel, ps in ([] if known_listed == known_before else state.paths.items())
        if ps.remote is not None
        and rel not in entries
        and rel not in snapshot.shadowed
        and not unlisted(rel, ps.remote.is_dir)
        and not fold.stale(rel)
    ]
    local_deletions = [
        rel
        for rel in removed
        if (ps := state.paths[rel]).synced is not None and ps.synced.local.kind is not Kind.DIR
    ]
    held_deletions = 0
    # A key whose object came back under a new key in this listing was renamed, not deleted:
    # its bytes are still in S3 (a prefix renamed by `aws s3 mv --recursive` is no mass delete).
    renamed = fold.renamed_away(local_deletions)
    kept: set[str] = set()  # synced files whose keys are missing, not deleted here now
    if missed is not None:
        pairable = fold.may_pair(local_deletions)  # (those `renamed`, and copies in parts)
        kept = {rel for rel in local_deletions if rel not in pairable and rel not in missed}
    deleting = len(local_deletions) - len(renamed) - len(kept)
    if not initial and too_many_deletions(deleting, state.synced_files, max_delete_percent):
        held_deletions = len(local_deletions) - len(kept)
        kept.update(local_deletions)
    if kept:
        removed = [rel for rel in removed if rel not in kept]
    for rel in removed:
        fold.gone(rel)

    state.set_shadowed(snapshot.shadowed)
    missing = kept - renamed if missed is not None else set()
    return Applied(fold.finish(), held_deletions, fold.checked, missing)


def apply_findings(
    state: SyncState,
    findings: dict[str, RemoteEntry | None],
    *,
    started: float,
    busy: Callable[[str], bool],
) -> list[str]:
    """Fold what single requests found out about single paths (an event's HEAD: the entry,
    or None when S3 answered that there is no such object) as a listing would; return the
    paths whose remote side changed. Each finding describes S3 at `started` (monotonic)."""
    fold = _Fold(state, started, busy, 0.0)
    for rel, entry in findings.items():
        if entry is not None:
            fold.listed(rel, entry)
        elif (ps := state.peek(rel)) is not None and ps.remote is not None and not fold.stale(rel):
            fold.gone(rel)
    return fold.finish() + fold.checked


class _Fold:
    """One fold of what S3 holds into `state`: the rules shared by listings and findings."""

    def __init__(
        self, state: SyncState, started: float, busy: Callable[[str], bool], trust_after: float
    ) -> None:
        self._state = state
        self._started = started
        self._busy = busy
        self._trust_after = trust_after
        self.changed: list[str] = []
        self.checked: list[str] = []  # same object, new Last-Modified or metadata
        self._before: dict[str, bool] = {}  # each touched parent: in S3 before the fold
        self._came: list[tuple[str, RemoteEntry]] = []  # new keys where nothing is synced
        self._went: list[tuple[str, Synced]] = []  # keys gone whose files are synced here

    def stale(self, rel: str) -> bool:
        """Changed by our own request since S3 was looked at, or being synced right now."""
        ps = self._state.peek(rel)
        return ps is not None and (
            ps.remote_changed_at > self._started - self._trust_after or self._busy(rel)
        )

    def _note_parents(self, rel: str) -> None:
        for parent in parents_of(rel):
            if parent not in self._before:
                self._before[parent] = self._state.in_s3_through_keys(parent)

    def listed(self, rel: str, entry: RemoteEntry) -> None:
        state = self._state
        ps = state.peek(rel)
        old = ps.remote if ps is not None else None
        if old is not None and old.same_object(entry):
            if old.unchanged_in(entry):
                return
            if not old.last_modified:
                # First listing after our own write: learn its Last-Modified. One later than
                # S3's answer to us is another client's rewrite since (of the same bytes: a
                # metadata-only copy): ours is then taken as that answer, and the listed one is
                # a change, to apply as any other.
                learned = entry.last_modified
                if old.written_since(entry):
                    learned = old.written_by
                adopted = replace(old, last_modified=learned, written_by="")
                state.set_remote(rel, adopted)
                assert ps is not None
                if (
                    ps.synced is not None
                    and ps.synced.remote is not None
                    and ps.synced.remote.same_object(entry)
                ):
                    state.set_synced(rel, replace(ps.synced, remote=adopted))
                if (
                    learned == entry.last_modified
                    and not old.metadata_differs(entry)
                    and not old.settled_by(entry)
                ):
                    return
        if self.stale(rel):
            return
        if old is None:
            self._note_parents(rel)
            if not entry.is_dir and (ps is None or ps.synced is None):
                self._came.append((rel, entry))
        elif old.same_object(entry):  # same content, new Last-Modified (or new metadata)
            if entry.mode is None and entry.mtime_ns is None:  # listed: keep what is known
                entry = replace(entry, mtime_ns=old.mtime_ns, mode=old.mode)
            if not entry.checksum:  # the same bytes: what proves them still does
                entry = replace(entry, checksum=old.checksum, part_size=old.part_size)
            if entry.last_modified == old.last_modified and entry.archived != old.archived:
                # Looked at again after its second: whether it can be read is what a HEAD or
                # a refused GET found, not what its listed class suggests.
                entry = replace(entry, archived=old.archived)
            state.set_remote(rel, entry)
            self.checked.append(rel)
            return
        state.set_remote(rel, entry)
        self.changed.append(rel)

    def renamed_away(self, rels: list[str]) -> set[str]:
        """Of `rels` (synced files whose keys this fold found gone), those whose object (ETag
        and size) one of this fold's new keys holds, each new key counted once."""
        came: dict[tuple[str, int], int] = {}
        for _, entry in self._came:
            came[entry.etag, entry.size] = came.get((entry.etag, entry.size), 0) + 1
        renamed: set[str] = set()
        for rel in rels:
            synced = self._state.paths[rel].synced
            remote = synced.remote if synced is not None else None
            if remote is not None and came.get((remote.etag, remote.size), 0) > 0:
                came[remote.etag, remote.size] -= 1
                renamed.add(rel)
        return renamed

    def may_pair(self, rels: list[str]) -> set[str]:
        """Of `rels` (synced files whose keys this fold found gone), those one of this fold's
        new keys may hold the object of (`RemoteEntry.may_be_copied_as`): paired by this fold
        (`pair_renames`), whose copy here proves it or not."""
        exact = {(entry.etag, entry.size) for _, entry in self._came}
        sizes = {entry.size for _, entry in self._came}
        parts = {entry.size for _, entry in self._came if not is_plain_md5(entry.etag)}
        pairable: set[str] = set()
        for rel in rels:
            synced = self._state.paths[rel].synced
            remote = synced.remote if synced is not None else None
            if remote is not None and (
                (remote.etag, remote.size) in exact
                or remote.size in (parts if is_plain_md5(remote.etag) else sizes)
            ):
                pairable.add(rel)
        return pairable

    def gone(self, rel: str) -> None:
        self._note_parents(rel)
        ps = self._state.get(rel)
        synced = ps.synced
        if (
            synced is not None
            and synced.local.kind is Kind.FILE
            and synced.remote is not None
            and not synced.remote.is_dir
        ):
            self._went.append((rel, synced))
        self._state.set_remote(rel, None)
        self.changed.append(rel)

    def finish(self) -> list[str]:
        """The changed paths, with every directory whose remote presence flipped; renames in
        S3 paired (`pair_renames`)."""
        if self._came:
            self.changed += pair_renames(self._state, self._came, self._went)
        self.changed += self._state.flipped(self._before)
        return self.changed


def pair_renames(
    state: SyncState, came: list[tuple[str, RemoteEntry]], went: list[tuple[str, Synced]]
) -> list[str]:
    """Renames in S3: each new key of `came` (where nothing is synced) paired with a key of
    `went` (gone, its file synced here) that held the same object (ETag and size), in
    `state.moves`; one dict lookup per new key, however many are renamed at once. A new key
    that none matches so may still be a copy made in other parts (`RemoteEntry.
    may_be_copied_as`: a large object `aws s3 mv` copied in its own parts): it is paired with a
    gone key of its size left over, one of the same name first (`mv big.bin archive/`), and
    the copy here proves or refuses it (ops/fetch.py). Returns the old paths an earlier pairing
    no longer holds (to look at again). The fold's, and the start-up restore's (whose records
    only the listing shows gone)."""
    by_object: dict[tuple[str, int], list[tuple[str, Synced]]] = {}
    for rel, synced in went:
        remote = synced.remote
        if remote is not None and not remote.is_dir and synced.local.kind is Kind.FILE:
            by_object.setdefault((remote.etag, remote.size), []).append((rel, synced))
    released: list[str] = []
    moves = state.moves
    unmatched: list[tuple[str, RemoteEntry]] = []  # (may be copies made in other parts)
    for rel, entry in came:
        if entry.is_dir:
            continue
        sources = by_object.get((entry.etag, entry.size))
        if sources:
            source, synced = sources.pop()
            released += moves.renamed(source, rel, synced, in_tree=False)
        else:
            unmatched.append((rel, entry))
    if unmatched and by_object:
        unmatched = _pair_copies_in_other_parts(moves, unmatched, by_object.values(), released)
    if unmatched:
        released += _pair_with_files_here(state, unmatched)
    return released


def _pair_with_files_here(state: SyncState, came: list[tuple[str, RemoteEntry]]) -> list[str]:
    """`pair_renames` for new keys no gone key holds: each paired with a synced file here whose
    synced object it holds (ETag and size; not empty), its key gone or not: a rename seen half
    done (the new key listed, the old one not deleted yet when its page was read), or a copy.
    The file is copied from, not moved (its own key decides whether it stays), and it may give
    its bytes to many new keys. One look at every path, only when some new key is unpaired."""
    wanted = {(entry.etag, entry.size) for _, entry in came if entry.size}
    if not wanted:
        return []
    holders: dict[tuple[str, int], tuple[str, Synced]] = {}
    for rel, ps in state.paths.items():
        synced = ps.synced
        if synced is None or synced.local.kind is not Kind.FILE:
            continue
        remote = synced.remote
        if remote is not None and not remote.is_dir and (remote.etag, remote.size) in wanted:
            holders.setdefault((remote.etag, remote.size), (rel, synced))
    released: list[str] = []
    for rel, entry in came:
        holder = holders.get((entry.etag, entry.size))  # (never `rel`: nothing is synced there)
        if holder is not None:
            released += state.moves.renamed(holder[0], rel, holder[1], in_tree=False)
    return released


def _pair_copies_in_other_parts(
    moves: Moves,
    came: list[tuple[str, RemoteEntry]],
    left: Iterable[list[tuple[str, Synced]]],
    released: list[str],
) -> list[tuple[str, RemoteEntry]]:
    """`pair_renames` for new keys no gone key matched by ETag: each paired with a gone key
    left of its size that `may_be_copied_as` it, one of the same name first. Every candidate
    list is keyed so that what it holds qualifies (size, and whether its ETag is an MD5: two
    MD5s never pair), and each gone key is taken once: linear in the keys, however many share
    a size or a name. Adds to `released` the old paths no longer held; returns the new keys
    still unpaired."""
    pools: dict[tuple[int, bool, str], list[tuple[str, Synced]]] = {}
    for sources in left:
        for rel, synced in sources:
            assert synced.remote is not None  # (pair_renames keeps only such)
            remote = synced.remote
            plain = is_plain_md5(remote.etag)
            pools.setdefault((remote.size, plain, ""), []).append((rel, synced))
            pools.setdefault((remote.size, plain, _name(rel)), []).append((rel, synced))
    taken: set[str] = set()
    unpaired: list[tuple[str, RemoteEntry]] = []
    for rel, entry in came:
        # An MD5 pairs only with a multipart ETag; a multipart ETag with either.
        kinds = (False,) if is_plain_md5(entry.etag) else (False, True)
        keys = [(entry.size, plain, name) for name in (_name(rel), "") for plain in kinds]
        for key in keys:
            pool = pools.get(key)
            while pool and pool[-1][0] in taken:
                pool.pop()
            if pool:
                source, synced = pool.pop()
                taken.add(source)
                released += moves.renamed(source, rel, synced, in_tree=False)
                break
        else:
            unpaired.append((rel, entry))
    return unpaired


def _name(rel: str) -> str:
    return rel.rpartition("/")[2]
