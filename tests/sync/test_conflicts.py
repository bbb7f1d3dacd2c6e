"""Conflict copies (local/conflicts.py): the names they get, and knowing one again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.local.conflicts import conflict_name, existing_conflicts, is_conflict

MOMENT = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
TAG = ".sync-conflict-20261125-120000"


NAMES = [
    ("report.txt", 0, f"report{TAG}.txt"),
    ("dir/report.txt", 0, f"dir/report{TAG}.txt"),
    ("a/b/c/report.txt", 0, f"a/b/c/report{TAG}.txt"),
    ("archive.tar.gz", 0, f"archive.tar{TAG}.gz"),
    ("Makefile", 0, f"Makefile{TAG}"),
    ("dir/Makefile", 0, f"dir/Makefile{TAG}"),
    (".bashrc", 0, f".bashrc{TAG}"),
    ("dir/.env.local", 0, f"dir/.env{TAG}.local"),
    ("a.verylongext", 0, f"a.verylongext{TAG}"),  # "extension" over 10 chars: not one
    ("a.ten4567xy", 0, f"a{TAG}.ten4567xy"),  # 10 chars with the dot: kept
    ("report.txt", 1, f"report{TAG}-1.txt"),
    ("report.txt", 12, f"report{TAG}-12.txt"),
    ("dir.d/file", 0, f"dir.d/file{TAG}"),
    ("ünï 😀.txt", 0, f"ünï 😀{TAG}.txt"),
]


# -- naming ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "attempt", "name"), NAMES)
def test_conflict_name(rel: str, attempt: int, name: str) -> None:
    assert conflict_name(rel, MOMENT, attempt) == name


def test_conflict_name_uses_utc() -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert conflict_name("a.txt", local, 0) == f"a{TAG}.txt"


@pytest.mark.parametrize(
    ("rel", "suffix"),
    [
        ("x" * 255, ""),
        ("x" * 251 + ".txt", ".txt"),
        ("é" * 127 + ".txt", ".txt"),  # 2-byte characters
        ("😀" * 63 + ".md", ".md"),  # 4-byte characters
        ("d/" + "x" * 255, ""),
    ],
)
@pytest.mark.parametrize("attempt", [0, 7, 123])
def test_long_conflict_names_stay_within_name_max(rel: str, suffix: str, attempt: int) -> None:
    result = conflict_name(rel, MOMENT, attempt)
    name = result.rsplit("/", 1)[-1]
    assert len(name.encode()) <= 255
    tag = TAG + (f"-{attempt}" if attempt else "")
    assert name.endswith(tag + suffix)
    stem = name[: len(name) - len(tag + suffix)]
    original = rel.rsplit("/", 1)[-1]
    assert stem and original.startswith(stem)  # truncated, whole characters only
    assert result.startswith("d/") == rel.startswith("d/")


def test_conflict_names_differ_by_attempt() -> None:
    names = {conflict_name("x" * 300, MOMENT, attempt) for attempt in range(5)}
    assert len(names) == 5


# -- knowing one again -------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "attempt", "name"), NAMES)
def test_a_conflict_copy_is_known_by_its_name(rel: str, attempt: int, name: str) -> None:
    assert is_conflict(name)
    assert not is_conflict(rel)
    assert existing_conflicts(rel, [rel, name]) == [name]


@pytest.mark.parametrize(
    "name",
    [
        "report.txt",
        "report.sync-conflict.txt",  # no moment
        "report.sync-conflict-2026112-120000.txt",  # a digit short
        "report-sync-conflict-20261125-120000.txt",  # no dot before the tag
        "report.sync-conflict-20261125-120000 old.txt.bak",  # more than an extension after it
        "report.sync-conflict-20261125-120000.verylongext",  # not an extension: over 10
        f"dir{TAG}/report.txt",  # a directory's name is not the file's
    ],
)
def test_names_that_only_look_like_conflict_copies(name: str) -> None:
    assert not is_conflict(name)
    assert existing_conflicts("report.txt", [name]) == []


def test_existing_conflicts_are_the_copies_of_that_path_only() -> None:
    copy = f"report{TAG}.txt"
    listing = [
        "report.txt",
        copy,
        f"report{TAG}-1.txt",
        f"report{TAG}-0.txt",  # attempt 0 carries no number: not ours
        "report.sync-conflict-20261325-120000.txt",  # a 13th month: no moment
        f"other{TAG}.txt",
        f"report{TAG}.md",
        f"report{TAG}{TAG}.txt",  # a copy of the copy
        f"dir/report{TAG}.txt",  # another directory
    ]
    assert existing_conflicts("report.txt", listing) == [copy, f"report{TAG}-1.txt"]
    assert existing_conflicts(copy, listing) == [f"report{TAG}{TAG}.txt"]
    assert existing_conflicts("dir/report.txt", listing) == [f"dir/report{TAG}.txt"]


@given(
    name=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=260,
    ).filter(lambda name: name not in (".", "..") and len(name.encode()) <= 255),
    seconds=st.integers(0, 4_000_000_000),
    attempt=st.integers(0, 999),
)
def test_every_name_made_is_known_again(name: str, seconds: int, attempt: int) -> None:
    moment = datetime.fromtimestamp(seconds, UTC)
    for rel in (name, f"dir/{name}"):
        copy = conflict_name(rel, moment, attempt)
        assert is_conflict(copy), copy
        assert existing_conflicts(rel, [rel, copy]) == [copy]
