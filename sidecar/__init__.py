"""s3sync-sidecar: keep a folder and an S3 prefix continuously in sync, in both directions.

`Syncer` is imported on first use, so that light entry points (`s3sync-sidecar healthcheck`,
run by ECS every few seconds) do not pay for aiohttp and the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .syncer import Syncer, SyncStatus

__all__ = ["SyncStatus", "Syncer", "__version__"]
# The one place the version is written: pyproject.toml reads it from here (setuptools `attr`),
# and so do `s3sync-sidecar --version`, the `s3sync_build_info` metric and the image's label test.
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Syncer", "SyncStatus"):
        from . import syncer

        return getattr(syncer, name)
    raise AttributeError(f"module 'sidecar' has no attribute {name!r}")
