"""`Moves` (core/moves.py): renames in flight, as named transitions (pure)."""

from __future__ import annotations

from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.core.moves import Move, Moves

SYNCED = Synced(LocalEntry(Kind.FILE, 1, 1, 0o100644, 1), RemoteEntry("e", 1))


def test_a_move_is_seen_by_its_target_and_holds_its_source() -> None:
    moves = Moves()
    assert moves.renamed("a", "b", SYNCED, in_tree=False) == []
    move = moves.moved_here("b")
    assert move == Move("a", SYNCED, False)
    assert moves.leaving("a") and not moves.leaving("b")
    assert moves.done("b", move) == ["a"]  # the source, to look at again
    assert moves.moved_here("b") is None and not moves.leaving("a") and len(moves) == 0


def test_a_pass_ends_only_the_move_it_saw() -> None:
    moves = Moves()
    moves.renamed("a", "c", SYNCED, in_tree=False)
    first = moves.moved_here("c")
    assert first is not None
    # Another file renamed onto `c` before its pass: the first source no longer waits.
    assert moves.renamed("b", "c", SYNCED, in_tree=True) == ["a"]
    assert moves.done("c", first) == []  # a pass that saw the first move ends nothing
    second = moves.moved_here("c")
    assert second is not None and second.source == "b" and second.in_tree
    assert moves.done("c", second) == ["b"]


def test_a_source_waits_for_every_target() -> None:
    moves = Moves()
    moves.renamed("a", "b", SYNCED, in_tree=False)
    moves.renamed("a", "c", SYNCED, in_tree=False)  # (a new file at `a`, renamed again)
    b, c = moves.moved_here("b"), moves.moved_here("c")
    assert b is not None and c is not None
    assert moves.done("b", b) == ["a"] and moves.leaving("a")
    assert moves.done("c", c) == ["a"] and not moves.leaving("a")


def test_events_lost_forget_every_move() -> None:
    moves = Moves()
    moves.renamed("a", "b", SYNCED, in_tree=False)
    moves.renamed("x", "y", SYNCED, in_tree=True)
    assert sorted(moves.forget_all()) == ["a", "x"]
    assert len(moves) == 0 and not moves.leaving("a")
