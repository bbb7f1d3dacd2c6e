"""inotify's event queue, made small on purpose so a test can overflow it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_QUEUED_EVENTS = Path("/proc/sys/fs/inotify/max_queued_events")


@contextlib.contextmanager
def small_inotify_queue(size: int) -> Iterator[None]:
    """inotify copies fs.inotify.max_queued_events into each instance when it is made: lower it
    for one start, so a test can overflow that instance's queue deterministically."""
    if os.geteuid() != 0:
        pytest.skip("lowering fs.inotify.max_queued_events needs root")
    old = MAX_QUEUED_EVENTS.read_text()
    MAX_QUEUED_EVENTS.write_text(str(size))
    try:
        yield
    finally:
        MAX_QUEUED_EVENTS.write_text(old)
