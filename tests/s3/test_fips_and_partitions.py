"""FIPS and partitions: the default endpoint built from the region's partition and the SDKs'
FIPS and dual-stack variables (one row per case), and no MD5 used for security anywhere (a
FIPS-mode OpenSSL refuses `hashlib.md5()` unless it says `usedforsecurity=False`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support import ROOT
from support.environments import minimal_environment

from sidecar.partitions import partition_of, s3_endpoint, s3_host
from sidecar.settings.config import ConfigError, Problem, load_settings

HOSTS = [
    # region, fips, dualstack, host
    ("eu-west-2", False, False, "s3.eu-west-2.amazonaws.com"),
    ("us-east-1", True, False, "s3-fips.us-east-1.amazonaws.com"),
    ("us-east-1", False, True, "s3.dualstack.us-east-1.amazonaws.com"),
    ("us-east-1", True, True, "s3-fips.dualstack.us-east-1.amazonaws.com"),
    ("cn-north-1", False, False, "s3.cn-north-1.amazonaws.com.cn"),
    ("cn-northwest-1", False, True, "s3.dualstack.cn-northwest-1.amazonaws.com.cn"),
    ("us-gov-west-1", False, False, "s3.us-gov-west-1.amazonaws.com"),
    ("us-gov-west-1", True, False, "s3-fips.us-gov-west-1.amazonaws.com"),
    ("us-gov-east-1", True, True, "s3-fips.dualstack.us-gov-east-1.amazonaws.com"),
    ("ap-southeast-5", False, False, "s3.ap-southeast-5.amazonaws.com"),
]


@pytest.mark.parametrize(("region", "fips", "dualstack", "host"), HOSTS)
def test_s3_host(region: str, fips: bool, dualstack: bool, host: str) -> None:
    assert s3_host(region, fips=fips, dualstack=dualstack) == host
    assert s3_endpoint(region, fips=fips, dualstack=dualstack) == f"https://{{}}.{host}/"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-2", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-east-1", "aws"),
    ],
)
def test_partition_of(region: str, partition: str) -> None:
    assert partition_of(region).name == partition


def test_china_has_no_fips_endpoint() -> None:
    with pytest.raises(ValueError, match="aws-cn"):
        s3_host("cn-north-1", fips=True)


@pytest.mark.parametrize(
    ("extra", "endpoint"),
    [
        ({}, "https://{}.s3.eu-west-2.amazonaws.com/"),
        ({"SYNC_REGION": "cn-north-1"}, "https://{}.s3.cn-north-1.amazonaws.com.cn/"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://{}.s3-fips.eu-west-2.amazonaws.com/"),
        ({"AWS_USE_FIPS_ENDPOINT": "TRUE"}, "https://{}.s3-fips.eu-west-2.amazonaws.com/"),
        ({"AWS_USE_FIPS_ENDPOINT": "false"}, "https://{}.s3.eu-west-2.amazonaws.com/"),
        (
            {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://{}.s3.dualstack.eu-west-2.amazonaws.com/",
        ),
        (
            {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://{}.s3-fips.dualstack.eu-west-2.amazonaws.com/",
        ),
        (
            {"SYNC_REGION": "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT": "true"},
            "https://{}.s3-fips.us-gov-west-1.amazonaws.com/",
        ),
        # An explicit endpoint wins, as in the SDKs.
        (
            {"AWS_USE_FIPS_ENDPOINT": "true", "SYNC_ENDPOINT": "http://127.0.0.1:9000/{}/"},
            "http://127.0.0.1:9000/{}/",
        ),
    ],
)
def test_default_endpoint_from_the_environment(
    tmp_path: Path, extra: dict[str, str], endpoint: str
) -> None:
    env = minimal_environment(tmp_path) | extra
    assert load_settings(env).endpoint == endpoint


@pytest.mark.parametrize("name", ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"])
def test_a_malformed_endpoint_variable_is_a_problem(tmp_path: Path, name: str) -> None:
    env = minimal_environment(tmp_path) | {name: "yes please"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.problems == [Problem(name, "yes please", "true or false")]


def test_fips_in_china_is_a_problem_at_start(tmp_path: Path) -> None:
    env = minimal_environment(tmp_path) | {
        "SYNC_REGION": "cn-north-1",
        "AWS_USE_FIPS_ENDPOINT": "true",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    [problem] = caught.value.problems
    assert problem.name == "AWS_USE_FIPS_ENDPOINT"
    assert "aws-cn" in problem.expected and "SYNC_ENDPOINT" in problem.expected


def _md5_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("md5", "sha1")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hashlib"
    ]


def test_every_md5_says_it_is_not_for_security() -> None:
    """A FIPS-mode OpenSSL refuses MD5 for security: every use says it is not."""
    found = 0
    for path in sorted((ROOT / "sidecar").rglob("*.py")):
        for call in _md5_calls(ast.parse(path.read_text(), str(path))):
            found += 1
            flags = {k.arg: k.value for k in call.keywords}
            value = flags.get("usedforsecurity")
            assert isinstance(value, ast.Constant) and value.value is False, (
                f"{path.relative_to(ROOT)}:{call.lineno}: hashlib.{call.func.attr}() without "  # type: ignore[attr-defined]
                "usedforsecurity=False"
            )
    assert found >= 5  # the ETag checks and proofs: the scan sees them
