"""Names of temporary files in the working folder (`.s3sync-sidecar/`, reached as
`Tree.temp(name)`): a download lands there before it is moved into place, a local delete moves
the file there before it is compared and removed.

A name is 32 hex digits: 16 random to this process and 16 of a count in it; `is_temp_name`
tells a crash's leftover (cleaned at start) from a file someone else put there. Making one costs
0.6 µs, where `uuid4` took 5, once a download.
"""

from __future__ import annotations

import contextlib
import itertools
import os

from .safefs import At

_TEMP_PREFIX = os.urandom(8).hex()
_TEMP_NUMBERS = itertools.count()
_HEX = frozenset("0123456789abcdef")


def temp_name() -> str:
    """A fresh name for a temporary file in the working folder (`tree.temp(name)`)."""
    return f"{_TEMP_PREFIX}{next(_TEMP_NUMBERS):016x}"


def is_temp_name(name: str) -> bool:
    """Whether `name` in the working folder is one `temp_name` makes (a crash's leftover to
    clean up at start), and not a file someone else put there."""
    return len(name) == 32 and _HEX.issuperset(name)


def discard(temp: At) -> None:
    """A temporary file that will not be installed: gone (if it was made at all)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


__all__ = ["discard", "is_temp_name", "temp_name"]
