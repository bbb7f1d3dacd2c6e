"""What the operations share: the folder (`Tree`), S3 and its key mapping, the state, the
metrics, the re-checks (`Checks`, checks.py) and the settings, as one frozen record the executor
hands to each. It holds no behaviour of its own (looking again is `Checks`', temporary names
are the working folder's, local/workdir.py; fetching an object is `Fetcher`'s, fetch.py), and
no callback: the executor gives `hold_replaced` only to the operations that replace or delete a
local file, and `progress` only to those that move bytes.

Every local path is reached through `tree` (safefs.py), from the root's descriptor with no
symlink followed below it; there is no path-string access to the folder in any operation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..core.keys import KeyMapper
from ..core.state import SyncState
from ..local.databases import Databases
from ..local.proof import EtagKnowledge
from ..local.safefs import Tree
from ..metrics import Metrics
from ..s3.client import S3Client
from ..s3.deletes import DeleteBatches
from .checks import Checks


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """The settings operations read (their defaults are the table's: settings/table.py)."""

    multipart_threshold: int
    multipart_chunksize: int
    multipart_concurrency: int
    inline_read_max: int = 256 * 1024  # read in one go on the loop up to this size


class TransferLog:
    """The one line each completed transfer logs (uploaded, downloaded, deleted, metadata
    updated): at INFO, except while the start-up restore runs (`restoring` to `restored`), when
    it is at DEBUG and the restore logs its progress on a timer instead (6,000 objects are not
    6,000 lines)."""

    __slots__ = ("level",)

    def __init__(self) -> None:
        self.level = logging.INFO

    def restoring(self) -> None:
        self.level = logging.DEBUG

    def restored(self) -> None:
        self.level = logging.INFO

    def done(self, logger: logging.Logger, message: str, rel: str, **fields: object) -> None:
        """`message % rel`, with `rel` as the record's `path` and `fields` beside it."""
        if logger.isEnabledFor(self.level):
            logger.log(self.level, message, rel, extra={"path": rel, **fields}, stacklevel=2)


@dataclass(frozen=True, slots=True)
class Workspace:
    """The parts the operations act through; see the module."""

    settings: ExecutorSettings
    keys: KeyMapper
    tree: Tree  # the folder, held open: every local path is reached through it
    s3: S3Client
    deletes: DeleteBatches  # a pass's delete, sent with those other passes make meanwhile
    state: SyncState
    metrics: Metrics
    checks: Checks  # looked at again right before committing
    etags: EtagKnowledge  # whether this bucket's ETags are MD5s (the checks' too)
    transfers: TransferLog  # each completed transfer's line, at the level of the moment
    databases: Databases | None = None  # SYNC_SQLITE=snapshot: databases uploaded as snapshots


__all__ = ["ExecutorSettings", "TransferLog", "Workspace"]
