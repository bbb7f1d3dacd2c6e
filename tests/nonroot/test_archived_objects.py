"""Archived objects (GLACIER, DEEP_ARCHIVE) with the sidecar as the image runs it, beside an app
writing as another user: the app's file is never replaced, deleted or taken over because of an
archived version; the skip is said once and shown in /healthz; a stop exits at once (nothing
local waits); a restored object comes down readable by the app. (The rules: sync/test_archived.py.)

Needs root to switch users (`setpriv`); skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.bucket import Bucket
from support.local_http import http_get
from support.users import APP_UID, NonRootSidecar, app, start
from support.waiting import eventually, in_thread


def put_archived(bucket: Bucket, key: str, body: bytes) -> None:
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=body, StorageClass="GLACIER")


async def test_archived_versions_never_touch_the_apps_files(
    nonroot: list[NonRootSidecar], bucket: Bucket, volume: Path, tmp_path: Path
) -> None:
    sidecar = await start(nonroot, bucket, volume, tmp_path)
    app(f"open({str(volume / 'report.csv')!r}, 'w').write('a,b')")
    await eventually(lambda: bucket.exists("report.csv") and bucket.get("report.csv") == b"a,b")
    await in_thread(put_archived, bucket, "report.csv", b"archived by another client")
    await in_thread(put_archived, bucket, "cold/data.bin", b"cold")

    def skipped_both() -> None:
        text = sidecar.text()
        assert "'report.csv'" in text and "'cold/data.bin'" in text

    await eventually(skipped_both, what="both archived objects skipped")
    status, body = await http_get(sidecar.port, "/healthz")
    assert status == 200, body
    (line,) = [line for line in json.loads(body)["degraded"] if "archived" in line]
    assert "2 ('cold/data.bin', 'report.csv')" in line, line
    assert (volume / "report.csv").read_bytes() == b"a,b"
    assert os.stat(volume / "report.csv").st_uid == APP_UID, "still the app's own file"
    assert not (volume / "cold").exists()

    await in_thread(
        lambda: bucket.client.restore_object(
            Bucket=bucket.name, Key="cold/data.bin", RestoreRequest={"Days": 1}
        )
    )
    await eventually(lambda: (volume / "cold" / "data.bin").exists(), timeout=30)
    app(f"assert open({str(volume / 'cold' / 'data.bin')!r}).read() == 'cold'")
    warnings = [line for line in sidecar.text().splitlines() if " WARNING " in line]
    assert len([line for line in warnings if "'report.csv'" in line]) == 1, warnings
    assert len([line for line in warnings if "'cold/data.bin'" in line]) == 1, warnings
    code, seconds = await sidecar.stop()
    assert code == 0, sidecar.text()
    assert seconds < 10
    assert (volume / "report.csv").read_bytes() == b"a,b"
