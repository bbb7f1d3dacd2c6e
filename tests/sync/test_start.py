"""Start: the bucket is restored into the folder before `start()` returns, with its metadata
and without writing back to S3; a crash's temporary files are cleaned; a missing bucket fails
the start clearly; mobius3's `start, stop = Syncer(...)` works. (When both sides hold a path at
start: test_conflicts.py; a restart on a folder that survived: test_restarts.py.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.metrics import requests
from support.s3_server import REGION
from support.waiting import in_thread

from sidecar import Syncer
from sidecar.local.workdir import is_temp_name, temp_name
from sidecar.s3.client import S3Error
from sidecar.s3.metadata import format_mode, format_mtime


async def test_restore_before_start_returns(syncer_factory, bucket: Bucket) -> None:
    mtime = 1_650_000_000_123_456_789
    await in_thread(
        bucket.put,
        "deep/er/file.txt",
        b"deep",
        {"mtime": format_mtime(mtime), "mode": format_mode(stat.S_IFREG | 0o600)},
    )
    await in_thread(bucket.put, "no-metadata.bin", b"\x00\x01")
    await in_thread(bucket.put, "empty/", b"")
    await in_thread(
        bucket.put, "link", b"deep/er/file.txt", {"mode": format_mode(stat.S_IFLNK | 0o777)}
    )
    for index in range(40):
        await in_thread(bucket.put, f"many/{index:02d}", str(index).encode())

    syncer = await syncer_factory()
    folder: Path = syncer.folder
    # No waiting: everything is in place when start() returns.
    assert (folder / "deep" / "er" / "file.txt").read_bytes() == b"deep"
    st = os.lstat(folder / "deep" / "er" / "file.txt")
    assert st.st_mtime_ns == mtime
    assert stat.S_IMODE(st.st_mode) == 0o600
    head = await in_thread(bucket.head, "no-metadata.bin")
    assert os.lstat(folder / "no-metadata.bin").st_mtime == head["LastModified"].timestamp()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.lstat(folder / "no-metadata.bin").st_mode) == 0o666 & ~umask
    assert (folder / "empty").is_dir()
    assert os.readlink(folder / "link") == "deep/er/file.txt"
    assert sorted(p.name for p in (folder / "many").iterdir()) == [f"{i:02d}" for i in range(40)]
    leftovers = [
        p.name
        for p in (folder / ".s3sync-sidecar").iterdir()
        if not p.name.startswith("state.sqlite3")
    ]
    assert leftovers == [], "no temporary file left"
    assert syncer.metrics.restore_done._value.get() == 1
    # The restore wrote nothing back to S3 (no markers for implicit directories either).
    assert requests(syncer, "PutObject") == 0
    assert sorted(await in_thread(bucket.list_keys)) == sorted(
        ["deep/er/file.txt", "no-metadata.bin", "empty/", "link"]
        + [f"many/{i:02d}" for i in range(40)]
    )


async def test_leftover_temporary_files_are_cleaned(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    work = tmp_path / "folder" / ".s3sync-sidecar"
    work.mkdir(parents=True)
    (work / ("ab" * 16)).write_bytes(b"half a download from a crash")
    (work / "user-note.txt").write_bytes(b"not ours: kept")
    await syncer_factory(directory=tmp_path / "folder")
    names = sorted(p.name for p in work.iterdir() if not p.name.startswith("state.sqlite3"))
    assert names == ["user-note.txt"]
    assert await in_thread(bucket.list_keys) == [], "the working folder is never uploaded"


def test_temporary_names_are_the_ones_cleaned_at_start() -> None:
    names = [temp_name() for _ in range(10_000)]
    assert len(set(names)) == len(names)
    assert all(is_temp_name(name) for name in names), "a crash's leftovers would stay"
    for name in ("user-note.txt", "AB" * 16, "ab" * 15, "ab" * 17, "g" * 32):
        assert not is_temp_name(name), name
    another = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sidecar.local.workdir import temp_name; print(temp_name())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert is_temp_name(another)
    assert another[:16] != names[0][:16], "each process has its own random half"


async def test_missing_bucket_fails_start_clearly(bucket: Bucket, tmp_path: Path) -> None:
    syncer = Syncer(
        str(tmp_path / "f"), "no-such-bucket-here", bucket.server.endpoint_pattern, REGION
    )
    with pytest.raises(S3Error) as info:
        await syncer.start()
    assert info.value.status == 404
    assert "NoSuchBucket" in str(info.value)


async def test_mobius3_style_unpacking(bucket: Bucket, tmp_path: Path) -> None:
    await in_thread(bucket.put, "x.txt", b"x")
    start, stop = Syncer(
        str(tmp_path / "f"),
        bucket.name,
        bucket.server.endpoint_pattern,
        REGION,
        prefix="",
        concurrent_uploads=2,
        concurrent_downloads=2,
        download_interval=1,
        exclude_remote="^$",
        exclude_local="^$",
        upload_on_create="^$",
        local_modification_persistance=120,
        get_logger_adapter=None,
    )
    await start()
    try:
        assert (tmp_path / "f" / "x.txt").read_bytes() == b"x"
    finally:
        assert await stop() == []
