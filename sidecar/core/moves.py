"""Renames in flight: which new paths hold a synced file that was just renamed there, from where,
and which old paths must keep what they hold until the new one is made from it.

Both ways. A local rename (inotify's IN_MOVED_FROM and IN_MOVED_TO with one cookie, paired by
local/events.py) of a file in sync needs no upload: S3 can copy the synced object to the new
key (CopyObject, `x-amz-copy-source-if-match` on its ETag: ops/rename.py), and the old key is
then deleted as for any local delete. A rename in S3 (a key gone and one with its ETag come in
one listing, paired by remote/fold.py) needs no download: the synced file at the old path is
copied to the new one here and proven by the ETag (ops/fetch.py), then the old file deleted.
Only the pass over the new path knows whether that holds (`reconcile`'s `moved_from`); only
after it may the old key or file go (`leaving`: the old path's delete waits, `Op.WAIT`), or
the copy would find no source.

Invariants:
- a move is remembered only with its target path submitted for a pass (events.py, fold.py),
  and the target's first pass ends it (`done`), whatever it decided and however it ended: so
  every old path that waits is brought back (the caller submits what `done` returns), and
  nothing waits for a pass that never comes;
- what is remembered is in this process only: a restart forgets it, and then the old path is
  deleted and the new one uploaded (or downloaded) as before, or agreed with if the copy had
  landed;
- an inotify overflow forgets every move (`forget_all`): events may have been lost in between.

Cost: two dict entries per file of a rename until its target's pass; nothing otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Synced


@dataclass(frozen=True, slots=True)
class Move:
    """A synced file renamed to a path: where it was, what was synced there, and whether it
    moved with a directory renamed above it (`in_tree`): then its own ctime did not move, and
    must still be the one its bytes were proven at. (A directory's rename drops the watches
    below it until its new name is watched again: a write in between reports nothing.)"""

    source: str
    synced: Synced
    in_tree: bool = False


class Moves:
    def __init__(self) -> None:
        self._to: dict[str, Move] = {}  # by target path
        self._leaving: dict[str, int] = {}  # source path -> how many targets copy from it

    def __len__(self) -> int:
        return len(self._to)

    def renamed(self, source: str, target: str, synced: Synced, *, in_tree: bool) -> list[str]:
        """The file synced at `source` (as `synced`) was renamed to `target` (`in_tree`: with
        a directory above it). Returns the sources that no longer wait (a move to `target`
        that this one replaced)."""
        released = self._end(target)
        self._to[target] = Move(source, synced, in_tree)
        self._leaving[source] = self._leaving.get(source, 0) + 1
        return released

    def moved_here(self, target: str) -> Move | None:
        """The move whose file is at `target`, if its pass has not ended it yet."""
        return self._to.get(target)

    def leaving(self, source: str) -> bool:
        """Whether a copy from `source`'s synced object to a new path is pending."""
        return source in self._leaving

    def done(self, target: str, move: Move) -> list[str]:
        """The pass over `target` that saw `move` has ended it (copied, or not): the sources
        whose key may now be deleted, to be looked at again."""
        if self._to.get(target) is not move:
            return []
        return self._end(target)

    def forget_all(self) -> list[str]:
        """Events were lost: no pairing can be trusted. Every source is to be looked at again."""
        sources = list(self._leaving)
        self._to.clear()
        self._leaving.clear()
        return sources

    def _end(self, target: str) -> list[str]:
        move = self._to.pop(target, None)
        if move is None:
            return []
        count = self._leaving.get(move.source, 0) - 1
        if count > 0:
            self._leaving[move.source] = count
        else:
            self._leaving.pop(move.source, None)
        return [move.source]


__all__ = ["Move", "Moves"]
