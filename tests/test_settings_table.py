"""The table of settings (sidecar/settings/table.py) and what is built from it: one name per
setting, each default written once, the README's table. Pure: no server, no start."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import pytest

from sidecar.settings import table
from sidecar.settings.config import Variable
from sidecar.settings.parsers import format_size, parse_size
from sidecar.settings.setting import NO_DEFAULT, Setting
from sidecar.settings.table import ROWS, Settings, readme_table

README = Path(__file__).resolve().parent.parent / "README.md"


# -- the table ----------------------------------------------------------------------------------


def test_every_field_is_bound_to_its_row() -> None:
    assert [name for name, _ in ROWS] == [f.name for f in fields(Settings)]
    for name, row in ROWS:
        assert getattr(table, name.upper()) is row, name


def test_a_variable_is_its_setting_s_name_in_capitals() -> None:
    for name, row in ROWS:
        if row.env is not None:
            assert row.env == "SYNC_" + name.upper() or (name, row.env) == ("directory", "SYNC_DIR")


def test_every_variable_has_a_parser_and_its_documentation() -> None:
    for _, row in ROWS:
        if row.env is not None:
            assert row.parse is not None and row.expected and row.meaning and row.example, row.env
        else:
            assert row.parse is None and row.meaning, row


def test_defaults_are_the_table_s() -> None:
    defaults = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}
    assert defaults == {name: row.default for name, row in ROWS if row.default is not NO_DEFAULT}
    assert [name for name, row in ROWS if row.default is NO_DEFAULT] == [
        "directory",
        "bucket",
        "region",
        "endpoint",  # the region's
    ]


@pytest.mark.parametrize("size", [5 * 1024**2, 16 * 1024**2, 6_000_000, 5 * 1024**3, 5_242_881])
def test_a_size_is_shown_as_it_is_read(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_format_size() -> None:
    assert format_size(16 * 1024**2) == "16MiB"
    assert format_size(5 * 1024**3) == "5GiB"
    assert format_size(8 * 1024**2 + 1024) == "8193KiB"
    assert format_size(5_000_000) == "5000000"


def test_a_secret_is_never_shown() -> None:
    secret: Setting[str] = Setting("", env="SYNC_X", parse=str, expected="a token", secret=True)

    @dataclass(frozen=True)
    class WithSecret:
        token: str = secret.field()

    assert "hunter2" not in repr(WithSecret("hunter2"))
    variable = Variable("SYNC_X", "token", "a token", "", "", "", str, secret=True)
    problem = variable.problem("hunter2")
    assert "hunter2" not in str(problem) and "hunter2" not in repr(problem)
    assert str(problem) == "SYNC_X: expected a token (a secret: not shown)"


# -- the README ---------------------------------------------------------------------------------


def test_the_readme_configuration_table_is_the_generated_one() -> None:
    """Regenerate it with `.venv/bin/python scripts/settings_table.py`."""
    assert readme_table() in README.read_text(encoding="utf-8")
