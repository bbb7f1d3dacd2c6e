"""`SyncState`'s transitions on one path (pure, no I/O): hints and generations across a pass,
and the activity a path carries only while something is going on."""

from __future__ import annotations

from sidecar.core.model import Hint, Kind, LocalEntry, RemoteEntry, Synced
from sidecar.core.state import SyncState

FILE = LocalEntry(Kind.FILE, size=1, mtime_ns=1_000, mode=0o100644, ino=1)
REMOTE = RemoteEntry("e1", 1, "2024-01-01T00:00:00.000Z")


def test_a_path_in_sync_carries_no_activity() -> None:
    state = SyncState()
    state.agree("a", FILE, REMOTE)
    ps = state.get("a")
    assert ps._activity is None
    assert (ps.hint, ps.writing, ps.failures, ps.races, ps.shadowed) == (
        Hint.NONE,
        False,
        0,
        0,
        False,
    )
    assert not state.is_initial("a")


def test_a_quiet_settled_pass_lets_the_activity_go() -> None:
    state = SyncState()
    state.mark_initial("a")
    state.hinted("a", Hint.WRITTEN)
    ps, _ = state.begin("a")
    assert state.is_initial("a") and ps.hint is Hint.WRITTEN
    state.settled("a")
    assert ps._activity is None
    assert not state.is_initial("a") and ps.hint is Hint.NONE


def test_activity_stays_while_something_is_going_on() -> None:
    state = SyncState()
    state.modified("a", now=5.0)
    ps, _ = state.begin("a")
    state.hinted("a", Hint.META)  # arrives during the pass
    state.settled("a")
    assert ps.writing and ps.hint is Hint.META and ps.last_modify == 5.0
    state.closed("a")
    state.begin("a")
    state.settled("a")
    assert ps._activity is None


def test_a_generation_a_pass_saw_is_never_handed_out_again() -> None:
    """With a counter per activity, a path whose activity was let go of would count from 0
    again: a pass that saw generation 1, then a write (1 again), would miss that write."""
    state = SyncState()
    state.modified("a", now=1.0)
    state.closed("a")
    ps, first = state.begin("a")
    state.settled("a")
    assert ps._activity is None
    seen_gens = {first.mod_gen, ps.mod_gen}
    _, seen = state.begin("a")  # a new pass, before any write
    state.modified("a", now=2.0)  # a write during it
    assert ps.mod_gen not in seen_gens | {seen.mod_gen}
    state.hinted("a", Hint.WRITTEN)
    state.settled("a")
    assert ps.hint is Hint.WRITTEN  # the hint came after `begin`: it survives the pass


def test_a_pass_clears_the_hints_it_saw_and_keeps_only_those_that_came_since() -> None:
    """A chmod during a write's upload: the next pass sees META alone, not the WRITTEN the
    upload already acted on (it would upload the same bytes again for a metadata change)."""
    state = SyncState()
    state.hinted("a", Hint.WRITTEN | Hint.CONTENT)
    ps, seen = state.begin("a")
    assert seen.hint == Hint.WRITTEN | Hint.CONTENT
    state.hinted("a", Hint.META)  # the chmod, during the upload
    state.settled("a")
    assert ps.hint is Hint.META
    state.begin("a")
    state.hinted("a", Hint.WRITTEN)  # a write during this pass: the same bit as one it saw
    state.settled("a")
    assert ps.hint is Hint.WRITTEN
    state.begin("a")
    state.hinted("a", Hint.META)  # between a pass's first look and its second (after a proof)
    _, seen = state.begin("a")
    assert seen.hint == Hint.WRITTEN | Hint.META
    state.settled("a")
    assert ps.hint is Hint.NONE and ps._activity is None


def test_a_failed_pass_keeps_every_hint_for_the_next() -> None:
    state = SyncState()
    state.hinted("a", Hint.WRITTEN)
    state.begin("a")
    state.hinted("a", Hint.META)
    state.failed("a")
    _, seen = state.begin("a")
    assert seen.hint == Hint.WRITTEN | Hint.META


def test_failures_and_races_count_until_a_pass_settles() -> None:
    state = SyncState()
    first = state.failed("a")
    assert 0.0 < first < state.failed("a")
    assert state.raced("a") == 0.0
    ps = state.get("a")
    assert (ps.failures, ps.races) == (2, 1)
    state.begin("a")
    state.settled("a")
    assert (ps.failures, ps.races) == (0, 0) and ps._activity is None


def test_an_empty_path_is_pruned_and_a_writer_keeps_it() -> None:
    state = SyncState()
    state.mark_initial("i")
    state.prune("i")
    assert "i" in state.paths  # restoring
    state.modified("w", now=1.0)
    state.prune("w")
    assert "w" in state.paths
    state.closed("w")
    state.prune("w")
    assert "w" not in state.paths
    state.set_synced("s", Synced(FILE, REMOTE))
    state.prune("s")
    assert "s" in state.paths


def test_shadowed_follows_the_latest_listing() -> None:
    state = SyncState()
    state.set_shadowed({"a/b"})
    assert state.get("a/b").shadowed
    state.set_shadowed(set())
    assert not state.get("a/b").shadowed


def test_lost_events_end_every_writer() -> None:
    state = SyncState()
    state.modified("a", now=1.0)
    state.agree("b", FILE, REMOTE)
    assert sorted(state.lost_events()) == ["a", "b"]
    assert not state.get("a").writing and state.writers == set()


def test_setting_the_remote_forgets_the_listing_seen_unchanged() -> None:
    state = SyncState()
    state.agree("a", FILE, REMOTE)
    listed = RemoteEntry("e1", 1, "2024-01-01T00:00:00.000Z")
    state.listed_unchanged(state.get("a"), listed)
    assert state.get("a").listed is listed
    state.set_remote("a", RemoteEntry("e2", 1, "2024-01-02T00:00:00.000Z"))
    assert state.get("a").listed is None


def test_records_loaded_from_the_store_are_not_noted_back_and_later_changes_are() -> None:
    noted: list[tuple[str, Synced | None]] = []
    state = SyncState(on_synced=lambda rel, synced: noted.append((rel, synced)))
    loaded = {"a": Synced(FILE, REMOTE), "b": Synced(FILE, REMOTE)}
    state.load_synced(loaded)
    assert noted == []
    assert state.get("a").synced == loaded["a"] and state.synced_count == 2
    assert state.synced_files == 2
    state.forget("b")
    state.agree("c", FILE, REMOTE)
    state.set_synced("a", loaded["a"])  # the same record: nothing to note
    assert noted == [("b", None), ("c", Synced(FILE, REMOTE))]
