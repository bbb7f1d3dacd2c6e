"""The sidecar as the image runs it: an unprivileged user (uid 64000) beside an app that writes
as another (uid 64001), both in one group (gid 64100) on a folder shaped like an ECS shared
volume (group-writable, setgid). Every other test runs as root, which reads and writes
everything: what a non-root sidecar meets (a folder the app made private, a file it chmodded
600) was invisible there.

Needs root to switch users (`setpriv`); skipped with the reason otherwise."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from support.bucket import Bucket
from support.local_http import http_get
from support.users import SHARED_GID, SIDECAR_UID, NonRootSidecar, app, start
from support.volumes import fill, free, small_volume
from support.waiting import eventually, in_thread

from sidecar.local.conflicts import existing_conflicts


async def test_the_sidecar_runs_as_its_own_user_beside_the_app(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """The baseline: what the app writes goes up; what S3 gets comes down, readable and
    replaceable by the app; the working folder and the state are the sidecar's."""
    sidecar = await start(nonroot, bucket, volume, tmp_path)
    app(f"open({str(volume / 'from-app.txt')!r}, 'w').write('app')")
    await eventually(lambda: bucket.exists("from-app.txt") and bucket.get("from-app.txt") == b"app")
    await in_thread(bucket.put, "from-s3.txt", b"s3")
    await eventually(lambda: (volume / "from-s3.txt").exists())
    assert os.stat(volume / "from-s3.txt").st_uid == SIDECAR_UID
    app(f"open({str(volume / 'from-s3.txt')!r}, 'a').write(' and the app')")  # group-writable
    await eventually(lambda: bucket.get("from-s3.txt") == b"s3 and the app")
    assert os.stat(volume / ".s3sync-sidecar" / "state.sqlite3").st_uid == SIDECAR_UID
    code, _ = await sidecar.stop()
    assert code == 0, sidecar.text()


async def test_a_key_in_a_folder_the_app_made_private_is_not_a_local_change(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """The app makes `private/` (0700); another client puts `private/report.csv`, which the
    sidecar may not create. The path is retried with back-off (however often the unwatched
    folder is listed), said once and shown in /healthz (200, degraded), readiness holds, and
    a stop exits 0 at once: nothing local waits (before: exit 1 after the whole shutdown
    timeout, "local changes not uploaded: private/report.csv", and a retry every second while
    the log said 300 s)."""
    sidecar = await start(nonroot, bucket, volume, tmp_path)
    app(f"os.mkdir({str(volume / 'private')!r}, 0o700)")
    await eventually(lambda: bucket.exists("private/"), what="the private folder's marker")
    await in_thread(bucket.put, "private/report.csv", b"a,b\n")
    await eventually(lambda: "private/report.csv" in sidecar.text(), what="a first failure")
    time.sleep(6)
    failures = [line for line in sidecar.text().splitlines() if "'private/report.csv'" in line]
    warnings = [line for line in failures if "WARNING" in line]
    assert len(warnings) == 1, failures
    attempts = [line for line in failures if "failed (attempt" in line]
    assert len(attempts) <= 4, attempts  # back-off of 1, 2, 4 s: not one per scan
    status, body = await http_get(sidecar.port, "/healthz")
    assert status == 200 and "private/report.csv" in body and "degraded" in body, body
    status, _ = await http_get(sidecar.port, "/readyz")
    assert status == 200
    code, seconds = await sidecar.stop()
    assert code == 0, sidecar.text()
    assert seconds < 10
    assert "not uploaded" not in sidecar.text()


async def test_a_file_the_app_made_private_never_blocks_the_version_in_s3(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """The app writes `notes.txt` (synced), then makes it private (`chmod 600`, its own file);
    another client puts a new `notes.txt`. The sidecar cannot read the app's file to prove it
    unchanged, so it keeps it, and keeps S3's version beside it as one conflict copy, however
    often it tries again; /healthz names the file it cannot read (before: every retry failed
    reading it, forever, and the new bytes never arrived)."""
    sidecar = await start(nonroot, bucket, volume, tmp_path)
    app(f"open({str(volume / 'notes.txt')!r}, 'w').write('v1 from the app')")
    await eventually(lambda: bucket.exists("notes.txt"))
    await sidecar.flush()
    app(f"os.chmod({str(volume / 'notes.txt')!r}, 0o600)")
    await in_thread(bucket.put, "notes.txt", b"v2 from another client")

    def copies() -> list[str]:
        return existing_conflicts("notes.txt", [p.name for p in volume.iterdir()])

    await eventually(lambda: len(copies()) == 1, timeout=30, what="S3's version beside it")
    assert (volume / copies()[0]).read_bytes() == b"v2 from another client"
    time.sleep(5)
    assert len(copies()) == 1
    status, body = await http_get(sidecar.port, "/healthz")
    assert status == 200 and "notes.txt" in body, body
    os.chmod(volume / "notes.txt", 0o644)  # as root: what the app wrote is still there
    assert (volume / "notes.txt").read_bytes() == b"v1 from the app"


async def test_a_stop_retries_what_it_cannot_send_as_often_as_its_log_says(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """A file the app keeps private cannot be uploaded: at a stop, the drain tries it again
    every few seconds, each line saying when the next try is, and the gaps between tries are
    what the lines said (before: "retrying in 300s", every second); the stop then names it."""
    sidecar = await start(
        nonroot, bucket, volume, tmp_path, SYNC_LOG_LEVEL="DEBUG", SYNC_SHUTDOWN_TIMEOUT="9"
    )
    app(
        f"fd = os.open({str(volume / 'secret.txt')!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "os.write(fd, b'private')\nos.close(fd)"
    )
    await eventually(lambda: "'secret.txt' failed" in sidecar.text(), what="a first failure")
    code, _ = await sidecar.stop()
    assert code == 1, sidecar.text()
    text = sidecar.text()
    after = text[text.index("SIGTERM received") :]
    tries = [line for line in after.splitlines() if "'secret.txt' failed" in line]
    assert len(tries) >= 3, after
    said = [float(line.rpartition("retrying in ")[2].split("s")[0]) for line in tries]
    assert max(said) <= 2, tries
    stamps = [_stamp(line) for line in tries]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert all(0.5 <= gap <= 3.5 for gap in gaps), (gaps, tries)
    assert "not uploaded: secret.txt" in after


def _stamp(line: str) -> float:
    """The time of a text log line (`2026-12-06 06:15:49,481 ...`), in seconds."""
    clock = line.split(" ")[1]
    hours, minutes, seconds = clock.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def test_a_full_volume_at_start_stops_the_start_and_keeps_the_state(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """Item 4 as the image meets it: the sidecar (uid 64000) on a volume of its own that is
    full at a restart. The start fails (exit 1) touching nothing: the state's bytes are the
    same, nothing was uploaded or deleted; with space again, what was deleted on each side
    while it was down is deleted on the other."""
    with small_volume(
        volume.parent / "small", "4m", f"mode=2775,uid={SIDECAR_UID},gid={SHARED_GID}"
    ) as volume:  # beside the shared folder: its parents are reachable by both users
        sidecar = await start(nonroot, bucket, volume, tmp_path)
        for name in ("gone-in-s3.txt", "gone-here.txt", "kept.txt"):
            app(f"open({str(volume / name)!r}, 'w').write({name!r})")
        await eventually(lambda: len(bucket.list_keys()) == 3)
        await sidecar.flush()
        code, _ = await sidecar.stop()
        assert code == 0, sidecar.text()
        await in_thread(bucket.delete, "gone-in-s3.txt")
        app(f"os.unlink({str(volume / 'gone-here.txt')!r})")
        state = volume / ".s3sync-sidecar" / "state.sqlite3"
        before = state.read_bytes()
        filler = fill(volume)
        failed = NonRootSidecar(bucket, volume, tmp_path / "full.log")
        nonroot.append(failed)
        assert await in_thread(failed.process.wait, 60) == 1
        assert "cannot be read now" in failed.text(), failed.text()
        assert state.read_bytes() == before
        assert sorted(bucket.list_keys()) == ["gone-here.txt", "kept.txt"]
        assert sorted(p.name for p in volume.glob("*.txt")) == ["gone-in-s3.txt", "kept.txt"]
        free(volume, filler)
        await start(nonroot, bucket, volume, tmp_path)
        await eventually(lambda: bucket.list_keys() == ["kept.txt"], what="deleted in S3")
        await eventually(
            lambda: sorted(p.name for p in volume.glob("*.txt")) == ["kept.txt"],
            what="deleted here",
        )


async def test_a_rewrite_of_a_file_we_uploaded_in_parts_made_while_down_is_uploaded(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    """Item 10 as the image meets it: the app's 12 MiB file, uploaded by the sidecar in 5 MiB
    parts, rewritten by the app while the sidecar was down (same size, mtime put back): the
    restart uploads the new bytes."""
    parts = {"SYNC_MULTIPART_THRESHOLD": "5MiB", "SYNC_MULTIPART_CHUNKSIZE": "5MiB"}
    sidecar = await start(nonroot, bucket, volume, tmp_path, **parts)
    big = volume / "big.bin"
    app(f"open({str(big)!r}, 'wb').write(os.urandom(12 * 1024 * 1024))")
    await eventually(lambda: bucket.exists("big.bin"), timeout=30)
    await sidecar.flush()
    assert (await sidecar.stop())[0] == 0, sidecar.text()
    app(
        f"st = os.stat({str(big)!r})\n"
        f"open({str(big)!r}, 'r+b').write(b'new bytes, same size')\n"
        f"os.utime({str(big)!r}, ns=(st.st_atime_ns, st.st_mtime_ns))"
    )
    rewritten = big.read_bytes()
    await start(nonroot, bucket, volume, tmp_path, **parts)
    await eventually(lambda: bucket.get("big.bin") == rewritten, timeout=60, what="the rewrite")
