"""`load_settings`: documented defaults, every malformed variable reported at once, no secrets."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest
from support import ROOT
from support.environments import KEY_ID, SECRET

from sidecar.settings.config import (
    VARIABLES,
    ConfigError,
    Problem,
    Settings,
    Variable,
    default_endpoint,
    load_settings,
    parse_size,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
BY_NAME = {variable.name: variable for variable in VARIABLES}
README = ROOT / "README.md"


def problems_of(env: dict[str, str], overrides: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, overrides)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.problems)
    return caught.value.problems


# -- defaults --------------------------------------------------------------------------------


def test_minimal_env_gives_the_documented_defaults(env: dict[str, str], tmp_path: Path) -> None:
    expected = {
        "directory": str(tmp_path),
        "bucket": "my-bucket",
        "endpoint": "https://{}.s3.eu-west-2.amazonaws.com/",
        "region": "eu-west-2",
        "prefix": "",
        "poll_interval": 10.0,
        "trust_after": 0.0,
        "exclude_local": "^$",
        "exclude_remote": "^$",
        "upload_on_create": "^$",
        "upload_concurrency": 32,
        "download_concurrency": 16,
        "log_level": "INFO",
        "log_format": "text",
        "tls_verify": True,
        "ca_bundle": None,
        "multipart_threshold": 16 * MiB,
        "multipart_chunksize": 16 * MiB,
        "multipart_concurrency": 4,
        "max_delete_percent": 50.0,
        "shutdown_timeout": 25.0,
        "open_file_timeout": 60.0,
        "sqlite": "snapshot",
        "sqlite_files_alone": "^$",
        "sqlite_quiet": 1.0,
        "sqlite_interval": 10.0,
        "http_port": 9464,
        "http_host": "0.0.0.0",
        "http_max_connections": 64,
        "http_request_timeout": 5.0,
        "stall_timeout": 300.0,
        "credentials_source": "auto",
        "mode": "bidirectional",
        "queue_url": None,
        "role_arn": None,
        "role_external_id": None,
        "role_session_name": None,
        "work_name": ".s3sync-sidecar",
        "sse": None,
        "sse_kms_key_id": None,
        "sse_bucket_key": None,
        "storage_class": None,
        "acl": None,
        "request_payer": None,
    }
    settings = load_settings(env)
    assert {f.name: getattr(settings, f.name) for f in fields(Settings)} == expected
    assert settings.endpoint == default_endpoint("eu-west-2")


def test_default_endpoint() -> None:
    assert default_endpoint("us-east-1") == "https://{}.s3.us-east-1.amazonaws.com/"


def test_empty_values_count_as_unset(env: dict[str, str]) -> None:
    env |= {variable.name: "" for variable in VARIABLES if not variable.required}
    assert load_settings(env) == load_settings({k: v for k, v in env.items() if v})


def _documented(default: str) -> str:
    return default.split(" (", 1)[0]  # "^$ (nothing)" documents "^$"


@pytest.mark.parametrize(
    "variable",
    [v for v in VARIABLES if not v.default.startswith("(") and v.name != "SYNC_ENDPOINT"],
    ids=lambda v: v.name,
)
def test_documented_default_is_the_real_default(variable: Variable, env: dict[str, str]) -> None:
    defaults = {f.name: f.default for f in fields(Settings)}
    assert variable.parse(_documented(variable.default)) == defaults[variable.field]
    assert getattr(load_settings(env), variable.field) == defaults[variable.field]


def test_documented_endpoint_default(env: dict[str, str]) -> None:
    assert BY_NAME["SYNC_ENDPOINT"].default == default_endpoint("<region>")


def test_every_variable_maps_to_a_settings_field() -> None:
    names = {f.name for f in fields(Settings)}
    assert {v.field for v in VARIABLES} <= names
    assert len({v.name for v in VARIABLES}) == len(VARIABLES)
    assert all(v.name.startswith("SYNC_") for v in VARIABLES)


@pytest.mark.parametrize(
    "variable",
    [v for v in VARIABLES if v.name not in ("SYNC_DIR", "SYNC_CA_BUNDLE")],  # need real paths
    ids=lambda v: v.name,
)
def test_documented_example_is_valid(variable: Variable) -> None:
    variable.parse(variable.example)  # does not raise


# -- region -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "region"),
    [
        ({"AWS_REGION": "us-west-1"}, "us-west-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({"AWS_REGION": "us-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "us-west-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({"SYNC_REGION": "eu-north-1", "AWS_REGION": "us-west-1"}, "eu-north-1"),
        ({"SYNC_REGION": "", "AWS_REGION": "us-west-1"}, "us-west-1"),
    ],
)
def test_region_fallback(env: dict[str, str], extra: dict[str, str], region: str) -> None:
    del env["SYNC_REGION"]
    settings = load_settings(env | extra)
    assert settings.region == region
    assert settings.endpoint == default_endpoint(region)


def test_region_is_required(env: dict[str, str]) -> None:
    del env["SYNC_REGION"]
    [problem] = problems_of(env)
    assert problem.name == "SYNC_REGION"
    assert problem.value is None
    assert problem.expected == "required: set it to " + BY_NAME["SYNC_REGION"].expected
    assert str(problem) == f"SYNC_REGION: required: set it to {BY_NAME['SYNC_REGION'].expected}"


def test_all_required_variables_are_reported(env: dict[str, str]) -> None:
    for name in ("SYNC_DIR", "SYNC_BUCKET", "SYNC_REGION"):
        del env[name]
    problems = problems_of(env)
    assert [p.name for p in problems] == ["SYNC_DIR", "SYNC_BUCKET", "SYNC_REGION"]
    assert all(p.expected.startswith("required: set it to ") for p in problems)


def test_explicit_endpoint_is_kept(env: dict[str, str]) -> None:
    env["SYNC_ENDPOINT"] = "http://127.0.0.1:9000/{}/"
    assert load_settings(env).endpoint == "http://127.0.0.1:9000/{}/"


# -- malformed values ------------------------------------------------------------------------

BAD: list[tuple[str, str]] = [
    ("SYNC_DIR", "   "),
    ("SYNC_BUCKET", "a"),
    ("SYNC_BUCKET", "my bucket"),
    ("SYNC_BUCKET", "-bucket"),
    ("SYNC_BUCKET", "REPLACE_WITH_BUCKET_NAME"),
    ("SYNC_BUCKET", "under_score"),
    ("SYNC_BUCKET", "ab"),
    ("SYNC_BUCKET", "a..b"),
    ("SYNC_BUCKET", "192.168.0.1"),
    ("SYNC_BUCKET", "b" * 300),
    ("SYNC_REGION", "   "),
    ("SYNC_PREFIX", "/team/"),
    ("SYNC_PREFIX", "team//a/"),
    ("SYNC_PREFIX", "team-a"),
    ("SYNC_POLL_INTERVAL", "abc"),
    ("SYNC_POLL_INTERVAL", "0"),
    ("SYNC_POLL_INTERVAL", "0.05"),
    ("SYNC_POLL_INTERVAL", "86401"),
    ("SYNC_POLL_INTERVAL", "-1"),
    ("SYNC_POLL_INTERVAL", "nan"),
    ("SYNC_POLL_INTERVAL", "inf"),
    ("SYNC_POLL_INTERVAL", "10s"),
    ("SYNC_EXCLUDE_LOCAL", "(["),
    ("SYNC_EXCLUDE_REMOTE", "*.tmp"),
    ("SYNC_UPLOAD_ON_CREATE", "(?P<x"),
    ("SYNC_UPLOAD_CONCURRENCY", "0"),
    ("SYNC_UPLOAD_CONCURRENCY", "513"),
    ("SYNC_UPLOAD_CONCURRENCY", "1.5"),
    ("SYNC_UPLOAD_CONCURRENCY", "ten"),
    ("SYNC_DOWNLOAD_CONCURRENCY", "-1"),
    ("SYNC_DOWNLOAD_CONCURRENCY", "1e3"),
    ("SYNC_LOG_LEVEL", "verbose"),
    ("SYNC_LOG_LEVEL", "TRACE"),
    ("SYNC_LOG_FORMAT", "xml"),
    ("SYNC_TLS_VERIFY", "maybe"),
    ("SYNC_TLS_VERIFY", "2"),
    ("SYNC_CA_BUNDLE", "/nonexistent/ca.pem"),
    ("SYNC_MULTIPART_THRESHOLD", "4MiB"),
    ("SYNC_MULTIPART_THRESHOLD", "1TB"),
    ("SYNC_MULTIPART_THRESHOLD", "6GiB"),
    ("SYNC_MULTIPART_THRESHOLD", "16 MiBs"),
    ("SYNC_MULTIPART_THRESHOLD", "-16MiB"),
    ("SYNC_MULTIPART_THRESHOLD", "16.5MiB"),
    ("SYNC_MULTIPART_THRESHOLD", "big"),
    ("SYNC_MULTIPART_CHUNKSIZE", "4MiB"),
    ("SYNC_MULTIPART_CHUNKSIZE", "1TB"),
    ("SYNC_MAX_DELETE_PERCENT", "101"),
    ("SYNC_MAX_DELETE_PERCENT", "-1"),
    ("SYNC_MAX_DELETE_PERCENT", "half"),
    ("SYNC_SHUTDOWN_TIMEOUT", "3601"),
    ("SYNC_SHUTDOWN_TIMEOUT", "-0.5"),
    ("SYNC_HTTP_PORT", "0"),
    ("SYNC_HTTP_PORT", "65536"),
    ("SYNC_HTTP_PORT", "http"),
    ("SYNC_HTTP_HOST", "not a host"),
    ("SYNC_HTTP_HOST", "http://127.0.0.1"),
    ("SYNC_HTTP_HOST", "127.0.0.1:9464"),
    ("SYNC_HTTP_HOST", "[::1]"),
    ("SYNC_HTTP_HOST", "300.1.2.3"),
    ("SYNC_HTTP_HOST", "-sidecar.internal"),
    ("SYNC_HTTP_HOST", "a..b"),
    ("SYNC_HTTP_HOST", "x" * 64),
    ("SYNC_HTTP_MAX_CONNECTIONS", "7"),
    ("SYNC_HTTP_MAX_CONNECTIONS", "65537"),
    ("SYNC_HTTP_MAX_CONNECTIONS", "64.5"),
    ("SYNC_HTTP_REQUEST_TIMEOUT", "0.9"),
    ("SYNC_HTTP_REQUEST_TIMEOUT", "61"),
    ("SYNC_HTTP_REQUEST_TIMEOUT", "nan"),
    ("SYNC_STALL_TIMEOUT", "9.9"),
    ("SYNC_STALL_TIMEOUT", "86401"),
    ("SYNC_OPEN_FILE_TIMEOUT", "0.5"),
    ("SYNC_OPEN_FILE_TIMEOUT", "86401"),
    ("SYNC_SQLITE", "on"),
    ("SYNC_SQLITE", "snapshots"),
    ("SYNC_SQLITE_FILES_ALONE", "(unclosed"),
    ("SYNC_SQLITE_QUIET", "0.05"),
    ("SYNC_SQLITE_QUIET", "3601"),
    ("SYNC_SQLITE_INTERVAL", "0.5"),
    ("SYNC_SQLITE_INTERVAL", "86401"),
    ("SYNC_MODE", "upload_only"),
    ("SYNC_MODE", "both"),
    ("SYNC_QUEUE_URL", "my-queue"),
    ("SYNC_QUEUE_URL", "arn:aws:sqs:eu-west-2:123456789012:q"),
    ("SYNC_QUEUE_URL", "https://sqs.eu-west-2.amazonaws.com/q"),
    ("SYNC_QUEUE_URL", "ftp://sqs.eu-west-2.amazonaws.com/123456789012/q"),
    ("SYNC_QUEUE_URL", "https://sqs.eu-west-2.amazonaws.com/123456789012/q?x=1"),
    ("SYNC_ROLE_ARN", "my-role"),
    ("SYNC_ROLE_ARN", "arn:aws:iam::123:role/short-account"),
    ("SYNC_ROLE_ARN", "arn:aws:iam::123456789012:user/not-a-role"),
    ("SYNC_ROLE_EXTERNAL_ID", "x"),
    ("SYNC_ROLE_EXTERNAL_ID", "has space"),
    ("SYNC_ROLE_SESSION_NAME", "has space"),
    ("SYNC_ROLE_SESSION_NAME", "s" * 65),
    ("SYNC_SSE", "kms"),
    ("SYNC_SSE", "SSE-KMS"),
    ("SYNC_SSE", "aws:kms:dsse:x"),
    ("SYNC_SSE_KMS_KEY_ID", "my key"),
    ("SYNC_SSE_KMS_KEY_ID", "arn:aws:kms:eu-west-2:123:key/x"),
    ("SYNC_SSE_KMS_KEY_ID", "arn:aws:s3:::bucket"),
    ("SYNC_SSE_KMS_KEY_ID", "alias/"),
    ("SYNC_SSE_KMS_KEY_ID", "alias/with space"),
    ("SYNC_SSE_BUCKET_KEY", "enabled"),
    ("SYNC_STORAGE_CLASS", "GLACIER"),
    ("SYNC_STORAGE_CLASS", "DEEP_ARCHIVE"),
    ("SYNC_STORAGE_CLASS", "infrequent"),
    ("SYNC_ACL", "bucket-owner"),
    ("SYNC_ACL", "full-control"),
    ("SYNC_REQUEST_PAYER", "owner"),
    ("SYNC_REQUEST_PAYER", "true"),
]


def test_bad_table_covers_every_variable() -> None:
    covered = {name for name, _ in BAD} | {"SYNC_ENDPOINT"}  # the endpoint has its own test
    assert covered == set(BY_NAME)


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v[:20]}" for n, v in BAD])
def test_malformed_variable(env: dict[str, str], name: str, value: str) -> None:
    env[name] = value
    [problem] = problems_of(env)
    assert problem == Problem(name, value, BY_NAME[name].expected)
    assert str(problem) == f"{name}={value!r}: expected {BY_NAME[name].expected}"


def test_ca_bundle_must_be_a_readable_file(env: dict[str, str], tmp_path: Path) -> None:
    env["SYNC_CA_BUNDLE"] = str(tmp_path)  # a directory
    [problem] = problems_of(env)
    assert problem == Problem("SYNC_CA_BUNDLE", str(tmp_path), BY_NAME["SYNC_CA_BUNDLE"].expected)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file")
def test_ca_bundle_unreadable(env: dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ca.chmod(0)
    env["SYNC_CA_BUNDLE"] = str(ca)
    [problem] = problems_of(env)
    assert problem.name == "SYNC_CA_BUNDLE"


def test_ca_bundle_accepted(env: dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env["SYNC_CA_BUNDLE"] = str(ca)
    assert load_settings(env).ca_bundle == str(ca)


def test_ca_bundle_with_tls_verify_off(env: dict[str, str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env |= {"SYNC_CA_BUNDLE": str(ca), "SYNC_TLS_VERIFY": "false"}
    assert problems_of(env) == [
        Problem("SYNC_CA_BUNDLE", str(ca), "to be unset when SYNC_TLS_VERIFY=false")
    ]


def test_sync_dir_that_is_a_file(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    env["SYNC_DIR"] = str(path)
    assert problems_of(env) == [Problem("SYNC_DIR", str(path), BY_NAME["SYNC_DIR"].expected)]


def test_sync_dir_is_created_later_if_missing(env: dict[str, str], tmp_path: Path) -> None:
    env["SYNC_DIR"] = str(tmp_path / "not" / "yet")
    assert load_settings(env).directory == str(tmp_path / "not" / "yet")


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("https://s3.eu-west-2.amazonaws.com/", "must contain `{}` exactly once"),
        ("https://{}.s3.amazonaws.com/{}/", "must contain `{}` exactly once"),
        ("ftp://{}.example.com/", "must be an http:// or https:// URL"),
        ("{}.s3.amazonaws.com", "must be an http:// or https:// URL"),
        ("https:///{}/", "must be an http:// or https:// URL"),
        ("https://{}.example.com/?x=1", "must not have a query string or fragment"),
        ("https://{}.example.com/#top", "must not have a query string or fragment"),
        ("http://{}.example.com:99999/", "has an invalid port"),
    ],
)
def test_malformed_endpoint(env: dict[str, str], endpoint: str, why: str) -> None:
    env["SYNC_ENDPOINT"] = endpoint
    [problem] = problems_of(env)
    assert problem.name == "SYNC_ENDPOINT"
    assert problem.value == endpoint
    assert problem.expected.startswith("an endpoint that " + why)
    assert problem.expected.endswith(": " + BY_NAME["SYNC_ENDPOINT"].expected)
    assert "{}" in str(problem) and "http" in str(problem)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("5MiB", 5 * MiB),
        ("5M", 5 * MiB),
        ("5m", 5 * MiB),
        ("16 MiB", 16 * MiB),
        ("16mib", 16 * MiB),
        ("20MB", 20_000_000),
        ("6000kb", 6_000_000),
        ("8192KiB", 8 * MiB),
        ("8192k", 8 * MiB),
        ("16777216", 16 * MiB),
        ("16777216b", 16 * MiB),
        ("5GiB", 5 * GiB),
        ("5gb", 5_000_000_000),
        ("1G", GiB),
        (" 32MiB ", 32 * MiB),
    ],
)
def test_parse_size(value: str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value", ["4MiB", "5242879", "1TB", "1TiB", "6GiB", "5.5GiB", "MiB", "", "16 MiBs", "0x10MiB"]
)
def test_parse_size_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("name", "value", "field", "parsed"),
    [
        ("SYNC_TLS_VERIFY", "FALSE", "tls_verify", False),
        ("SYNC_TLS_VERIFY", "no", "tls_verify", False),
        ("SYNC_TLS_VERIFY", "off", "tls_verify", False),
        ("SYNC_TLS_VERIFY", "0", "tls_verify", False),
        ("SYNC_TLS_VERIFY", " Yes ", "tls_verify", True),
        ("SYNC_TLS_VERIFY", "on", "tls_verify", True),
        ("SYNC_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("SYNC_LOG_LEVEL", " Warning ", "log_level", "WARNING"),
        ("SYNC_LOG_FORMAT", "JSON", "log_format", "json"),
        ("SYNC_POLL_INTERVAL", "0.1", "poll_interval", 0.1),
        ("SYNC_POLL_INTERVAL", "86400", "poll_interval", 86400.0),
        ("SYNC_UPLOAD_CONCURRENCY", "512", "upload_concurrency", 512),
        ("SYNC_DOWNLOAD_CONCURRENCY", "1", "download_concurrency", 1),
        ("SYNC_MAX_DELETE_PERCENT", "0", "max_delete_percent", 0.0),
        ("SYNC_MAX_DELETE_PERCENT", "100", "max_delete_percent", 100.0),
        ("SYNC_SHUTDOWN_TIMEOUT", "0", "shutdown_timeout", 0.0),
        ("SYNC_OPEN_FILE_TIMEOUT", "1", "open_file_timeout", 1.0),
        ("SYNC_SQLITE", " OFF ", "sqlite", "off"),
        ("SYNC_SQLITE", "snapshot", "sqlite", "snapshot"),
        ("SYNC_SQLITE_FILES_ALONE", ".*/cache/.*", "sqlite_files_alone", ".*/cache/.*"),
        ("SYNC_SQLITE_QUIET", "0.1", "sqlite_quiet", 0.1),
        ("SYNC_SQLITE_INTERVAL", "60", "sqlite_interval", 60.0),
        ("SYNC_MODE", "Upload-Only", "mode", "upload-only"),
        ("SYNC_MODE", "download-only", "mode", "download-only"),
        ("SYNC_PREFIX", "team-a/", "prefix", "team-a/"),
        ("SYNC_EXCLUDE_LOCAL", r".*\.swp$", "exclude_local", r".*\.swp$"),
        ("SYNC_MULTIPART_THRESHOLD", "64MiB", "multipart_threshold", 64 * MiB),
        ("SYNC_HTTP_HOST", "127.0.0.1", "http_host", "127.0.0.1"),
        ("SYNC_HTTP_HOST", "::1", "http_host", "::1"),
        ("SYNC_HTTP_HOST", "0:0:0:0:0:0:0:1", "http_host", "::1"),
        ("SYNC_HTTP_HOST", "::", "http_host", "::"),
        ("SYNC_HTTP_HOST", "localhost", "http_host", "localhost"),
        ("SYNC_HTTP_HOST", "sidecar.internal", "http_host", "sidecar.internal"),
        ("SYNC_HTTP_MAX_CONNECTIONS", "8", "http_max_connections", 8),
        ("SYNC_HTTP_MAX_CONNECTIONS", "65536", "http_max_connections", 65536),
        ("SYNC_HTTP_REQUEST_TIMEOUT", "1", "http_request_timeout", 1.0),
        ("SYNC_HTTP_REQUEST_TIMEOUT", "60", "http_request_timeout", 60.0),
    ],
)
def test_valid_values(
    env: dict[str, str], name: str, value: str, field: str, parsed: object
) -> None:
    env[name] = value
    assert getattr(load_settings(env), field) == parsed


KEY_ARN = "arn:aws:kms:eu-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"SYNC_SSE": "AES256"}, {"sse": "AES256"}),
        ({"SYNC_SSE": "aes256"}, {"sse": "AES256"}),
        ({"SYNC_SSE": "aws:kms"}, {"sse": "aws:kms", "sse_kms_key_id": None}),
        ({"SYNC_SSE": "aws:kms:dsse"}, {"sse": "aws:kms:dsse"}),
        (
            {"SYNC_SSE": "aws:kms", "SYNC_SSE_KMS_KEY_ID": KEY_ARN, "SYNC_SSE_BUCKET_KEY": "true"},
            {"sse": "aws:kms", "sse_kms_key_id": KEY_ARN, "sse_bucket_key": True},
        ),
        (
            {"SYNC_SSE": "aws:kms", "SYNC_SSE_BUCKET_KEY": "false"},
            {"sse_bucket_key": False},
        ),
        (
            {"SYNC_SSE": "aws:kms:dsse", "SYNC_SSE_KMS_KEY_ID": "alias/team-a"},
            {"sse_kms_key_id": "alias/team-a"},
        ),
        (
            {"SYNC_SSE": "aws:kms", "SYNC_SSE_KMS_KEY_ID": "1234abcd-12ab-34cd-56ef-1234567890ab"},
            {"sse_kms_key_id": "1234abcd-12ab-34cd-56ef-1234567890ab"},
        ),
        (
            {
                "SYNC_SSE": "aws:kms",
                "SYNC_SSE_KMS_KEY_ID": "arn:aws-cn:kms:cn-north-1:123456789012:alias/a",
            },
            {"sse_kms_key_id": "arn:aws-cn:kms:cn-north-1:123456789012:alias/a"},
        ),
        (
            {"SYNC_SSE": "aws:kms", "SYNC_SSE_KMS_KEY_ID": "minio-kes-key"},
            {"sse_kms_key_id": "minio-kes-key"},
        ),
        ({"SYNC_STORAGE_CLASS": "intelligent_tiering"}, {"storage_class": "INTELLIGENT_TIERING"}),
        ({"SYNC_STORAGE_CLASS": "STANDARD_IA"}, {"storage_class": "STANDARD_IA"}),
        ({"SYNC_STORAGE_CLASS": "GLACIER_IR"}, {"storage_class": "GLACIER_IR"}),
        ({"SYNC_ACL": "bucket-owner-full-control"}, {"acl": "bucket-owner-full-control"}),
        ({"SYNC_REQUEST_PAYER": "requester"}, {"request_payer": "requester"}),
        ({}, {"sse": None, "storage_class": None, "acl": None, "request_payer": None}),
    ],
)
def test_write_settings(env: dict[str, str], extra: dict[str, str], expected: dict[str, object]):
    settings = load_settings(env | extra)
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"SYNC_SSE_KMS_KEY_ID": KEY_ARN}, "SYNC_SSE_KMS_KEY_ID"),
        ({"SYNC_SSE": "AES256", "SYNC_SSE_KMS_KEY_ID": KEY_ARN}, "SYNC_SSE_KMS_KEY_ID"),
        ({"SYNC_SSE_BUCKET_KEY": "true"}, "SYNC_SSE_BUCKET_KEY"),
        ({"SYNC_SSE": "aws:kms:dsse", "SYNC_SSE_BUCKET_KEY": "true"}, "SYNC_SSE_BUCKET_KEY"),
    ],
)
def test_kms_settings_need_kms(env: dict[str, str], extra: dict[str, str], name: str) -> None:
    [problem] = problems_of(env | extra)
    assert problem.name == name
    assert problem.value == extra[name]
    assert "SYNC_SSE" in problem.expected


def test_the_syncer_checks_write_settings_too() -> None:
    """`Syncer(sse=..., storage_class=...)` tidies them as the variables are read."""
    from sidecar.settings import writes

    assert writes.STORAGE_CLASS.tidy is not None and writes.SSE.tidy is not None
    assert writes.STORAGE_CLASS.tidy("standard_ia") == "STANDARD_IA"
    assert writes.SSE.tidy(None) is None
    with pytest.raises(ValueError):
        writes.SSE.tidy("kms")
    assert writes.ACL.tidy is not None
    with pytest.raises(ValueError):
        writes.ACL.tidy("everyone")


def test_chunk_size_larger_than_threshold_is_allowed(env: dict[str, str]) -> None:
    # Files between the two are simply uploaded as a single part: nothing to refuse.
    env |= {"SYNC_MULTIPART_THRESHOLD": "16MiB", "SYNC_MULTIPART_CHUNKSIZE": "32MiB"}
    settings = load_settings(env)
    assert settings.multipart_threshold == 16 * 1024**2
    assert settings.multipart_chunksize == 32 * 1024**2


def _outcome(env: dict[str, str]) -> Settings | list[str]:
    try:
        return load_settings(env)
    except ConfigError as error:
        return [p.name for p in error.problems]


@pytest.mark.parametrize(
    ("implicit", "explicit"),
    [
        ({"SYNC_MULTIPART_CHUNKSIZE": "32MiB"}, {"SYNC_MULTIPART_THRESHOLD": "16MiB"}),
        ({"SYNC_MULTIPART_THRESHOLD": "8MiB"}, {"SYNC_MULTIPART_CHUNKSIZE": "16MiB"}),
    ],
)
def test_spelling_out_a_default_does_not_change_validity(
    env: dict[str, str], implicit: dict[str, str], explicit: dict[str, str]
) -> None:
    assert _outcome(env | implicit) == _outcome(env | implicit | explicit)


# -- several problems at once ----------------------------------------------------------------


def test_every_problem_is_reported_at_once(env: dict[str, str]) -> None:
    del env["SYNC_BUCKET"]
    env |= {
        "SYNC_POLL_INTERVAL": "often",
        "SYNC_LOG_LEVEL": "loud",
        "SYNC_TLS_VERIFY": "perhaps",
        "SYNC_MULTIPART_THRESHOLD": "1TB",
        "SYNC_UPLOAD_CONCURRENCY": "0",
        "SYNC_EXCLUDE_REMOTE": "[",
    }
    del env["AWS_ACCESS_KEY_ID"]
    problems = problems_of(env)
    assert [p.name for p in problems] == [
        "SYNC_BUCKET",
        "SYNC_POLL_INTERVAL",
        "SYNC_EXCLUDE_REMOTE",
        "SYNC_UPLOAD_CONCURRENCY",
        "SYNC_LOG_LEVEL",
        "SYNC_TLS_VERIFY",
        "SYNC_MULTIPART_THRESHOLD",
        "AWS_ACCESS_KEY_ID",
    ]
    for problem in problems[1:-1]:
        assert problem.expected == BY_NAME[problem.name].expected
    assert all(str(p).startswith(p.name) for p in problems)


def test_every_variable_bad_at_once(env: dict[str, str], tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    first_bad: dict[str, str] = {}
    for name, value in BAD:
        first_bad.setdefault(name, value)
    first_bad["SYNC_DIR"] = str(file)
    first_bad["SYNC_ENDPOINT"] = "ftp://{}/"
    problems = problems_of(env | first_bad)
    # every variable once, in table order; the endpoint's form is checked after the table
    names = [v.name for v in VARIABLES if v.name != "SYNC_ENDPOINT"]
    assert [p.name for p in problems] == [*names, "SYNC_ENDPOINT"]


@pytest.mark.parametrize("bucket", [None, "x"])
def test_bad_endpoint_is_reported_with_a_bad_bucket(
    env: dict[str, str], bucket: str | None
) -> None:
    if bucket is None:
        del env["SYNC_BUCKET"]
    else:
        env["SYNC_BUCKET"] = bucket
    env["SYNC_ENDPOINT"] = "ftp://{}.example.com/"
    assert [p.name for p in problems_of(env)] == ["SYNC_BUCKET", "SYNC_ENDPOINT"]


# -- credentials ---------------------------------------------------------------------------


def test_secret_without_key_id(env: dict[str, str]) -> None:
    del env["AWS_ACCESS_KEY_ID"]
    problems = problems_of(env)
    assert problems == [
        Problem("AWS_ACCESS_KEY_ID", None, "required when AWS_SECRET_ACCESS_KEY is set")
    ]


def test_key_id_without_secret(env: dict[str, str]) -> None:
    del env["AWS_SECRET_ACCESS_KEY"]
    [problem] = problems_of(env)
    assert problem.name == "AWS_SECRET_ACCESS_KEY"
    assert problem.value is None
    assert "never shown" in problem.expected


def test_no_credentials(env: dict[str, str]) -> None:
    """Nothing named and instance metadata turned off: nothing can be had. (With metadata on,
    only asking it at start can tell: tests/s3/test_credential_chain.py.)"""
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    [problem] = problems_of(env)
    assert problem.name == "AWS_ACCESS_KEY_ID"
    assert problem.value is None
    assert "AWS_SECRET_ACCESS_KEY" in problem.expected


def test_no_credentials_with_the_environment_source(env: dict[str, str]) -> None:
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    with pytest.raises(ConfigError) as caught:
        load_settings(env, credentials_source="environment")
    [problem] = caught.value.problems
    assert problem.name == "AWS_ACCESS_KEY_ID"
    assert "AWS_SECRET_ACCESS_KEY" in problem.expected


def test_credentials_source_is_kept(env: dict[str, str]) -> None:
    assert load_settings(env, credentials_source="environment").credentials_source == (
        "environment"
    )


def test_secret_never_shown_among_other_problems(env: dict[str, str]) -> None:
    del env["AWS_ACCESS_KEY_ID"]
    env |= {"SYNC_POLL_INTERVAL": "x", "AWS_SESSION_TOKEN": SECRET + "TOKEN"}
    problems = problems_of(env)
    assert [p.name for p in problems] == ["SYNC_POLL_INTERVAL", "AWS_ACCESS_KEY_ID"]
    assert all(SECRET not in str(p) for p in problems)


# -- command-line overrides ------------------------------------------------------------------


def test_overrides_win_over_env(env: dict[str, str]) -> None:
    env |= {"SYNC_POLL_INTERVAL": "10", "SYNC_PREFIX": "env/", "SYNC_LOG_LEVEL": "INFO"}
    settings = load_settings(
        env, {"SYNC_POLL_INTERVAL": "30", "SYNC_PREFIX": "cli/", "SYNC_BUCKET": "cli-bucket"}
    )
    assert settings.poll_interval == 30.0
    assert settings.prefix == "cli/"
    assert settings.bucket == "cli-bucket"
    assert settings.log_level == "INFO"


def test_override_fixes_a_bad_env_value(env: dict[str, str]) -> None:
    env["SYNC_POLL_INTERVAL"] = "garbage"
    assert load_settings(env, {"SYNC_POLL_INTERVAL": "5"}).poll_interval == 5.0


def test_bad_override_is_reported_with_its_value(env: dict[str, str]) -> None:
    problems = problems_of(env, {"SYNC_UPLOAD_CONCURRENCY": "lots"})
    assert problems == [
        Problem("SYNC_UPLOAD_CONCURRENCY", "lots", BY_NAME["SYNC_UPLOAD_CONCURRENCY"].expected)
    ]


def test_override_region_and_required_values(tmp_path: Path) -> None:
    settings = load_settings(
        {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"},
        {"SYNC_DIR": str(tmp_path), "SYNC_BUCKET": "b-cli", "SYNC_REGION": "eu-central-1"},
    )
    assert (settings.directory, settings.bucket, settings.region) == (
        str(tmp_path),
        "b-cli",
        "eu-central-1",
    )
    assert settings.endpoint == default_endpoint("eu-central-1")


# -- documentation ---------------------------------------------------------------------------


def test_every_variable_is_documented_in_the_readme() -> None:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    text = README.read_text(encoding="utf-8")
    missing = [variable.name for variable in VARIABLES if variable.name not in text]
    assert missing == []


def _readme_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `SYNC_") and len(cells) == 4:
            rows[cells[0].strip("`")] = [cell.replace("`", "") for cell in cells]
    return rows


def test_readme_table_defaults_and_examples_match() -> None:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    rows = _readme_rows()
    assert {"SYNC_DIR", "SYNC_BUCKET", "SYNC_REGION"} <= set(rows)  # the table was found
    mismatched = {
        name: (row[2], row[3])
        for name, row in rows.items()
        if name in BY_NAME and (row[2], row[3]) != (BY_NAME[name].default, BY_NAME[name].example)
    }
    assert mismatched == {}
    assert set(rows) <= set(BY_NAME)  # no documented variable that does not exist


QUEUE = "https://sqs.eu-west-2.amazonaws.com/123456789012/s3sync-app"


def test_a_queue_makes_listings_a_backstop(env: dict[str, str]) -> None:
    env["SYNC_QUEUE_URL"] = QUEUE
    settings = load_settings(env)
    assert (settings.queue_url, settings.poll_interval) == (QUEUE, 300.0)
    env["SYNC_POLL_INTERVAL"] = "60"
    assert load_settings(env).poll_interval == 60.0  # said explicitly: kept


def test_the_queue_region_comes_from_its_host() -> None:
    from sidecar.aws.sqs import QueueUrl

    assert QueueUrl.parse(QUEUE).region == "eu-west-2"
    assert QueueUrl.parse("https://eu-west-1.queue.amazonaws.com/1/q").region == "eu-west-1"
    assert QueueUrl.parse("http://127.0.0.1:5000/123456789012/q").region is None  # SYNC_REGION
