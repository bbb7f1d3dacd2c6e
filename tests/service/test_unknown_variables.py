"""A misspelled `SYNC_*` variable is not silently ignored: the start warns, naming the closest
known setting, and goes on (the variable may belong to another tool)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.waiting import eventually

from sidecar.settings.config import unknown_variables


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            {"SYNC_BUKCET": "b"},
            [
                "SYNC_BUKCET is not a setting of s3sync-sidecar and is ignored; did you mean "
                "SYNC_BUCKET?"
            ],
        ),
        (
            {"SYNC_POLL_INTERVALL": "5", "SYNC_BUCKET": "b", "HOME": "/root"},
            [
                "SYNC_POLL_INTERVALL is not a setting of s3sync-sidecar and is ignored; did you "
                "mean SYNC_POLL_INTERVAL?"
            ],
        ),
        ({"SYNC_ZZZ": "1"}, ["SYNC_ZZZ is not a setting of s3sync-sidecar and is ignored"]),
        ({"SYNC_DIR": "/data", "SYNC_MODE": "upload-only", "NOT_SYNC_X": "1"}, []),
    ],
)
def test_unknown_variables_are_named_with_the_closest_setting(
    env: dict[str, str], lines: list[str]
) -> None:
    assert unknown_variables(env) == lines


async def test_a_misspelled_variable_is_warned_about_at_start(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    sidecar = run_sidecar([], sidecar_environment(bucket, folder, SYNC_BUKCET="typo"))
    await eventually(lambda: "restored" in sidecar.text(), timeout=30)
    assert "SYNC_BUKCET is not a setting" in sidecar.text()
    assert "did you mean SYNC_BUCKET?" in sidecar.text()
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 0, sidecar.text()
