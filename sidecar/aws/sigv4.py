"""AWS Signature Version 4 for S3, written to match botocore's S3SigV4Auth byte for byte.

We sign every request ourselves (no SDK on the hot path), so this module is pure, imports only
the standard library, and caches the derived signing key, which only changes once a day.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final
from urllib.parse import quote

__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "canonical_query_string",
    "quote_path",
    "sign_request",
]

UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
EMPTY_SHA256: Final = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

_ALGORITHM: Final = "AWS4-HMAC-SHA256"

# botocore.auth.SIGNED_HEADERS_BLACKLIST: hop-by-hop or proxy-rewritten headers that botocore
# never signs; skipping them too keeps a caller who passes one in agreement with botocore.
_UNSIGNED_HEADERS: Final = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)

# Headers this module owns. botocore silently replaces most of them and switches to a different
# signing scheme for 'date', so a caller passing one is a bug we would rather surface.
_RESERVED_HEADERS: Final = frozenset(
    {
        "authorization",
        "date",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
    }
)


def quote_path(path: str) -> str:
    """URI-encode an S3 object path the way SigV4 and S3 expect: UTF-8 bytes, every byte
    except unreserved (A-Z a-z 0-9 - _ . ~) and '/' percent-encoded with uppercase hex.
    Used both to build the request URL and as the canonical URI, so they always agree."""
    return quote(path, safe="/")


def canonical_query_string(params: Iterable[tuple[str, str]]) -> str:
    """Each key and value encoded with only unreserved characters left as is (same as
    urllib.parse.quote(x, safe='-_.~')), pairs sorted by (encoded key, encoded value),
    joined as k=v with '&'. A param with an empty value gives 'k='. The client sends
    exactly this string as the URL query, so what is signed is what is sent."""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params)
    return "&".join([f"{k}={v}" for k, v in pairs])


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode(), "sha256")


@lru_cache(maxsize=64)
def _signing_key(secret_access_key: str, datestamp: str, region: str, service: str) -> bytes:
    """Four HMACs per request would dominate signing cost; the key only changes daily."""
    k_date = _hmac(f"AWS4{secret_access_key}".encode(), datestamp)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def _amz_date(now: datetime) -> str:
    """Naive datetimes are taken as UTC (as botocore's clock returns them); others converted."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return (
        f"{now.year:04d}{now.month:02d}{now.day:02d}"
        f"T{now.hour:02d}{now.minute:02d}{now.second:02d}Z"
    )


def sign_request(
    *,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload_hash: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """Returns the headers to add to the request: 'x-amz-date', 'x-amz-content-sha256',
    'authorization', and 'x-amz-security-token' when session_token is given. Header names
    returned lowercase.

    `path` and `query` are signed verbatim (S3 does not normalise them), so they must be
    exactly what goes on the wire; `host` must be the exact Host header value sent.
    Raises ValueError if `headers` contains a header this function sets itself."""
    amz_date = _amz_date(now)
    datestamp = amz_date[:8]

    # Same canonical form as botocore: lowercase names, values trimmed with runs of
    # whitespace collapsed, repeated names (differing only in case) joined with ','.
    canon: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname in _UNSIGNED_HEADERS:
            continue
        if lname in _RESERVED_HEADERS:
            raise ValueError(f"header {lname!r} is set by the signer and must not be passed")
        trimmed = " ".join(value.split())
        prev = canon.get(lname)
        canon[lname] = trimmed if prev is None else f"{prev},{trimmed}"

    out = {"x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    canon["host"] = " ".join(host.split())
    canon["x-amz-date"] = amz_date
    canon["x-amz-content-sha256"] = payload_hash
    if session_token:
        out["x-amz-security-token"] = session_token
        canon["x-amz-security-token"] = " ".join(session_token.split())

    names = sorted(canon)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        (
            method.upper(),
            path,
            query,
            "".join([f"{n}:{canon[n]}\n" for n in names]),
            signed_headers,
            payload_hash,
        )
    )
    scope = f"{datestamp}/{region}/{service}/aws4_request"
    string_to_sign = (
        f"{_ALGORITHM}\n{amz_date}\n{scope}\n"
        f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    )
    key = _signing_key(secret_access_key, datestamp, region, service)
    signature = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    out["authorization"] = (
        f"{_ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out
