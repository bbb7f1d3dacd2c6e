"""The one back-off policy: how long to wait before the next attempt of anything that failed.

A `Backoff` is a value: the first delay, a cap, how many attempts are retried at once (`free`)
and whether the delay is drawn at random below its ceiling (full jitter, as AWS's architecture
blog recommends for many clients retrying against one server). Each user names its starting
point here, beside the others, so the product's retry timing reads in one place:

- `PATH_FAILED`, `PATH_RACED` (core/state.py): a path whose pass failed, or found the path
  changed under it; no jitter, the scheduler spreads paths already.
- `REQUEST` (aws/signed.py): one request to S3 sent again after a connection failure, a 5xx,
  throttling or missing credentials; jittered, so a burst of failed requests does not come back
  as one burst.
- `CREDENTIALS` (aws/container.py): one fetch from the container credentials endpoint.
- `QUEUE` (remote/feed.py): the SQS long poll after the queue failed.
- `archived_looks` (engine/archived.py): an object S3 holds archived, looked at again (one
  HEAD) one poll interval after it was skipped, then at doubling intervals up to an hour; no
  jitter, so that the log can say when.

Pure: the clock and the random draw are the caller's (`delay` takes the draw).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

_MAX_DOUBLINGS = 30  # 2**30 times the first delay is past every cap; keeps floats finite


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt n (1-based count of failures so far) waits 0 while n <= `free`, then
    `min(cap, first * 2 ** (n - free - 1))`, or a uniform draw below that with `jitter`."""

    first: float
    cap: float
    free: int = 0
    jitter: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap or self.free < 0:
            raise ValueError(f"a back-off needs 0 < first <= cap and free >= 0: {self}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after `attempt` failures (0 for the free ones)."""
        doublings = attempt - self.free - 1
        if doublings < 0:
            return 0.0
        return min(self.cap, self.first * 2.0 ** min(doublings, _MAX_DOUBLINGS))

    def delay(self, attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        """How long to wait after `attempt` failures."""
        ceiling = self.ceiling(attempt)
        return draw(0.0, ceiling) if self.jitter and ceiling else ceiling


# The named starting points (the module docstring says who uses which).
PATH_FAILED = Backoff(first=1.0, cap=300.0)  # 1 s doubling to five minutes
PATH_RACED = Backoff(first=0.8, cap=5.0, free=3)  # three at once, then 0.8 s doubling to 5 s
REQUEST = Backoff(first=0.2, cap=20.0, jitter=True)  # up to 0.2 s doubling to 20 s
CREDENTIALS = Backoff(first=0.2, cap=2.0, jitter=True)  # up to 0.2 s doubling to 2 s
QUEUE = Backoff(first=1.0, cap=60.0)  # 1 s doubling to a minute
ARCHIVED_LOOKS_CAP = 3600.0  # an archived object is looked at again at least once an hour


def archived_looks(poll_interval: float) -> Backoff:
    """From one poll interval, doubling to an hour (never under the interval itself)."""
    first = max(poll_interval, 0.1)
    return Backoff(first=first, cap=max(first, ARCHIVED_LOOKS_CAP))
