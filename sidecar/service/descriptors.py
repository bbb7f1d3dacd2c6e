"""Open files: the soft `RLIMIT_NOFILE` raised to the hard limit at start (as servers do), and
the `Budget` that keeps a reserve of descriptors for the sync, which the HTTP endpoints never
take.

Every socket to S3, every file being uploaded or downloaded, the inotify descriptor and the
state's database take one descriptor each; so does every connection to the endpoints. Past the
soft limit `open`, `socket` and `accept` fail with EMFILE: the sync stops (issue 24: 1,100
unfinished requests on the metrics port under the usual soft limit of 1024). Hence:

- the soft limit is raised to the hard one at start, once (logged): the hard limit is what the
  operator allowed (ECS `ulimits`, Docker's default 1024:524288);
- the reserve is two descriptors per transfer connection (a socket and a file each) plus 64
  (inotify, the database and its journal, logs, the event loop), at most half the soft limit;
- `Budget.room`: an HTTP connection may take a descriptor only while fewer than the soft limit
  minus the reserve are open.

Counting `/proc/self/fd` costs about 125 µs at 150 descriptors on the 2-core development
machine (a `getrlimit` about 1 µs), too much for every connection of a flood: the count is
taken at most every `COUNT_EVERY` seconds and, in between, each connection let in adds one. What
the sync opens in between is what its reserve is for. The soft limit is read at every check, so
a `prlimit` from outside is honoured at once.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

COUNT_EVERY = 0.1  # seconds a count of open descriptors is trusted
RESERVE_BASE = 64  # descriptors the sync holds whatever it transfers


@dataclass(frozen=True, slots=True)
class OpenFilesLimit:
    """The soft limit before and after the start raised it, the hard limit, and why it was not
    raised (empty when it was, or needed not be)."""

    before: int
    soft: int
    hard: int
    problem: str = ""

    def describe(self) -> str:
        if self.problem:
            return f"open files limit {self.soft} (not raised to {self.hard}: {self.problem})"
        if self.soft > self.before:
            return f"open files limit raised from {self.before} to {self.soft} (the hard limit)"
        return f"open files limit {self.soft} (the hard limit)"


def raise_open_files_limit() -> OpenFilesLimit:
    """The soft `RLIMIT_NOFILE` raised to the hard limit (an unlimited hard limit, which Linux
    does not give this resource, is left alone)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY in (hard, soft) or soft >= hard:
        return OpenFilesLimit(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        return OpenFilesLimit(soft, soft, hard, str(error))
    return OpenFilesLimit(soft, hard, hard)


def soft_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_descriptors() -> int:
    """Descriptors this process has open (not counting the one that lists them)."""
    return len(os.listdir("/proc/self/fd")) - 1


def reserve(transfer_connections: int, soft: int) -> int:
    """Descriptors kept for the sync under a soft limit of `soft`."""
    return min(2 * transfer_connections + RESERVE_BASE, soft // 2)


class Budget:
    """Whether one more descriptor may go to an HTTP connection: only while fewer than the soft
    limit minus the sync's reserve are open."""

    def __init__(
        self,
        transfer_connections: int,
        count: Callable[[], int] = open_descriptors,
        limit: Callable[[], int] = soft_limit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transfers = transfer_connections
        self._count = count
        self._limit = limit
        self._clock = clock
        self._open = 0
        self._counted_at = -COUNT_EVERY

    @property
    def counted(self) -> int:
        """Descriptors open at the last count, plus those taken since."""
        return self._open

    def ceiling(self) -> int:
        """Descriptors open past which no HTTP connection is let in."""
        soft = self._limit()
        return soft - reserve(self._transfers, soft)

    def room(self, fresh: bool = False) -> bool:
        now = self._clock()
        if fresh or now - self._counted_at >= COUNT_EVERY:
            self._open = self._count()
            self._counted_at = now
        return self._open < self.ceiling()

    def took(self) -> None:
        """One descriptor went to a connection since the last count."""
        self._open += 1
