"""Metadata formats (mtime, mode, HTTP dates), fingerprints, and safe parent creation."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.local.localfs import changed_by_us, entry_from_stat, local_entry
from sidecar.local.safefs import Tree, UnsafeParentError
from sidecar.s3.metadata import (
    format_mode,
    format_mtime,
    parse_http_date,
    parse_mode,
    parse_mtime,
)


def tree_at(root: Path) -> Tree:
    """The folder `root`, held open as the engine holds it (its working folder made)."""
    (root / ".work").mkdir(exist_ok=True)
    tree = Tree(str(root), ".work")
    tree.start()
    return tree


def ensure_parents(root: str, rel: str) -> list[str]:
    """What a download does first: open the parent of `rel`, creating what is missing."""
    tree = tree_at(Path(root))
    created: list[str] = []
    try:
        with tree.parent(rel, created):
            pass
        return created
    finally:
        tree.close()


NS = 1_000_000_000

# -- mtime ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=100_000_000_000 * NS))
def test_mtime_round_trips_at_nanosecond_precision(mtime_ns: int) -> None:
    text = format_mtime(mtime_ns)
    assert parse_mtime(text) == mtime_ns
    # and it is a plain decimal float string, as rclone and mobius3 read it
    assert float(text) == mtime_ns / NS  # both correctly rounded from the same exact value


@pytest.mark.parametrize(
    ("mtime_ns", "text"),
    [
        (0, "0.000000000"),
        (1, "0.000000001"),
        (1_573_212_345_123_456_789, "1573212345.123456789"),
        (1_573_212_345 * NS, "1573212345.000000000"),
    ],
)
def test_format_mtime(mtime_ns: int, text: str) -> None:
    assert format_mtime(mtime_ns) == text


@pytest.mark.parametrize("mtime_ns", [-1, -NS // 2, -1_500_000_000, -86_400 * NS - 7])
def test_negative_mtime_round_trips(mtime_ns: int) -> None:
    assert parse_mtime(format_mtime(mtime_ns)) == mtime_ns


@pytest.mark.parametrize("mtime_ns", [-NS, -86_400 * NS])
def test_negative_whole_second_mtime_round_trips(mtime_ns: int) -> None:
    assert parse_mtime(format_mtime(mtime_ns)) == mtime_ns


@pytest.mark.parametrize(
    ("text", "mtime_ns"),
    [
        ("1573212345.123456", 1_573_212_345_123_456_000),  # mobius3 / rclone: microseconds
        ("1573212345.123456789", 1_573_212_345_123_456_789),
        ("1573212345.1234567891", 1_573_212_345_123_456_789),  # beyond ns: truncated
        ("1573212345", 1_573_212_345 * NS),
        ("1573212345.0", 1_573_212_345 * NS),
        ("1.5e9", 1_500_000_000 * NS),
        ("1.5E9", 1_500_000_000 * NS),
        (" 12.5 ", 12_500_000_000),
        ("+1.5", 1_500_000_000),
        ("1.", NS),
        (".5", NS // 2),
        ("0", 0),
        ("-1.5", -1_500_000_000),
        ("-0.5", -NS // 2),
        ("-1", -NS),
        ("-86400.25", -86_400 * NS - NS // 4),
        ("1e11", 100_000_000_000 * NS),  # the largest accepted
    ],
)
def test_parse_mtime(text: str, mtime_ns: int) -> None:
    assert parse_mtime(text) == mtime_ns


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "abc",
        "1.2.3",
        "1,5",
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "Infinity",
        "1e12",
        "-1e12",
        "1e400",
        "12:00",
        "0x10",
        "1.5s",
    ],
)
def test_parse_mtime_garbage_is_none(text: str | None) -> None:
    assert parse_mtime(text) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_parse_mtime_never_raises(text: str) -> None:
    result = parse_mtime(text)
    assert result is None or isinstance(result, int)


# -- mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("33188", 0o100644),  # mobius3: st_mode in decimal
        ("16877", 0o40755),  # a directory, decimal
        ("41471", 0o120777),  # a symlink, decimal
        ("100644", 0o100644),  # rclone: octal with the file type
        ("0100664", 0o100664),  # rclone's documented form, with a leading zero
        ("040755", 0o40755),
        ("0120777", 0o120777),
        ("100755", 0o100755),
        ("40755", 0o40755),
        ("120777", 0o120777),
        ("0o755", 0o755),
        ("0O644", 0o644),
        ("0o100600", 0o100600),
        (" 33188 ", 0o100644),
        ("420", 0o420),  # up to four octal digits: permissions written by hand, in octal
        ("644", 0o644),
        ("0755", 0o755),
        ("493", 0o755),  # not octal (9): permission bits in decimal
        ("493", 0o755),
        ("0", 0),
        ("4095", 0o7777),  # the largest permission-only decimal value
        ("7777", 0o7777),  # too large as decimal permissions: read as octal
    ],
)
def test_parse_mode(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "abc",
        "-1",
        "-33188",
        "0o",
        "0o9",
        "0x1ff",
        "12.5",
        "777777",  # neither a plausible decimal nor octal mode
        "99999",  # not plausible as decimal, not octal
        "4096",  # S_IFIFO as decimal; not octal
        "4480",  # a FIFO (0o10600) in decimal: never synced
        "49536",  # a socket (0o140600) in decimal
    ],
)
def test_parse_mode_garbage_is_none(text: str | None) -> None:
    assert parse_mode(text) is None


@pytest.mark.parametrize("mode", [0o100644, 0o100755, 0o40755, 0o120777, 0o100600])
def test_format_mode_round_trips(mode: int) -> None:
    assert format_mode(mode) == str(mode)
    assert parse_mode(format_mode(mode)) == mode


@pytest.mark.parametrize("text", ["4300000000", "99999999999999999999"])
def test_parse_mode_huge_value_is_none(text: str) -> None:
    assert parse_mode(text) is None


@pytest.mark.parametrize("text", ["0o40000000000", "0o7777777777777777", "0o140644"])
def test_parse_mode_octal_prefix_is_checked_like_the_rest(text: str) -> None:
    assert parse_mode(text) is None


# -- HTTP dates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mtime_ns"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_480 * NS),
        ("Wed, 21 Oct 2015 07:28:00 +0000", 1_445_412_480 * NS),
        ("Wed, 21 Oct 2015 07:28:00 +0200", (1_445_412_480 - 7200) * NS),
        ("Wed, 21 Oct 2015 07:28:00", 1_445_412_480 * NS),  # no zone: UTC
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
    ],
)
def test_parse_http_date(text: str, mtime_ns: int) -> None:
    assert parse_http_date(text) == mtime_ns


@pytest.mark.parametrize(
    "text",
    [None, "", "garbage", "2015-10-21T07:28:00Z", "Mon, 32 Oct 2015 07:28:00 GMT", "0"],
)
def test_parse_http_date_garbage_is_none(text: str | None) -> None:
    assert parse_http_date(text) is None


@pytest.mark.parametrize(
    "text",
    ["Wed, 21 Oct 99999999999 07:28:00 GMT", "Wed, 99999999999 Oct 2015 07:28:00 GMT"],
)
def test_parse_http_date_overflow_is_none(text: str) -> None:
    assert parse_http_date(text) is None


# -- fingerprints ----------------------------------------------------------------------------


def test_local_entry(tmp_path: Path) -> None:
    tree = tree_at(tmp_path)
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    os.chmod(path, 0o640)
    entry = local_entry(tree, "f")
    st_ = os.lstat(path)
    assert entry is not None
    assert entry == entry_from_stat(st_)
    assert (entry.kind, entry.size, entry.mode, entry.ino) == (
        Kind.FILE,
        5,
        st_.st_mode,
        st_.st_ino,
    )
    assert stat.S_IMODE(entry.mode) == 0o640
    assert entry.mtime_ns == st_.st_mtime_ns
    (tmp_path / "link").symlink_to(path)
    link = local_entry(tree, "link")
    assert link is not None and link.kind is Kind.SYMLINK
    (tmp_path / "d").mkdir()
    d = local_entry(tree, "d")
    assert d is not None and d.kind is Kind.DIR
    (tmp_path / "d" / "inner").write_bytes(b"inner")
    assert local_entry(tree, "missing") is None
    assert local_entry(tree, "f/under-a-file") is None  # ENOTDIR
    (tmp_path / "dirlink").symlink_to(tmp_path / "d")
    assert local_entry(tree, "d/inner") is not None
    assert local_entry(tree, "dirlink/inner") is None, "never reached through a symlink"
    tree.close()


# -- ensure_parents ----------------------------------------------------------------------------


def test_ensure_parents_creates_missing_directories(tmp_path: Path) -> None:
    assert ensure_parents(str(tmp_path), "a/b/c/file.txt") == ["a", "a/b", "a/b/c"]
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert not (tmp_path / "a" / "b" / "c" / "file.txt").exists()
    assert ensure_parents(str(tmp_path), "a/b/c/file.txt") == []
    assert ensure_parents(str(tmp_path), "a/x/file.txt") == ["a/x"]
    assert ensure_parents(str(tmp_path), "top.txt") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".work", "a"]


def test_ensure_parents_refuses_a_symlink_to_a_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "link/sub/file.txt")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "link/file.txt")
    assert list(outside.iterdir()) == []  # nothing written through the link


def test_ensure_parents_refuses_a_symlink_deeper_down(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "a" / "link").symlink_to(outside)
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "a/link/b/c/file.txt")
    assert list(outside.iterdir()) == []


def test_ensure_parents_refuses_a_relative_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "rel-link").symlink_to("real")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "rel-link/new/file")
    assert list((tmp_path / "real").iterdir()) == []


def test_ensure_parents_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "dangling/file")
    assert not (tmp_path / "nowhere").exists()


def test_ensure_parents_refuses_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "a/b/file.txt")
    assert (tmp_path / "a").read_bytes() == b"data"


def test_ensure_parents_error_is_an_oserror(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(OSError, match="'f'"):
        ensure_parents(str(tmp_path), "f/x")


# -- what a metadata change of ours records -------------------------------------------------

_BEFORE = LocalEntry(Kind.FILE, 5, 10 * NS, 0o100644, 7, ctime_ns=100)
_AFTER = LocalEntry(Kind.FILE, 5, 20 * NS, 0o100600, 7, ctime_ns=300)
_REMOTE = RemoteEntry("0" * 32, 5)


@pytest.mark.parametrize(
    ("proven_at", "before_ctime", "recorded_ctime"),
    [
        (100, 100, 300),  # nothing touched the file since its record: the new ctime
        (50, 100, 50),  # touched since (a write nothing saw): the record's, so a restart reads
        (0, 100, 0),  # a record from before ctimes were saved stays without one
    ],
)
def test_changed_by_us_keeps_the_proven_ctime(
    proven_at: int, before_ctime: int, recorded_ctime: int
) -> None:
    synced = Synced(dataclasses.replace(_BEFORE, ctime_ns=proven_at), _REMOTE)
    before = dataclasses.replace(_BEFORE, ctime_ns=before_ctime)
    recorded = changed_by_us(before, _AFTER, synced)
    assert recorded == _AFTER
    assert recorded.ctime_ns == recorded_ctime
