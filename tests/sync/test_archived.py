"""Archived objects (GLACIER, DEEP_ARCHIVE; an Intelligent-Tiering archive tier): S3 refuses
their GET (403 InvalidObjectState) until they are restored. They are skipped with a reason
(logged once per version, counted once, listed in /healthz), not counted as restored, never a
pending local change, never a reason to replace or delete a local file, and fetched once S3
says they are readable (a HEAD: `x-amz-restore: ongoing-request="false"`). GLACIER_IR is
readable and downloads as any object does."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.folders import read
from support.local_http import free_port, http_get
from support.metrics import metric, requests, scrape, series
from support.waiting import eventually, in_thread

from sidecar.backoff import archived_looks
from sidecar.core.model import RemoteEntry
from sidecar.core.state import SyncState
from sidecar.engine.archived import ArchivedObjects
from sidecar.engine.health import Health
from sidecar.local.conflicts import is_conflict
from sidecar.metrics import Metrics
from sidecar.remote.fold import Snapshot, apply_snapshot
from sidecar.s3.client import ObjectHead
from sidecar.s3.metadata import archived_class, is_archived


def put(bucket: Bucket, key: str, body: bytes, storage_class: str) -> None:
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=body, StorageClass=storage_class)


def restore(bucket: Bucket, key: str) -> None:
    """Another client asks S3 to restore `key` for a day (moto restores at once)."""
    bucket.client.restore_object(Bucket=bucket.name, Key=key, RestoreRequest={"Days": 1})


def lines_naming(text: str, name: str, level: str = "") -> list[str]:
    return [line for line in text.splitlines() if f"'{name}'" in line and level in line]


async def test_archived_objects_are_skipped_said_once_and_not_counted_as_restored(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    """Before: "restored 4 objects" with two of them never written, each GET retried with
    back-off for ever, a warning per try, and the start held up by them."""
    await in_thread(put, bucket, "warm.txt", b"warm", "STANDARD")
    await in_thread(put, bucket, "instant.txt", b"instant", "GLACIER_IR")
    await in_thread(put, bucket, "cold.txt", b"cold", "GLACIER")
    await in_thread(put, bucket, "deep/er.txt", b"deeper", "DEEP_ARCHIVE")
    folder = tmp_path / "data"
    port = free_port()
    env = sidecar_environment(bucket, folder, SYNC_POLL_INTERVAL="0.3", SYNC_HTTP_PORT=str(port))
    sidecar = run_sidecar([], env)
    await sidecar.ready()
    assert read(folder / "warm.txt") == b"warm"
    assert read(folder / "instant.txt") == b"instant", "GLACIER_IR is readable"
    assert not (folder / "cold.txt").exists()
    assert not (folder / "deep" / "er.txt").exists()
    (restored,) = [line for line in sidecar.text().splitlines() if "; syncing" in line]
    assert "restored 2 objects" in restored, restored
    assert "2 left archived" in restored, restored

    async def listed_often() -> bool:
        return series((await scrape(port)).samples, "s3sync_polls_total", result="ok") >= 10

    await eventually(listed_often, timeout=30, what="ten listings after the start")
    text = sidecar.text()
    for name in ("cold.txt", "deep/er.txt"):
        warnings = lines_naming(text, name, "WARNING")
        assert len(warnings) == 1, warnings
        assert "archived" in warnings[0], warnings
        assert not lines_naming(text, name, "ERROR")
    samples = (await scrape(port)).samples
    assert series(samples, "s3sync_skipped_paths_total", reason="archived") == 2
    # Only the two readable objects were ever asked for: the archived ones are known so from
    # the listing (their GET would be refused), and looked at with a HEAD at a slowing pace.
    assert series(samples, "s3sync_s3_requests_total", operation="GetObject", status="200") == 2
    assert not [
        labels for labels, _ in samples["s3sync_s3_requests_total"] if labels["status"] == "403"
    ]
    status, body = await http_get(port, "/healthz")
    assert status == 200, body
    (line,) = [line for line in json.loads(body)["degraded"] if "archived" in line]
    assert "2 ('cold.txt', 'deep/er.txt')" in line, line
    # Nothing local waits: a stop exits at once, with everything in S3.
    started = time.monotonic()
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
    assert time.monotonic() - started < 10
    assert "not uploaded" not in sidecar.text()


async def test_an_archived_object_is_fetched_once_restored(syncer_factory, bucket: Bucket) -> None:
    """Looked at again with a HEAD at a slowing pace (one poll interval, doubling), never a
    GET while S3 says it is archived; downloaded once a HEAD finds it restored."""
    await in_thread(put, bucket, "cold.txt", b"cold bytes", "GLACIER")
    syncer = await syncer_factory(download_interval=0.3)
    folder: Path = syncer.folder
    assert not (folder / "cold.txt").exists()
    assert metric(syncer, "s3sync_skipped_paths_total", reason="archived") == 1
    await eventually(
        lambda: metric(syncer, "s3sync_polls_total", result="ok") >= 20,
        timeout=30,
        what="twenty listings",
    )
    assert requests(syncer, "GetObject") == 0
    # Looks at 0.3, 0.9, 2.1, 4.5 s and so on after the skip: not one per listing.
    assert 1 <= requests(syncer, "HeadObject") <= 6, requests(syncer, "HeadObject")
    assert any("archived" in line for line in syncer.degraded())

    await in_thread(restore, bucket, "cold.txt")
    await eventually(lambda: read(folder / "cold.txt") == b"cold bytes", timeout=30)
    assert metric(syncer, "s3sync_downloads_total", result="ok") == 1
    assert metric(syncer, "s3sync_skipped_paths_total", reason="archived") == 1
    assert not any("archived" in line for line in syncer.degraded())
    assert await syncer.stop(timeout=10) == []


async def test_a_local_file_is_never_replaced_because_of_an_archived_version(
    syncer_factory, bucket: Bucket
) -> None:
    """Another client's new version, archived, leaves the synced local file as it is (not a
    local change either); a local change made then waits, and S3's archived version is never
    written over: once it is restored, both are kept as in any conflict."""
    syncer = await syncer_factory(download_interval=0.3)
    folder: Path = syncer.folder
    (folder / "notes.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.get("notes.txt") == b"v1"))
    await in_thread(put, bucket, "notes.txt", b"v2 from another client", "GLACIER")
    await eventually(
        lambda: metric(syncer, "s3sync_skipped_paths_total", reason="archived") == 1,
        what="the archived version skipped",
    )
    await syncer.poll_once()
    assert read(folder / "notes.txt") == b"v1"
    assert syncer.status().pending_uploads == 0

    (folder / "notes.txt").write_bytes(b"v3 written here")
    polls = metric(syncer, "s3sync_polls_total", result="ok")
    await eventually(lambda: metric(syncer, "s3sync_polls_total", result="ok") >= polls + 5)
    assert read(folder / "notes.txt") == b"v3 written here"
    head = await in_thread(bucket.head, "notes.txt")
    assert head["StorageClass"] == "GLACIER", "S3's archived version is not written over"
    assert [p.name for p in folder.iterdir() if is_conflict(p.name)] == []
    assert syncer.status().pending_uploads == 1, "the local change is still to be sent"

    await in_thread(restore, bucket, "notes.txt")

    def both_kept() -> None:
        assert bucket.get("notes.txt") == b"v3 written here"
        (copy,) = [p for p in folder.iterdir() if is_conflict(p.name)]
        assert copy.read_bytes() == b"v2 from another client"
        assert bucket.get(copy.name) == b"v2 from another client"

    await eventually(lambda: in_thread(both_kept), timeout=30, what="the conflict resolved")
    assert await syncer.stop(timeout=10) == []


# -- the rules, pure ----------------------------------------------------------------------------

RESTORED = 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'


@pytest.mark.parametrize(
    ("storage_class", "archive_status", "restore", "archived"),
    [
        (None, None, None, False),  # STANDARD: no header
        ("STANDARD_IA", None, None, False),
        ("GLACIER_IR", None, None, False),  # Instant Retrieval: read as any other
        ("GLACIER", None, None, True),
        ("DEEP_ARCHIVE", None, None, True),
        ("GLACIER", None, 'ongoing-request="true"', True),  # a restore under way
        ("GLACIER", None, RESTORED, False),
        ("DEEP_ARCHIVE", None, RESTORED, False),
        ("INTELLIGENT_TIERING", None, None, False),
        ("INTELLIGENT_TIERING", "ARCHIVE_ACCESS", None, True),
        ("INTELLIGENT_TIERING", "DEEP_ARCHIVE_ACCESS", 'ongoing-request="true"', True),
        ("INTELLIGENT_TIERING", "ARCHIVE_ACCESS", RESTORED, False),
    ],
)
def test_what_a_head_says_of_an_archived_object(
    storage_class: str | None, archive_status: str | None, restore: str | None, archived: bool
) -> None:
    headers = {"ETag": '"e"', "Content-Length": "1"}
    for name, value in (
        ("x-amz-storage-class", storage_class),
        ("x-amz-archive-status", archive_status),
        ("x-amz-restore", restore),
    ):
        if value is not None:
            headers[name] = value
    assert is_archived(storage_class, archive_status, restore) is archived
    assert ObjectHead.from_headers(headers).archived is archived


@pytest.mark.parametrize(
    ("storage_class", "archived"),
    [
        ("", False),  # a store that lists no class
        ("STANDARD", False),
        ("GLACIER_IR", False),
        ("GLACIER", True),
        ("DEEP_ARCHIVE", True),
        ("INTELLIGENT_TIERING", False),  # its archive tiers show only in a HEAD
    ],
)
def test_what_a_listing_says_of_an_archived_object(storage_class: str, archived: bool) -> None:
    assert archived_class(storage_class) is archived


LISTED = RemoteEntry("e1", 4, "1704164645", archived=True)


def test_a_listing_never_changes_what_is_known_of_an_objects_readability() -> None:
    """Listings give a restored object's class too, and an archive tier's as no class at all:
    what a HEAD or a refused GET found stands while the object is the same (looked at again
    by engine/archived.py); a new version is a change like any other."""
    for known, listed in ((False, True), (True, False)):
        state = SyncState()
        entry = replace(LISTED, archived=known)
        state.set_remote("cold.txt", entry)
        applied = apply_snapshot(
            state,
            Snapshot({"cold.txt": replace(LISTED, archived=listed)}, set(), 0.0),
            busy=lambda rel: False,
            max_delete_percent=50,
            initial=False,
        )
        assert applied.changed == [] and applied.checked == []
        assert state.get("cold.txt").remote is entry
    newer = RemoteEntry("e2", 5, "1704164699", archived=True)
    applied = apply_snapshot(
        state,
        Snapshot({"cold.txt": newer}, set(), 0.0),
        busy=lambda rel: False,
        max_delete_percent=50,
        initial=False,
    )
    assert applied.changed == ["cold.txt"]
    remote = state.get("cold.txt").remote
    assert remote == newer and remote.archived


def test_an_object_looked_at_again_after_its_second_keeps_what_a_refused_get_found() -> None:
    """Seen within its Last-Modified second, it is handed back once after it (one more look):
    its listed class (an archive tier lists as INTELLIGENT_TIERING) must not undo what its
    refused GET found, or it would be asked for again."""
    state = SyncState()
    state.set_remote("tiered.bin", replace(LISTED, archived=True, unsettled=True))
    listed = replace(LISTED, archived=False, unsettled=False)
    applied = apply_snapshot(
        state,
        Snapshot({"tiered.bin": listed}, set(), 0.0),
        busy=lambda rel: False,
        max_delete_percent=50,
        initial=False,
    )
    assert applied.checked == ["tiered.bin"]
    remote = state.get("tiered.bin").remote
    assert remote is not None and remote.archived and not remote.unsettled


def test_a_refused_get_marks_only_that_version_archived() -> None:
    state = SyncState()
    state.set_remote("cold.txt", replace(LISTED, archived=False))
    state.found_archived("cold.txt", "another-etag")
    assert not state.get("cold.txt").remote.archived  # type: ignore[union-attr]
    state.found_archived("cold.txt", "e1")
    assert state.get("cold.txt").remote.archived  # type: ignore[union-attr]


async def test_an_archive_tier_the_listing_cannot_show_is_found_by_its_refused_get(
    syncer_factory, bucket: Bucket, proxy
) -> None:
    """Listed as INTELLIGENT_TIERING (its archive tiers show only in a HEAD): the one GET S3
    refuses (403 InvalidObjectState) says it, and it is not asked for again until a HEAD finds
    it restored."""
    proxy.faults.listed_class = "INTELLIGENT_TIERING"
    await in_thread(put, bucket, "tiered.bin", b"tiered", "GLACIER")
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=0.3)
    assert metric(syncer, "s3sync_skipped_paths_total", reason="archived") == 1
    await eventually(lambda: metric(syncer, "s3sync_polls_total", result="ok") >= 10)
    assert requests(syncer, "GetObject") == 1
    assert metric(syncer, "s3sync_s3_requests_total", operation="GetObject", status="403") == 1
    assert metric(syncer, "s3sync_downloads_total", result="error") == 0
    await in_thread(restore, bucket, "tiered.bin")
    await eventually(lambda: read(syncer.folder / "tiered.bin") == b"tiered", timeout=30)
    assert await syncer.stop(timeout=10) == []


async def test_a_chmod_of_a_file_whose_object_was_archived_since_reaches_s3(
    syncer_factory, bucket: Bucket
) -> None:
    """S3 will not copy an archived object onto itself (403 ObjectNotInActiveTierError): the
    file is uploaded whole instead, once, rather than the copy retried for ever."""
    syncer = await syncer_factory(download_interval=0.3)
    folder: Path = syncer.folder
    (folder / "kept.txt").write_bytes(b"kept")
    await eventually(lambda: in_thread(lambda: bucket.get("kept.txt") == b"kept"))

    def archive() -> None:  # a lifecycle rule's transition, as a client can make one
        bucket.client.copy_object(
            Bucket=bucket.name,
            Key="kept.txt",
            CopySource={"Bucket": bucket.name, "Key": "kept.txt"},
            StorageClass="GLACIER",
        )

    await in_thread(archive)
    await syncer.poll_once()
    (folder / "kept.txt").chmod(0o600)

    def mode_in_s3() -> None:
        head = bucket.head("kept.txt")
        assert int(head["Metadata"]["mode"]) & 0o777 == 0o600
        assert "StorageClass" not in head, "uploaded whole: a readable object again"

    await eventually(lambda: in_thread(mode_in_s3), timeout=30, what="the new mode in S3")
    assert read(folder / "kept.txt") == b"kept"
    assert metric(syncer, "s3sync_metadata_updates_total", side="remote", result="error") == 0
    assert await syncer.stop(timeout=10) == []


async def test_looks_come_when_the_log_says_and_slow_down(caplog: pytest.LogCaptureFixture) -> None:
    """One poll interval after the skip, then doubling; a pass before the look (a listing
    handing the path back) does not put it off; a new version starts over, said again."""
    looked: list[tuple[str, float]] = []
    health = Health(stall_timeout=300, poll_interval=0.1)
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    archived = ArchivedObjects(
        looks=archived_looks(0.1),
        health=health,
        metrics=metrics,
        submit=lambda rel: looked.append((rel, loop.time())),
    )
    start = loop.time()
    archived.skipped("cold.txt", "e1")
    archived.skipped("cold.txt", "e1")  # before its look: kept where it was
    assert not archived.due("cold.txt")
    await eventually(lambda: len(looked) == 1, timeout=5)
    assert 0.09 <= looked[0][1] - start < 0.5
    assert archived.due("cold.txt")
    archived.skipped("cold.txt", "e1")  # the look found it archived still: next in 0.2 s
    await eventually(lambda: len(looked) == 2, timeout=5)
    assert 0.19 <= looked[1][1] - looked[0][1] < 0.6
    said = [r for r in caplog.records if "cold.txt" in r.getMessage()]
    assert len(said) == 1 and "looked at again in 0.1s" in said[0].getMessage()
    assert metric_value(metrics, "archived") == 1
    archived.skipped("cold.txt", "e2")  # a new version: said and counted again
    assert metric_value(metrics, "archived") == 2
    assert len(archived) == 1
    (line,) = health.degraded(unwatched={}, rescan_interval=10)
    assert "1 ('cold.txt')" in line
    archived.cleared("cold.txt")
    assert health.degraded(unwatched={}, rescan_interval=10) == []
    assert len(archived) == 0
    archived.close()


def metric_value(metrics: Metrics, reason: str) -> float:
    return float(metrics.skipped.labels(reason)._value.get())
