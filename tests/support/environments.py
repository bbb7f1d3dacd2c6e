"""The environments a sidecar is configured by, built once here:

- `sidecar_environment`: syncing a folder with the test bucket on moto (its keys, its endpoint,
  the region); what a test adds or replaces comes as keywords (`SYNC_POLL_INTERVAL="0.5"`).
- `minimal_environment`: the least `load_settings` accepts, with AWS's documented example keys
  and no server behind them, for the tests of settings alone."""

from __future__ import annotations

from pathlib import Path

from support.bucket import Bucket
from support.s3_server import REGION

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLESECRET"


def sidecar_environment(bucket: Bucket, folder: Path | str, **settings: str) -> dict[str, str]:
    return {
        **bucket.server.env(),
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": bucket.name,
        "SYNC_ENDPOINT": bucket.server.endpoint_pattern,
        "SYNC_REGION": REGION,
        **settings,
    }


def minimal_environment(folder: Path) -> dict[str, str]:
    return {
        "SYNC_DIR": str(folder),
        "SYNC_BUCKET": "my-bucket",
        "SYNC_REGION": "eu-west-2",
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
