"""What the operations act through: the folder (`Tree`), S3 and its key mapping, the state,
the metrics, and the re-checks (`Checks`, checks.py), as one frozen record the executor hands to
each. It holds no behaviour of its own: looking again is `Checks`', temporary names are the
working folder's (local/workdir.py), fetching an object is `Fetch`'s.

Every local path is reached through `tree` (safefs.py), from the root's descriptor with no
symlink followed below it; there is no path-string access to the folder in any operation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..core.keys import KeyMapper
from ..core.state import SyncState
from ..local.proof import EtagKnowledge
from ..local.safefs import Tree
from ..metrics import Metrics
from ..s3.client import S3Client
from .checks import Checks


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    inline_read_max: int = 256 * 1024  # read in one go on the loop up to this size
    multipart_threshold: int = 16 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    multipart_concurrency: int = 4


def _close(rel: str, fd: int) -> None:
    os.close(fd)


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class Workspace:
    """The parts every operation acts through; see the module."""

    settings: ExecutorSettings
    keys: KeyMapper
    tree: Tree  # the folder, held open: every local path is reached through it
    s3: S3Client
    state: SyncState
    metrics: Metrics
    checks: Checks  # looked at again right before committing
    etags: EtagKnowledge  # whether this bucket's ETags are MD5s (the checks' too)
    # Given the descriptor of a version of `rel` no name reaches any more (replaced or
    # deleted): an app may still write to it (replaced.py).
    hold_replaced: Callable[[str, int], None] = _close
    progress: Callable[[], None] = _nothing  # called as bytes move: a long transfer is not a stall


__all__ = ["ExecutorSettings", "Workspace"]
