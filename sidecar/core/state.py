"""What the sidecar knows about each path, and the only place that changes it.

One `PathState` per path that exists on either side (or has something pending): the last synced
state, the latest remote state, and what inotify said since. Its fields are read anywhere but
assigned only here, through named transitions:

- from inotify: `modified`, `closed`, `removed`, `hinted`, `quiet_writers`, `lost_events`;
- from a pass over the path: `begin` (what the pass saw), `settled`, `failed`, `raced`;
- from S3 and the executor: `set_remote`, `set_synced`, `record`, `agree`, `wrote_remote`,
  `forget`, `listed_unchanged`, `proven`;
- from the start-up restore and listings: `load_synced`, `mark_initial`, `set_shadowed`;
- `hinted` also from a pass and from downloads and deletes, when a file's bytes are proven
  not to be the synced ones though its stat is (proof.py).

Invariant: a hint that arrives while a pass is running survives that pass, and only it (`settled`
keeps the hints that came since `begin`): the next pass still knows the content changed, and a
chmod made while a write's upload runs is not taken for another write (a second upload of the same
bytes where a metadata update does).

The retry timing of a path is here too: `failed` for errors, `raced` for a path that changed
under the pass, each a named starting point of the one back-off (backoff.py). The synced
records are also kept on disk (store.py), for restarts: the `on_synced` the state is built with
hears of every change of one, except the records `load_synced` takes from the store itself.

Cost: about 1.3 KB per tracked path in all (measured at 100,000 paths, README "Measured"), of
which the `PathState` is 80 bytes: what only a path with something going on needs (hints, an
open writer, failures) is one `_Activity`, made when needed and let go of when a pass settles
the path quietly; the restore's paths are a set (`is_initial`), not a field.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, replace
from typing import Generic, TypeVar, cast

from ..backoff import PATH_FAILED, PATH_RACED
from .keys import parents_of
from .model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from .moves import Moves

_T = TypeVar("_T")


class _Activity:
    """What only a path with something going on needs: hints, an open writer, failures and
    races, shadowing. Made by the first of those and let go of when a pass settles the path
    quietly (`SyncState.settled`), so the many paths merely in sync carry none of it."""

    __slots__ = (
        "failures",
        "hint",
        "hint_late",
        "last_modify",
        "mod_gen",
        "races",
        "shadowed",
        "writing",
    )

    def __init__(self) -> None:
        self.hint = Hint.NONE
        self.hint_late = Hint.NONE  # the hints since the last `begin`: what a pass did not see
        self.writing = False  # IN_MODIFY seen, IN_CLOSE_WRITE not yet
        self.mod_gen = 0  # set anew by every IN_MODIFY: an upload checks it did not move
        self.last_modify = 0.0
        self.failures = 0  # consecutive failed passes
        self.races = 0  # consecutive passes that found the path changed under them
        self.shadowed = False  # a file key above it hides it (S3 has `a` and `a/b`)

    def quiet(self) -> bool:
        return not (self.hint or self.writing or self.failures or self.races or self.shadowed)


_QUIET = _Activity()  # what a path without activity reads (never assigned to)


class _ActivityField(Generic[_T]):
    """A field of a path's activity, read on the path (its default while it has none)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._read = operator.attrgetter(name)

    def __get__(self, ps: PathState, owner: type | None = None) -> _T:
        return cast(_T, self._read(ps._activity or _QUIET))


class PathState:
    """One path: the two fields every tracked path has (`synced`, `remote`), the time our own
    request last changed its key, a cache for listings (`listed`), and its activity.

    Generations (`mod_gen`) come from one counter per `SyncState`, so a value a pass
    saw is never handed out again, even after the activity holding it was let go of. Cost: 80
    bytes a path in sync (5 slots), was 128 with every field a slot (12)."""

    __slots__ = ("_activity", "listed", "remote", "remote_changed_at", "synced")

    def __init__(self) -> None:
        self.synced: Synced | None = None
        self.remote: RemoteEntry | None = None
        # The listing entry last found to tell nothing new about `remote` (unchanged_in): a
        # listing taken again as it was (fold.py) checks by identity. Cleared with `remote`.
        self.listed: RemoteEntry | None = None
        self.remote_changed_at = 0.0  # monotonic time our own request last changed the key
        self._activity: _Activity | None = None

    def _active(self) -> _Activity:
        activity = self._activity
        if activity is None:
            activity = self._activity = _Activity()
        return activity

    def _settle(self) -> None:
        """A pass settled the path: let its activity go if nothing is going on."""
        if self._activity is not None and self._activity.quiet():
            self._activity = None

    hint = _ActivityField[Hint]()
    writing = _ActivityField[bool]()
    mod_gen = _ActivityField[int]()
    last_modify = _ActivityField[float]()
    failures = _ActivityField[int]()
    races = _ActivityField[int]()
    shadowed = _ActivityField[bool]()

    def is_empty(self) -> bool:
        seen = self._activity or _QUIET
        return (
            self.synced is None
            and self.remote is None
            and not seen.writing
            and not seen.hint
            and not seen.failures
        )


@dataclass(frozen=True, slots=True)
class Seen:
    """What a pass saw of a path when it began."""

    hint: Hint
    mod_gen: int


class SyncState:
    def __init__(self, on_synced: Callable[[str, Synced | None], None] | None = None) -> None:
        self.paths: dict[str, PathState] = {}
        self.children: dict[str, int] = {}  # remote keys strictly below each directory
        self.synced_count = 0
        self.remote_count = 0  # paths whose `remote` is known
        self.synced_files = 0  # of those, files and symlinks (what the delete guard counts)
        self.writers: set[str] = set()  # paths open for writing (`PathState.writing`): the sweep
        self._shadowed: set[str] = set()  # what the last listing found shadowed
        # Told of every change of a synced record (the on-disk store listens here).
        self._on_synced = on_synced
        # Paths the start-up restore found, until a pass settles each (a set, not a field: a
        # restore's worth of small objects made and let go of would stay in the heap as holes).
        self._initial: set[str] = set()
        self._generations = itertools.count(1)  # mod_gen: never handed out twice
        # Renames in flight, both ways: paired by inotify (local/events.py) or by a fold of
        # what S3 holds (remote/fold.py), ended by the new path's pass (engine/pipeline.py).
        self.moves = Moves()

    # -- lookup --------------------------------------------------------------------------

    def get(self, rel: str) -> PathState:
        state = self.paths.get(rel)
        if state is None:
            state = self.paths[rel] = PathState()
        return state

    def peek(self, rel: str) -> PathState | None:
        return self.paths.get(rel)

    def prune(self, rel: str) -> None:
        state = self.paths.get(rel)
        if state is not None and state.is_empty() and rel not in self._initial:
            del self.paths[rel]

    def remote_children(self, rel: str) -> int:
        return self.children.get(rel, 0)

    def in_s3_through_keys(self, rel: str) -> bool:
        """Whether S3 holds keys below `rel` (it is a directory there without its marker)."""
        return self.children.get(rel, 0) > 0

    def flipped(self, before: Mapping[str, bool]) -> list[str]:
        """The directories of `before` (each `in_s3_through_keys` then) that have since come to
        exist in S3 through keys below them, or ceased to: each is a remote change to look at
        (a listing would show it; a single request that learned of one key does not)."""
        return [rel for rel, was in before.items() if was != self.in_s3_through_keys(rel)]

    def under(self, top: str) -> list[str]:
        """Known paths strictly below `top`."""
        prefix = top + "/"
        return [rel for rel in self.paths if rel.startswith(prefix)]

    def children_of(self, dirs: Set[str]) -> list[str]:
        """Known paths directly inside one of `dirs` ("" is the root). One pass over them all."""
        return [rel for rel in self.paths if rel.rpartition("/")[0] in dirs]

    # -- inotify -------------------------------------------------------------------------

    def modified(self, rel: str, now: float) -> None:
        activity = self.get(rel)._active()
        activity.writing = True
        activity.mod_gen = next(self._generations)
        activity.last_modify = now
        self.writers.add(rel)

    def closed(self, rel: str) -> None:
        self._not_writing(rel, self.get(rel))

    def removed(self, rel: str) -> None:
        self._not_writing(rel, self.get(rel))

    def hinted(self, rel: str, hint: Hint) -> None:
        activity = self.get(rel)._active()
        activity.hint |= hint
        activity.hint_late |= hint

    def quiet_writers(self, now: float, timeout: float) -> list[str]:
        """Files modified and not closed for `timeout` seconds: taken as written."""
        quiet: list[str] = []
        for rel in list(self.writers):
            ps = self.paths.get(rel)
            if ps is None or not ps.writing:
                self.writers.discard(rel)
            elif now - ps.last_modify >= timeout:
                self._not_writing(rel, ps)
                quiet.append(rel)
        return quiet

    def lost_events(self) -> list[str]:
        """Inotify overflowed: closes may have been lost. Returns every known path."""
        for rel in list(self.writers):
            ps = self.paths.get(rel)
            if ps is not None:
                self._not_writing(rel, ps)
        self.writers.clear()
        return list(self.paths)

    def _not_writing(self, rel: str, ps: PathState) -> None:
        if ps._activity is not None:
            ps._activity.writing = False
        self.writers.discard(rel)

    # -- passes --------------------------------------------------------------------------

    def begin(self, rel: str) -> tuple[PathState, Seen]:
        """A pass looks at the path: what it sees now is what its `settled` will clear."""
        ps = self.get(rel)
        if ps._activity is not None:
            ps._activity.hint_late = Hint.NONE
        return ps, Seen(ps.hint, ps.mod_gen)

    def settled(self, rel: str) -> None:
        """The pass acted on what it saw at its `begin`: clear those hints (keeping the ones that
        came since) and its counts."""
        ps = self.get(rel)
        activity = ps._activity
        if activity is not None:
            activity.hint = activity.hint_late
            activity.failures = 0
            activity.races = 0
            ps._settle()
        if rel in self._initial:
            self._initial.discard(rel)
            if not self._initial:
                self._initial = set()  # a set never shrinks: let go of a restore's 100,000

    def failed(self, rel: str) -> float:
        """The pass failed: how long to wait before the next attempt."""
        activity = self.get(rel)._active()
        activity.failures += 1
        return PATH_FAILED.delay(activity.failures)

    def raced(self, rel: str) -> float:
        """The path changed under the pass: how long to wait before deciding again."""
        activity = self.get(rel)._active()
        activity.races += 1
        return PATH_RACED.delay(activity.races)

    # -- facts from S3 and from the executor --------------------------------------------

    def set_remote(self, rel: str, entry: RemoteEntry | None) -> None:
        state = self.get(rel)
        if (state.remote is None) != (entry is None):
            delta = 1 if entry is not None else -1
            self.remote_count += delta
            for parent in parents_of(rel):
                count = self.children.get(parent, 0) + delta
                if count > 0:
                    self.children[parent] = count
                else:
                    self.children.pop(parent, None)
        state.remote = entry
        state.listed = None

    def found_archived(self, rel: str, etag: str) -> None:
        """S3 refused to read version `etag` at `rel` until it is restored: known so, until S3
        says otherwise (a HEAD, a new version), so that no pass asks for it again."""
        ps = self.get(rel)
        remote = ps.remote
        if remote is not None and remote.etag == etag and not remote.archived:
            ps.remote = replace(remote, archived=True)
            ps.listed = None

    def listed_unchanged(self, ps: PathState, entry: RemoteEntry) -> None:
        """A listing's `entry` was found to tell nothing new about `ps.remote`: the same entry
        in the next listing (a page taken again as it was) needs no comparison."""
        ps.listed = entry

    def set_synced(self, rel: str, synced: Synced | None) -> None:
        self._set_synced(rel, synced, self._on_synced)

    def load_synced(self, records: Mapping[str, Synced]) -> None:
        """What was synced before a restart, as the store kept it (not told back to it)."""
        for rel, synced in records.items():
            self._set_synced(rel, synced, None)

    def _set_synced(
        self,
        rel: str,
        synced: Synced | None,
        on_synced: Callable[[str, Synced | None], None] | None,
    ) -> None:
        state = self.get(rel)
        old = state.synced
        if (old is None) != (synced is None):
            self.synced_count += 1 if synced is not None else -1
        self.synced_files += _is_file(synced) - _is_file(old)
        if on_synced is not None and (synced != old or _ctime(synced) != _ctime(old)):
            on_synced(rel, synced)
        state.synced = synced

    def record(self, rel: str, local: LocalEntry, remote: RemoteEntry | None) -> None:
        """Both sides agree: `local` here is `remote` (what S3 is already known to hold)."""
        self.set_synced(rel, Synced(local, remote))

    def agree(self, rel: str, local: LocalEntry, remote: RemoteEntry) -> None:
        """S3 was just seen to hold `remote`, and `local` here is the same."""
        self.set_remote(rel, remote)
        self.set_synced(rel, Synced(local, remote))

    def agree_bytes(self, rel: str, synced: Synced, remote: RemoteEntry) -> None:
        """Both sides hold the same bytes; S3 holds `remote`. `synced` is what the next pass
        compares with: it carries the metadata of the side that did not win, so that the
        winner's mode and mtime are taken by the other side."""
        self.set_remote(rel, remote)
        self.set_synced(rel, synced)

    def wrote_remote(self, rel: str, local: LocalEntry | None, remote: RemoteEntry | None) -> None:
        """Our own request changed the key (a listing that began earlier must not undo it)."""
        self.set_remote(rel, remote)
        self.set_synced(rel, None if local is None else Synced(local, remote))
        self.get(rel).remote_changed_at = time.monotonic()

    def proven(self, rel: str, synced: Synced, ctime_ns: int) -> None:
        """The file at `rel` was read and holds `synced`'s bytes at `ctime_ns` (taken before
        the read: a write since moved it again): the record is proven at that ctime, so the
        file is not read again until its ctime moves (proof.unproven). Nothing if the record
        changed meanwhile."""
        if self.get(rel).synced is synced:
            self.set_synced(rel, Synced(replace(synced.local, ctime_ns=ctime_ns), synced.remote))

    def forget(self, rel: str) -> None:
        self.set_synced(rel, None)

    def mark_initial(self, rel: str) -> None:
        self.get(rel)
        self._initial.add(rel)

    def is_initial(self, rel: str) -> bool:
        """Restoring at start, not yet settled: the app is not running yet."""
        return rel in self._initial

    def set_shadowed(self, shadowed: set[str]) -> None:
        """The paths a listing found hidden by a file key above them (and no others)."""
        for rel in self._shadowed - shadowed:
            if (ps := self.paths.get(rel)) is not None and ps._activity is not None:
                ps._activity.shadowed = False
        for rel in shadowed:
            self.get(rel)._active().shadowed = True
        self._shadowed = set(shadowed)


def _ctime(synced: Synced | None) -> int:
    """The ctime a record was proven at (not part of `LocalEntry` equality, yet saved)."""
    return 0 if synced is None else synced.local.ctime_ns


def _is_file(synced: Synced | None) -> int:
    return int(synced is not None and synced.local.kind is not Kind.DIR)
