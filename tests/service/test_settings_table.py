"""The table of settings (sidecar/settings/table.py) and what is built from it: one name per
setting, each default written once, `Syncer`'s mobius3 signature, the command line and the
README's tables. Pure: no server, no start."""

from __future__ import annotations

import inspect
import logging
import os
import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from sidecar.engine.syncer import DEFAULT_STOP_TIMEOUT, DEFAULT_WORK_DIR, Syncer
from sidecar.service import cli, healthcheck
from sidecar.settings import table
from sidecar.settings.arguments import ARGUMENTS, as_arguments, from_arguments
from sidecar.settings.config import Variable, load_settings
from sidecar.settings.parsers import format_size, parse_size
from sidecar.settings.setting import NO_DEFAULT, Setting
from sidecar.settings.table import ROWS, Settings, readme_table

README = ROOT / "README.md"
ENDPOINT = "http://127.0.0.1:9/{}/"
ROW = dict(ROWS)
MOBIUS3_POSITIONAL = [
    "directory",
    "bucket",
    "endpoint",
    "region",
    "prefix",
    "concurrent_uploads",
    "concurrent_downloads",
    "download_interval",
    "exclude_remote",
    "exclude_local",
    "upload_on_create",
    "local_modification_persistance",
    "download_directory",
]
MOBIUS3_FLAGS = {
    "--prefix",
    "--exclude-remote",
    "--exclude-local",
    "--upload-on-create",
    "--log-level",
    "--disable-ssl-verification",
    "--credentials-source",
    "--force-ipv4",
    "--cloudwatch-monitoring-endpoint",
    "--cloudwatch-monitoring-region",
    "--cloudwatch-monitoring-namespace",
}


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
    assert table.SHUTDOWN_TIMEOUT.default == DEFAULT_STOP_TIMEOUT
    assert table.WORK_NAME.default == DEFAULT_WORK_DIR
    assert table.HTTP_PORT.default == healthcheck.DEFAULT_PORT  # which imports nothing of ours


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


def _signature_text() -> str:
    parameters = []
    for parameter in inspect.signature(Syncer).parameters.values():
        if parameter.kind is not parameter.POSITIONAL_OR_KEYWORD:
            break
        default = parameter.default
        if default is parameter.empty:
            parameters.append(parameter.name)
        else:
            shown = f"{default:g}" if isinstance(default, float) else repr(default)
            parameters.append(f"{parameter.name}={shown}")
    return f"Syncer({', '.join(parameters)})"


def test_the_readme_shows_syncer_s_signature_and_keywords() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert _signature_text() in text
    api = text[text.index("## Python API") :]
    keywords = [name for name in ARGUMENTS if name not in MOBIUS3_POSITIONAL]
    assert [name for name in keywords if f"`{name}`" not in api] == []


# -- Syncer: mobius3's signature, the table's defaults, one name per setting --------------------


def test_syncer_keeps_mobius3_s_signature_with_the_table_s_defaults() -> None:
    parameters = list(inspect.signature(Syncer).parameters.values())
    positional = [p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in positional] == MOBIUS3_POSITIONAL
    for parameter in positional[4:]:
        assert parameter.default == ROW[ARGUMENTS[parameter.name]].default, parameter.name
    keyword_only = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    assert keyword_only == ["credentials", "ssl_context", "metrics"]
    assert parameters[-1].kind is inspect.Parameter.VAR_KEYWORD


def test_every_setting_the_syncer_reads_is_an_argument_by_one_name() -> None:
    taken = {name: argument for argument, name in ARGUMENTS.items()}
    assert len(taken) == len(ARGUMENTS)
    for name, row in ROWS:
        if row.service:
            assert name not in taken
        else:
            assert taken[name] == (row.argument or name)


def test_syncer_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    syncer = Syncer(str(tmp_path), "b", ENDPOINT, "r")
    assert syncer.settings == Settings(
        directory=str(tmp_path), bucket="b", region="r", endpoint=ENDPOINT
    )


@pytest.mark.parametrize(
    "name", ["poll_interval", "upload_concurrency", "trust_after", "work_name"]
)
def test_a_renamed_setting_is_taken_by_mobius3_s_name_only(tmp_path: Path, name: str) -> None:
    with pytest.raises(TypeError, match=name):
        Syncer(str(tmp_path), "b", ENDPOINT, "r", **{name: ROW[name].default})


@pytest.mark.parametrize("name", ["http_port", "log_level", "shutdown_timeout", "tls_verify"])
def test_a_service_setting_is_not_a_syncer_argument(tmp_path: Path, name: str) -> None:
    with pytest.raises(TypeError, match=name):
        Syncer(str(tmp_path), "b", ENDPOINT, "r", **{name: ROW[name].default})


def test_mobius3_arguments_not_needed_are_ignored(tmp_path: Path, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING):
        syncer = Syncer(str(tmp_path), "b", ENDPOINT, "r", get_pool=None, flush_file_root="/x")
    assert "ignoring mobius3 argument flush_file_root" in caplog.text
    assert "ignoring mobius3 argument get_pool" in caplog.text
    assert syncer.settings == Syncer(str(tmp_path), "b", ENDPOINT, "r").settings


def test_syncer_tidies_python_values(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    syncer = Syncer(
        "relative",
        "b",
        ENDPOINT,
        "r",
        concurrent_uploads=0,
        concurrent_downloads=-3,
        download_interval=2,
        local_modification_persistance=1,
        max_delete_percent=100,
        open_file_timeout=5,
        stall_timeout=60,
        mode="upload-only",
        queue_url=" http://127.0.0.1:5000/123456789012/q ",
    )
    settings = syncer.settings
    assert settings.directory == os.path.join(str(tmp_path), "relative")
    assert (settings.upload_concurrency, settings.download_concurrency) == (1, 1)
    floats = (settings.poll_interval, settings.trust_after, settings.max_delete_percent)
    assert floats == (2.0, 1.0, 100.0) and all(type(value) is float for value in floats)
    assert (settings.open_file_timeout, settings.stall_timeout) == (5.0, 60.0)
    assert settings.mode == "upload-only"
    assert settings.queue_url == "http://127.0.0.1:5000/123456789012/q"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"exclude_local": "(["}, re.error),
        ({"exclude_remote": "*x"}, re.error),
        ({"upload_on_create": "(?P<x"}, re.error),
        ({"mode": "sideways"}, ValueError),
        ({"queue_url": "my-queue"}, ValueError),
        ({"endpoint": "https://s3.example.com/"}, ValueError),
    ],
)
def test_syncer_refuses_bad_values_at_once(
    tmp_path: Path, arguments: dict[str, Any], error: type[Exception]
) -> None:
    given: dict[str, Any] = {"endpoint": ENDPOINT} | arguments
    endpoint = given.pop("endpoint")
    with pytest.raises(error):
        Syncer(str(tmp_path), "b", endpoint, "r", **given)


def test_the_service_s_settings_reach_the_syncer_unchanged(env: dict[str, str]) -> None:
    env |= {
        "SYNC_PREFIX": "team/",
        "SYNC_POLL_INTERVAL": "3",
        "SYNC_EXCLUDE_LOCAL": r".*\.swp$",
        "SYNC_EXCLUDE_REMOTE": "^tmp/",
        "SYNC_UPLOAD_ON_CREATE": r".*\.lock$",
        "SYNC_UPLOAD_CONCURRENCY": "7",
        "SYNC_DOWNLOAD_CONCURRENCY": "5",
        "SYNC_MULTIPART_THRESHOLD": "64MiB",
        "SYNC_MULTIPART_CHUNKSIZE": "32MiB",
        "SYNC_MAX_DELETE_PERCENT": "100",
        "SYNC_STALL_TIMEOUT": "600",
        "SYNC_MODE": "download-only",
        "SYNC_QUEUE_URL": "https://sqs.eu-west-2.amazonaws.com/123456789012/q",
        "SYNC_OPEN_FILE_TIMEOUT": "300",
        "SYNC_HTTP_PORT": "1234",
    }
    settings = load_settings(env)
    syncer = Syncer(**as_arguments(settings))
    for name, row in ROWS:
        if not row.service:
            assert getattr(syncer.settings, name) == getattr(settings, name), name
    assert from_arguments(as_arguments(settings)) == syncer.settings


# -- the command line ---------------------------------------------------------------------------


def test_the_command_line_has_mobius3_s_flags() -> None:
    parser = cli._parser()
    flags = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help", "--version")
    }
    assert flags == MOBIUS3_FLAGS
    positional = [action.dest for action in parser._actions if not action.option_strings]
    assert positional == MOBIUS3_POSITIONAL[:4]


def test_the_command_line_maps_onto_the_settings(env: dict[str, str], tmp_path: Path) -> None:
    folder = str(tmp_path / "cli")
    argv = [folder, "cli-bucket", ENDPOINT, "us-east-1", "--exclude-local", r"x\.swp$"]
    argv += ["--exclude-remote", "^tmp/", "--upload-on-create", "^lock$", "--log-level", "debug"]
    argv += ["--disable-ssl-verification", "--credentials-source", "environment-variables"]
    settings = cli.settings_from([*argv, "--prefix", "team/"], env)
    assert (settings.directory, settings.bucket) == (folder, "cli-bucket")
    assert (settings.endpoint, settings.region) == (ENDPOINT, "us-east-1")
    assert (settings.prefix, settings.exclude_local) == ("team/", r"x\.swp$")
    assert (settings.exclude_remote, settings.upload_on_create) == ("^tmp/", "^lock$")
    assert (settings.log_level, settings.tls_verify) == ("DEBUG", False)
    assert settings.credentials_source == "environment"
    assert cli.settings_from([*argv, "--prefix"], env | {"SYNC_PREFIX": "env/"}).prefix == ""
    unset = cli.settings_from([], env | {"SYNC_PREFIX": "env/"})
    assert (unset.prefix, unset.tls_verify, unset.credentials_source) == ("env/", True, "auto")


def test_the_command_line_help_names_the_variables() -> None:
    text = cli._parser().format_help()
    for name, row in ROWS:
        if row.flag is not None or name in cli.POSITIONAL:
            assert f"({row.env})" in " ".join(text.split()), name
