"""Key <-> path mapping: every key from S3 is untrusted, every local name may not fit in a key."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.keys import (
    KEY_MAX,
    NAME_MAX,
    PATH_MAX,
    KeyMapper,
    RemoteName,
    UnsyncableName,
    is_under,
    parents_of,
)
from sidecar.skips import SkipReason

ROOT = "/data"
RESERVED = ".s3sync-sidecar"
PREFIX = "team/"


@pytest.fixture
def keys() -> KeyMapper:
    return KeyMapper(PREFIX, len(ROOT.encode()), RESERVED)


def long_path(total_bytes: int) -> str:
    """A relative path of exactly `total_bytes` bytes: one short name, then 200-byte names."""
    count = (total_bytes - 1) // 201
    rel = "x" * (total_bytes - 201 * count) + ("/" + "y" * 200) * count
    assert len(rel.encode()) == total_bytes
    return rel


# -- rel_for_key ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("team/a.txt", RemoteName("a.txt", False)),
        ("team/dir/", RemoteName("dir", True)),
        ("team/a/b/c.txt", RemoteName("a/b/c.txt", False)),
        ("team/a/b/", RemoteName("a/b", True)),
        ("team/sub/.s3sync-sidecar", RemoteName("sub/.s3sync-sidecar", False)),  # deeper: fine
        ("team/sub/.s3sync-sidecar/x", RemoteName("sub/.s3sync-sidecar/x", False)),
        ("team/.s3sync-sidecarX", RemoteName(".s3sync-sidecarX", False)),
        ("team/..a", RemoteName("..a", False)),
        ("team/a..", RemoteName("a..", False)),
        ("team/.hidden", RemoteName(".hidden", False)),
        ("team/a b+c%d.txt", RemoteName("a b+c%d.txt", False)),
        ("team/ünï/😀.txt", RemoteName("ünï/😀.txt", False)),
        ("team/a\\b", RemoteName("a\\b", False)),  # a backslash is a plain character on POSIX
        ("team/" + "x" * NAME_MAX, RemoteName("x" * NAME_MAX, False)),
        ("team/" + "é" * 127 + "x", RemoteName("é" * 127 + "x", False)),  # 255 bytes
    ],
)
def test_rel_for_key_accepts(keys: KeyMapper, key: str, expected: RemoteName) -> None:
    assert keys.rel_for_key(key) == expected


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("other/x", SkipReason.OUTSIDE_PREFIX),
        ("tea", SkipReason.OUTSIDE_PREFIX),
        ("team", SkipReason.OUTSIDE_PREFIX),
        ("Team/x", SkipReason.OUTSIDE_PREFIX),
        ("", SkipReason.OUTSIDE_PREFIX),
        ("team/", SkipReason.UNSAFE_KEY),  # the prefix itself, as a marker: empty path
        ("team/../x", SkipReason.UNSAFE_KEY),
        ("team/..", SkipReason.UNSAFE_KEY),
        ("team/../", SkipReason.UNSAFE_KEY),
        ("team/a/../b", SkipReason.UNSAFE_KEY),
        ("team/a/..", SkipReason.UNSAFE_KEY),
        ("team/./a", SkipReason.UNSAFE_KEY),
        ("team/.", SkipReason.UNSAFE_KEY),
        ("team/a/./b", SkipReason.UNSAFE_KEY),
        ("team/a//b", SkipReason.UNSAFE_KEY),
        ("team/a//", SkipReason.UNSAFE_KEY),
        ("team//x", SkipReason.UNSAFE_KEY),  # absolute once the prefix is removed
        ("team///", SkipReason.UNSAFE_KEY),
        ("team/a\x00b", SkipReason.UNSAFE_KEY),
        ("team/\x00", SkipReason.UNSAFE_KEY),
        ("team/" + "x" * (NAME_MAX + 1), SkipReason.NAME_TOO_LONG),
        ("team/d/" + "x" * (NAME_MAX + 1) + "/f", SkipReason.NAME_TOO_LONG),
        ("team/" + "é" * 128, SkipReason.NAME_TOO_LONG),  # 128 chars, 256 bytes
        ("team/" + "😀" * 64, SkipReason.NAME_TOO_LONG),  # 64 chars, 256 bytes
        ("team/" + "x" * (NAME_MAX + 1) + "/", SkipReason.NAME_TOO_LONG),
        ("team/.s3sync-sidecar", SkipReason.RESERVED),
        ("team/.s3sync-sidecar/", SkipReason.RESERVED),
        ("team/.s3sync-sidecar/x", SkipReason.RESERVED),
        ("team/.s3sync-sidecar/a/b/", SkipReason.RESERVED),
    ],
)
def test_rel_for_key_rejects(keys: KeyMapper, key: str, reason: SkipReason) -> None:
    with pytest.raises(UnsyncableName) as caught:
        keys.rel_for_key(key)
    assert caught.value.reason is reason
    assert isinstance(caught.value, ValueError)
    assert str(caught.value)  # a detail for the log


def test_path_length_counts_the_root(keys: KeyMapper) -> None:
    # ROOT + "/" + rel must stay within PATH_MAX bytes.
    fits = PATH_MAX - len(ROOT) - 1
    assert keys.rel_for_key(PREFIX + long_path(fits)) == RemoteName(long_path(fits), False)
    with pytest.raises(UnsyncableName) as caught:
        keys.rel_for_key(PREFIX + long_path(fits + 1))
    assert caught.value.reason is SkipReason.NAME_TOO_LONG


def test_path_length_with_a_long_root() -> None:
    mapper = KeyMapper("", 4000, RESERVED)
    mapper.check_rel("a" * (PATH_MAX - 4000 - 1))
    with pytest.raises(UnsyncableName) as caught:
        mapper.check_rel("a" * (PATH_MAX - 4000))
    assert caught.value.reason is SkipReason.NAME_TOO_LONG
    # a dir marker's path is the same path: the trailing slash is not counted
    assert mapper.rel_for_key("a" * (PATH_MAX - 4000 - 1) + "/").is_dir


def test_empty_prefix_maps_the_whole_bucket() -> None:
    mapper = KeyMapper("", len(ROOT), RESERVED)
    assert mapper.rel_for_key("x/y") == RemoteName("x/y", False)
    assert mapper.rel_for_key("x/") == RemoteName("x", True)
    for key in ("/x", "/", "//", "../x"):
        with pytest.raises(UnsyncableName) as caught:
            mapper.rel_for_key(key)
        assert caught.value.reason is SkipReason.UNSAFE_KEY, key
    with pytest.raises(UnsyncableName) as caught:
        mapper.rel_for_key(RESERVED)
    assert caught.value.reason is SkipReason.RESERVED


# -- check_rel -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("", SkipReason.UNSAFE_KEY),
        ("/x", SkipReason.UNSAFE_KEY),
        ("/", SkipReason.UNSAFE_KEY),
        ("../x", SkipReason.UNSAFE_KEY),
        ("a/../b", SkipReason.UNSAFE_KEY),
        ("./a", SkipReason.UNSAFE_KEY),
        ("a//b", SkipReason.UNSAFE_KEY),
        ("a/", SkipReason.UNSAFE_KEY),
        ("a\x00", SkipReason.UNSAFE_KEY),
        ("caf\udce9.txt", SkipReason.INVALID_UTF8),  # os.fsdecode of b"caf\xe9.txt"
        ("dir/\udcff", SkipReason.INVALID_UTF8),
        ("x" * 256, SkipReason.NAME_TOO_LONG),
        (RESERVED, SkipReason.RESERVED),
        (RESERVED + "/f", SkipReason.RESERVED),
    ],
)
def test_check_rel_rejects(keys: KeyMapper, rel: str, reason: SkipReason) -> None:
    with pytest.raises(UnsyncableName) as caught:
        keys.check_rel(rel)
    assert caught.value.reason is reason


@pytest.mark.parametrize("rel", ["a", "a/b", f"a/{RESERVED}", f"a/{RESERVED}/b", "x" * 255, "é"])
def test_check_rel_accepts(keys: KeyMapper, rel: str) -> None:
    keys.check_rel(rel)  # does not raise


# -- key_for_rel ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "is_dir", "key"),
    [
        ("a.txt", False, "team/a.txt"),
        ("dir", True, "team/dir/"),
        ("a/b/c", False, "team/a/b/c"),
        ("a b/c+d%.txt", False, "team/a b/c+d%.txt"),
        ("ünï/😀", False, "team/ünï/😀"),
    ],
)
def test_key_for_rel(keys: KeyMapper, rel: str, is_dir: bool, key: str) -> None:
    assert keys.key_for_rel(rel, is_dir) == key
    assert keys.rel_for_key(key) == RemoteName(rel, is_dir)


def test_key_for_rel_refuses_names_that_are_not_utf8(keys: KeyMapper) -> None:
    with pytest.raises(UnsyncableName) as caught:
        keys.key_for_rel("caf\udce9.txt")
    assert caught.value.reason is SkipReason.INVALID_UTF8


def test_key_length_limit(keys: KeyMapper) -> None:
    room = KEY_MAX - len(PREFIX)
    assert len(keys.key_for_rel(long_path(room)).encode()) == KEY_MAX
    assert len(keys.key_for_rel(long_path(room - 1), is_dir=True).encode()) == KEY_MAX
    for rel, is_dir in ((long_path(room + 1), False), (long_path(room), True)):
        with pytest.raises(UnsyncableName) as caught:
            keys.key_for_rel(rel, is_dir)
        assert caught.value.reason is SkipReason.KEY_TOO_LONG


def test_key_length_counts_bytes_not_characters() -> None:
    mapper = KeyMapper("é/", len(ROOT), RESERVED)  # a 3-byte prefix
    rel = "/".join(["é" * 100] * 5)  # 200 * 5 + 4 = 1004 bytes
    assert len(mapper.key_for_rel(rel + "/" + "x" * 16).encode()) == KEY_MAX
    with pytest.raises(UnsyncableName) as caught:
        mapper.key_for_rel(rel + "/" + "x" * 17)
    assert caught.value.reason is SkipReason.KEY_TOO_LONG


# -- decode_listed_key ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("team/a.txt", "team/a.txt"),
        ("team/a%20b.txt", "team/a b.txt"),
        ("team/a%2Bb.txt", "team/a+b.txt"),
        ("team/100%25.csv", "team/100%.csv"),
        ("team/%ED%95%9C%EA%B8%80/x.txt", "team/한글/x.txt"),
        ("team/%F0%9F%98%80", "team/😀"),
        ("team/%2E%2E/x", "team/../x"),  # decoded first, then refused by rel_for_key
        ("team/a%00b", "team/a\x00b"),
    ],
)
def test_decode_listed_key(keys: KeyMapper, raw: str, decoded: str) -> None:
    assert keys.decode_listed_key(raw, url_encoded=True) == decoded


def test_decode_listed_key_leaves_unencoded_listings_alone(keys: KeyMapper) -> None:
    assert keys.decode_listed_key("team/a%20b+c", url_encoded=False) == "team/a%20b+c"


@pytest.mark.parametrize("raw", ["team/%FF", "team/%C3", "team/%C3%28", "team/%ED%A0%80"])
def test_decode_listed_key_refuses_invalid_utf8(keys: KeyMapper, raw: str) -> None:
    with pytest.raises(UnsyncableName) as caught:
        keys.decode_listed_key(raw, url_encoded=True)
    assert caught.value.reason is SkipReason.INVALID_UTF8


def test_decoded_traversal_is_still_refused(keys: KeyMapper) -> None:
    with pytest.raises(UnsyncableName) as caught:
        keys.rel_for_key(keys.decode_listed_key("team/%2E%2E/x", url_encoded=True))
    assert caught.value.reason is SkipReason.UNSAFE_KEY


def test_decode_listed_key_reads_plus_as_space(keys: KeyMapper) -> None:
    assert keys.decode_listed_key("team/run+books/a+b.txt", url_encoded=True) == (
        "team/run books/a b.txt"
    )


# -- round trips -------------------------------------------------------------------------------

NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in (".", "..", RESERVED))
RELS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)


@settings(max_examples=100, deadline=None)
@given(rel=RELS, is_dir=st.booleans())
def test_round_trip_through_a_url_encoded_listing(rel: str, is_dir: bool) -> None:
    keys = KeyMapper(PREFIX, len(ROOT), RESERVED)
    key = keys.key_for_rel(rel, is_dir)
    listed = quote(key, safe="/")  # how moto (and RFC 3986 encoders) list it
    assert keys.rel_for_key(keys.decode_listed_key(listed, url_encoded=True)) == RemoteName(
        rel, is_dir
    )
    assert keys.rel_for_key(key) == RemoteName(rel, is_dir)


@pytest.mark.parametrize("name", ["plain.txt", "100%.csv", "a+b", "%2B", "ünï😀~!$&'()*,;=@"])
def test_names_without_spaces_round_trip_through_s3_form_encoding(
    keys: KeyMapper, name: str
) -> None:
    key = keys.key_for_rel(name)
    listed = quote_plus(key, safe="/")
    assert keys.rel_for_key(keys.decode_listed_key(listed, url_encoded=True)).rel == name


# -- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "parents"),
    [("a", []), ("a/b", ["a"]), ("a/b/c", ["a", "a/b"]), ("x y/ü/z", ["x y", "x y/ü"])],
)
def test_parents_of(rel: str, parents: list[str]) -> None:
    assert parents_of(rel) == parents


@pytest.mark.parametrize(
    ("rel", "top", "under"),
    [
        ("a", "a", True),
        ("a/b", "a", True),
        ("a/b/c", "a", True),
        ("a/b/c", "a/b", True),
        ("ab", "a", False),
        ("a", "a/b", False),
        ("a/bc", "a/b", False),
        ("b/a", "a", False),
        ("a-b/c", "a", False),
    ],
)
def test_is_under(rel: str, top: str, under: bool) -> None:
    assert is_under(rel, top) is under
