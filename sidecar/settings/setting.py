"""`Setting`: one row of the table of settings (table.py). It says everything about a setting
except its name and type, which are those of the `Settings` field it is bound to
(`Setting.field()`): its default (written here and nowhere else), its variable, mobius3's name
for it where mobius3 has one, how its text is read and checked, whether it is a secret, and what
the README says of it.

One name per setting: the field's. The environment spells it `SYNC_` and the name in capitals;
`Syncer(...)` takes it by that name as a keyword, except where mobius3 named it first
(`argument`: its positional arguments and command-line flags keep mobius3's names, mapped here).
Rows are frozen and hold only immutable defaults (a dataclass refuses mutable ones).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

ROW = "setting"  # the key of a row in its field's metadata


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


# Required settings, and the endpoint (derived from the region): no default in `Settings`.
NO_DEFAULT: Any = _NoDefault()


def _show(value: object) -> str:
    """A default as the environment would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plain(markdown: str) -> str:
    """Documentation without its markdown: code spans and links as bare text (for --help)."""
    return re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", markdown).replace("`", "")


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    default: T
    env: str | None = None  # the SYNC_* variable; None: the Python API (or command line) only
    parse: Callable[[str], T] | None = None  # text -> value, ValueError if malformed
    expected: str = ""  # the form parse takes, as errors show it
    meaning: str = ""  # markdown, as in the README's table
    example: str = ""
    note: str = ""  # markdown, in brackets after the default ("nothing", "all interfaces")
    shown: str | None = None  # the documented default, when the value cannot say it
    show: Callable[[T], str] = _show  # the default as the environment would spell it
    argument: str | None = None  # mobius3's name: Syncer's keyword (and positional) argument
    flag: str | None = None  # mobius3's command-line flag that takes this setting's text
    tidy: Callable[[Any], T] | None = None  # what Syncer makes of a value passed to it
    required: bool = False
    secret: bool = False  # never shown: not in errors, not in repr()
    service: bool = False  # read by the command's service only: Syncer() does not take it

    def field(self) -> T:
        """The `Settings` field this row describes (typed as its value, for mypy)."""
        if self.default is NO_DEFAULT:
            return cast(T, dataclasses.field(metadata={ROW: self}, repr=not self.secret))
        return dataclasses.field(default=self.default, metadata={ROW: self}, repr=not self.secret)

    @property
    def documented(self) -> str:
        """The default as the README's table and its test read it, without markdown."""
        return plain(self._default_cell())

    def _default_cell(self) -> str:
        if self.required:
            return "(required)"
        if self.shown is not None:
            return f"`{self.shown}`"
        value = self.default
        if value is None or value == "":
            return f"({self.note})"
        shown = f"`{self.show(value)}`"
        return f"{shown} ({self.note})" if self.note else shown

    def markdown_row(self) -> str:
        """This variable's row in the README's configuration table."""
        cells = (f"`{self.env}`", self.meaning, self._default_cell(), f"`{self.example}`")
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
