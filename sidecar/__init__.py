"""s3sync-sidecar: keep a folder and an S3 prefix continuously in sync, in both directions.

`Syncer` is imported on first use, so that light entry points (`s3sync-sidecar healthcheck`,
run by ECS every few seconds) do not pay for aiohttp and the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.syncer import Syncer, SyncStatus

from .version import __version__

__all__ = ["SyncStatus", "Syncer", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Syncer", "SyncStatus"):
        from .engine import syncer

        return getattr(syncer, name)
    raise AttributeError(f"module 'sidecar' has no attribute {name!r}")
