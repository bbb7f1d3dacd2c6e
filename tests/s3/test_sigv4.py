"""sigv4 must equal botocore's S3SigV4Auth exactly, or S3 rejects the request (403)."""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.aws.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    canonical_query_string,
    quote_path,
    sign_request,
)

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TIMES = [
    datetime(2013, 5, 24, 0, 0, 0),
    datetime(2024, 2, 29, 23, 59, 59),
    datetime(2031, 12, 31, 9, 5, 7),
]
REGIONS = ["us-east-1", "eu-west-2", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
HEADER_NAMES = [
    "Content-Type",
    "content-type",
    "Content-Length",
    "content-md5",
    "Content-MD5",
    "If-Match",
    "if-none-match",
    "Range",
    "x-amz-meta-mtime",
    "X-Amz-Meta-Mode",
    "x-amz-meta-Mode",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "Cache-Control",
    "User-Agent",
    "Expect",
    "Connection",
    "Transfer-Encoding",
    "X-Amzn-Trace-Id",
]

# Object keys are built from chunks so that reserved URL characters, ASCII, unicode letters
# and digits, and emoji are all mixed in most examples (1..200 characters).
keys = st.lists(
    st.one_of(
        st.text(" +%~/=&?#;:@!$'()*,[]\\^`{}|\"<>-_.", min_size=1, max_size=3),
        # Control characters (a line break, a tab): S3 keys may hold any UTF-8 (moto's server
        # cannot route or verify a key with a line break, botocore's requests included).
        st.text(st.characters(min_codepoint=0x01, max_codepoint=0x1F), min_size=1, max_size=3),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40),
        st.text(st.characters(categories=("L", "N")), min_size=1, max_size=10),
        st.text(
            st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), min_size=1, max_size=3
        ),
    ),
    min_size=1,
    max_size=16,
).map(lambda chunks: "".join(chunks)[:200])
param_text = st.lists(
    st.one_of(
        st.text("=&+ %/?#~", min_size=1, max_size=2),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=6),
        st.text(st.characters(categories=("L",)), min_size=1, max_size=3),
        st.text(st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F), max_size=2),
    ),
    max_size=4,
).map("".join)
param_keys = st.one_of(st.sampled_from(["prefix", "list-type", "uploads", "a", "A"]), param_text)
params = st.lists(st.tuples(param_keys, param_text), max_size=5)
# Words of printable ASCII separated, preceded and followed by runs of whitespace, so the
# trim-and-collapse canonicalisation is exercised on most examples.
header_values = st.lists(
    st.one_of(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
        st.text(" \t", min_size=1, max_size=4),
    ),
    max_size=6,
).map("".join)
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6)
tokens = st.one_of(
    st.none(),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=", min_size=1
    ),
)
secrets_ = st.sampled_from([SECRET, "abc+/def==", "s3cr3t" * 7])


@dataclass
class _S3Config:
    s3: dict[str, bool] = field(default_factory=dict)


def botocore_sign(
    *,
    method: str,
    host: str,
    path: str,
    query: str,
    raw_params: list[tuple[str, str]] | None,
    headers: dict[str, str],
    body: bytes | None,
    secret: str,
    token: str | None,
    region: str,
    now: datetime,
) -> dict[str, str]:
    """Reference signature. raw_params=None signs the query taken from the URL; otherwise
    botocore's params code path canonicalises the raw pairs itself."""
    url = f"http://{host}{path}"
    if raw_params is None and query:
        url += "?" + query
    request = botocore.awsrequest.AWSRequest(
        method=method,
        url=url,
        headers=headers,
        data=body or b"",
        params=raw_params,
    )
    request.context["client_config"] = _S3Config({"payload_signing_enabled": body is not None})
    creds = botocore.credentials.Credentials(AKID, secret, token)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
        botocore.auth.S3SigV4Auth(creds, "s3", region).add_auth(request)
    out = {k.lower(): v for k, v in request.headers.items()}
    return out


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]),
    key=keys,
    path_style=st.booleans(),
    port=st.sampled_from([None, 9000, 4566, 8443]),
    raw_params=params,
    hdrs=headers,
    body=st.one_of(st.none(), st.binary(max_size=64)),
    secret=secrets_,
    token=tokens,
    region=st.sampled_from(REGIONS),
    now=st.sampled_from(TIMES),
)
def test_matches_botocore(
    method: str,
    key: str,
    path_style: bool,
    port: int | None,
    raw_params: list[tuple[str, str]],
    hdrs: dict[str, str],
    body: bytes | None,
    secret: str,
    token: str | None,
    region: str,
    now: datetime,
) -> None:
    bucket = "my-bucket.v2"
    if path_style:
        host = "127.0.0.1" if port else f"s3.{region}.amazonaws.com"
        raw_path = f"/{bucket}/{key}"
    else:
        host = f"{bucket}.s3.{region}.amazonaws.com"
        raw_path = f"/{key}"
    if port:
        host = f"{host}:{port}"
    path = quote_path(raw_path)
    query = canonical_query_string(raw_params)
    payload_hash = UNSIGNED_PAYLOAD if body is None else hashlib.sha256(body).hexdigest()

    ours = sign_request(
        method=method,
        host=host,
        path=path,
        query=query,
        headers=hdrs,
        payload_hash=payload_hash,
        access_key_id=AKID,
        secret_access_key=secret,
        session_token=token,
        region=region,
        now=now.replace(tzinfo=UTC),
    )
    common: dict[str, Any] = dict(
        method=method,
        host=host,
        path=path,
        query=query,
        headers=hdrs,
        body=body,
        secret=secret,
        token=token,
        region=region,
        now=now,
    )
    ref_url = botocore_sign(raw_params=None, **common)
    expected_keys = {"x-amz-date", "x-amz-content-sha256", "authorization"}
    if token:
        expected_keys.add("x-amz-security-token")
    assert set(ours) == expected_keys
    for k in expected_keys:
        assert ours[k] == ref_url[k], k
    assert ours["x-amz-content-sha256"] == payload_hash
    assert ours["x-amz-date"] == now.strftime("%Y%m%dT%H%M%SZ")

    # botocore's other query code path (request.params) must canonicalise identically.
    if raw_params:
        ref_params = botocore_sign(raw_params=raw_params, **common)
        assert ours["authorization"] == ref_params["authorization"]


# --- Known answers -------------------------------------------------------------------------


def _aws_example(path: str, query: str, headers: dict[str, str]) -> dict[str, str]:
    return sign_request(
        method="GET",
        host="examplebucket.s3.amazonaws.com",
        path=path,
        query=query,
        headers=headers,
        payload_hash=EMPTY_SHA256,
        access_key_id=AKID,
        secret_access_key=SECRET,
        session_token=None,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )


def test_aws_doc_get_object() -> None:
    out = _aws_example("/test.txt", "", {"Range": "bytes=0-9"})
    assert out == {
        "x-amz-date": "20130524T000000Z",
        "x-amz-content-sha256": EMPTY_SHA256,
        "authorization": (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
    }


def test_aws_doc_get_bucket_lifecycle() -> None:
    out = _aws_example("/", canonical_query_string([("lifecycle", "")]), {})
    assert out["authorization"].endswith(
        "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    )


def test_aws_doc_list_objects() -> None:
    query = canonical_query_string([("prefix", "J"), ("max-keys", "2")])
    assert query == "max-keys=2&prefix=J"
    out = _aws_example("/", query, {})
    assert out["authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_empty_sha256_constant() -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY_SHA256
    assert UNSIGNED_PAYLOAD == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("/a b", "/a%20b"),
        ("/line\nbreak\ttab", "/line%0Abreak%09tab"),
        ("/a+b", "/a%2Bb"),
        ("/100%", "/100%25"),
        ("/~user/x_y-z.txt", "/~user/x_y-z.txt"),
        ("/dir/sub/", "/dir/sub/"),
        ("/q?x=1&y#f", "/q%3Fx%3D1%26y%23f"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/\u65e5\u672c", "/%E6%97%A5%E6%9C%AC"),
        ("/\U0001f600.png", "/%F0%9F%98%80.png"),
        ("/a//b/./../c", "/a//b/./../c"),
        ("/*'();:@$,!", "/%2A%27%28%29%3B%3A%40%24%2C%21"),
    ],
)
def test_quote_path(raw: str, encoded: str) -> None:
    assert quote_path(raw) == encoded


def test_canonical_query_string() -> None:
    assert canonical_query_string([]) == ""
    assert canonical_query_string([("uploads", "")]) == "uploads="
    assert (
        canonical_query_string([("b", "2"), ("a", "z"), ("a", ""), ("a", "y"), ("B", "1")])
        == "B=1&a=&a=y&a=z&b=2"
    )
    assert (
        canonical_query_string([("k y", "a+b=c&d"), ("~_.-", "\u00e9/\U0001f600")])
        == "k%20y=a%2Bb%3Dc%26d&~_.-=%C3%A9%2F%F0%9F%98%80"
    )
    # Sorting is on the encoded form: raw 'é' sorts after '~', encoded '%C3%A9' before it.
    assert canonical_query_string([("~", "1"), ("\u00e9", "2")]) == "%C3%A9=2&~=1"


def _sign(**over: Any) -> dict[str, str]:
    kw: dict[str, Any] = dict(
        method="PUT",
        host="bucket.s3.eu-west-2.amazonaws.com",
        path="/k",
        query="",
        headers={"Content-Length": "3"},
        payload_hash=hashlib.sha256(b"abc").hexdigest(),
        access_key_id=AKID,
        secret_access_key=SECRET,
        session_token=None,
        region="eu-west-2",
        now=datetime(2024, 6, 1, 12, 30, 15, tzinfo=UTC),
    )
    kw.update(over)
    return sign_request(**kw)


def test_timezones_are_normalised() -> None:
    base = _sign()
    paris = timezone(timedelta(hours=2))
    assert _sign(now=datetime(2024, 6, 1, 14, 30, 15, tzinfo=paris)) == base
    # Crossing midnight changes the scope date, not just the time.
    west = timezone(timedelta(hours=-13))
    assert _sign(now=datetime(2024, 5, 31, 23, 30, 15, tzinfo=west)) == base
    assert _sign(now=datetime(2024, 6, 1, 12, 30, 15)) == base
    assert base["x-amz-date"] == "20240601T123015Z"
    assert "/20240601/eu-west-2/s3/aws4_request," in base["authorization"]


def test_token_header_only_with_token() -> None:
    plain = _sign()
    assert "x-amz-security-token" not in plain
    assert "x-amz-security-token" not in plain["authorization"]
    with_token = _sign(session_token="FQoGZXIvYXdzE+tok/en==")
    assert with_token["x-amz-security-token"] == "FQoGZXIvYXdzE+tok/en=="
    assert (
        "SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
        in with_token["authorization"]
    )
    assert with_token["authorization"] != plain["authorization"]


def test_secret_never_returned() -> None:
    for token in (None, "tok"):
        out = _sign(session_token=token)
        for value in out.values():
            assert SECRET not in value
            assert "K7MDENG" not in value


def test_unsigned_headers_are_skipped_and_duplicates_joined() -> None:
    out = _sign(
        headers={
            "User-Agent": "x",
            "Expect": "100-continue",
            "X-Amz-Meta-A": "  one   two ",
            "x-amz-meta-a": "three",
        }
    )
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a," in (out["authorization"])
    )


@pytest.mark.parametrize("name", ["Host", "Authorization", "X-Amz-Date", "date"])
def test_reserved_headers_rejected_without_leaking_secret(name: str) -> None:
    with pytest.raises(ValueError, match=name.lower()) as exc:
        _sign(headers={name: "v"})
    assert SECRET not in str(exc.value)


def test_method_is_uppercased_and_signing_key_cache_is_keyed_by_secret() -> None:
    assert _sign(method="put") == _sign(method="PUT")
    assert _sign(secret_access_key="other")["authorization"] != _sign()["authorization"]
    assert _sign(region="us-east-1")["authorization"] != _sign()["authorization"]
