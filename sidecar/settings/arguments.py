"""The Python API's edge of the table of settings: `Syncer(...)` takes each setting by mobius3's
name where mobius3 named it (`concurrent_uploads`, `download_interval`,
`local_modification_persistance`, `download_directory`), else by its own; the command's service
passes its `Settings` through the same door (`as_arguments`), so both are tidied alike.

Settings that only the service reads (logs, HTTP, TLS, credentials, shutdown) are not `Syncer`
arguments: it takes an `ssl_context` and a `credentials` provider instead, and `stop(timeout=)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .table import ROWS, Settings

# Syncer's argument name -> the setting's name
ARGUMENTS: dict[str, str] = {row.argument or name: name for name, row in ROWS if not row.service}
_ROWS = dict(ROWS)


def from_arguments(arguments: Mapping[str, Any]) -> Settings:
    """Settings from `Syncer`'s arguments (each tidied as its row says); those not given keep
    their defaults. KeyError for a name that is not an argument (see `unexpected`)."""
    values: dict[str, Any] = {}
    for argument, value in arguments.items():
        name = ARGUMENTS[argument]
        tidy = _ROWS[name].tidy
        values[name] = value if tidy is None else tidy(value)
    return Settings(**values)


def unexpected(names: set[str]) -> list[str]:
    """The names among `names` that no setting is taken by."""
    return sorted(names - ARGUMENTS.keys())


def as_arguments(settings: Settings) -> dict[str, Any]:
    """`settings` as `Syncer`'s arguments: `Syncer(**as_arguments(settings), ...)`."""
    return {argument: getattr(settings, name) for argument, name in ARGUMENTS.items()}
