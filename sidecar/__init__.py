"""s3sync-sidecar: keep a folder and an S3 prefix continuously in sync, in both directions."""

from .syncer import Syncer, SyncStatus

__all__ = ["SyncStatus", "Syncer", "__version__"]
__version__ = "0.1.0"
