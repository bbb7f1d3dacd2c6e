"""The sidecar as the image runs it: an unprivileged user (uid 64000) beside an app that writes
as another (uid 64001), both in one group (gid 64100) on a folder shaped like an ECS shared
volume (group-writable, setgid). Every other test runs as root, which reads and writes
everything: what a non-root sidecar meets (a folder the app made private, a file it chmodded
600) was invisible there.

Needs root to switch users (`setpriv`); skipped with the reason otherwise."""

from __future__ import annotations

import os
import time
from pathlib import Path

from support.bucket import Bucket
from support.local_http import http_get
from support.nonroot import SIDECAR_UID, NonRootSidecar, app, start
from support.waiting import eventually, in_thread


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
