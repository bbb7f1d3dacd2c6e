"""What the sidecar knows about each path: the last synced state, the latest remote state, and
what inotify said since. One `PathState` per path that exists on either side; the synced
records are also kept on disk (store.py), for restarts."""

from __future__ import annotations

from collections.abc import Callable

from .keys import parents_of
from .model import Hint, RemoteEntry, Synced


class PathState:
    __slots__ = (
        "failures",
        "hint",
        "initial",
        "last_modify",
        "mod_gen",
        "remote",
        "remote_changed_at",
        "shadowed",
        "synced",
        "writing",
    )

    def __init__(self) -> None:
        self.synced: Synced | None = None
        self.remote: RemoteEntry | None = None
        self.hint = Hint.NONE
        self.writing = False  # IN_MODIFY seen, IN_CLOSE_WRITE not yet
        self.mod_gen = 0  # bumped by every IN_MODIFY: an upload checks it did not move
        self.last_modify = 0.0
        self.remote_changed_at = 0.0  # monotonic time our own request last changed the key
        self.failures = 0
        self.initial = False
        self.shadowed = False  # a file key above it hides it (S3 has `a` and `a/b`)

    def is_empty(self) -> bool:
        return (
            self.synced is None
            and self.remote is None
            and not self.writing
            and not self.hint
            and not self.failures
            and not self.initial
        )


class SyncState:
    def __init__(self) -> None:
        self.paths: dict[str, PathState] = {}
        self.children: dict[str, int] = {}  # remote keys strictly below each directory
        self.synced_count = 0
        # Told of every change of a synced record (the on-disk store listens here).
        self.on_synced: Callable[[str, Synced | None], None] | None = None

    def get(self, rel: str) -> PathState:
        state = self.paths.get(rel)
        if state is None:
            state = self.paths[rel] = PathState()
        return state

    def peek(self, rel: str) -> PathState | None:
        return self.paths.get(rel)

    def prune(self, rel: str) -> None:
        state = self.paths.get(rel)
        if state is not None and state.is_empty():
            del self.paths[rel]

    def set_remote(self, rel: str, entry: RemoteEntry | None) -> None:
        state = self.get(rel)
        if (state.remote is None) != (entry is None):
            delta = 1 if entry is not None else -1
            for parent in parents_of(rel):
                count = self.children.get(parent, 0) + delta
                if count > 0:
                    self.children[parent] = count
                else:
                    self.children.pop(parent, None)
        state.remote = entry

    def set_synced(self, rel: str, synced: Synced | None) -> None:
        state = self.get(rel)
        if (state.synced is None) != (synced is None):
            self.synced_count += 1 if synced is not None else -1
        if self.on_synced is not None and synced != state.synced:
            self.on_synced(rel, synced)
        state.synced = synced

    def remote_children(self, rel: str) -> int:
        return self.children.get(rel, 0)

    def under(self, top: str) -> list[str]:
        """Known paths strictly below `top`."""
        prefix = top + "/"
        return [rel for rel in self.paths if rel.startswith(prefix)]
