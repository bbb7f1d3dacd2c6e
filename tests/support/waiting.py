"""Waiting with a deadline (never a bare sleep), and blocking test I/O off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `check` (sync or async; a truthy result, or None without an exception, ends it)
    until a deadline. The last failure is re-raised, so a timeout says what was wrong."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result is None or result:
                return result
            failure: BaseException = AssertionError(f"not yet: {what or check}")
        except Exception as error:
            failure = error
        if time.monotonic() > deadline:
            raise failure
        await asyncio.sleep(interval)


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run blocking test I/O (botocore calls) without freezing the syncer in the same loop."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)
