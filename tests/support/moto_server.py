"""moto's server as the tests run it (`python tests/support/moto_server.py -H 127.0.0.1 -p PORT`),
with the S3 behaviours the sidecar relies on that moto 5 lacks:

- CopyObject honours `x-amz-copy-source-if-match` (AWS answers 412 when the source's ETag is
  another; moto copied whatever it found, so a copy made on an old read could stamp another
  client's newer bytes) and `If-None-Match: *` (AWS answers 412 when the key exists; moto wrote
  over it). In a bucket whose name starts with `lax-`, CopyObject ignores the first, as moto
  itself does (and Ceph RGW): what a client must check for itself there, a test can see it
  check.
- A copy keeps the source's checksum whole (AWS: "the checksum value of the source is copied"):
  moto kept a composite checksum's value but lost its type and part count, and then stated it
  as a full-object one, which no bytes match.
- A HEAD states a composite checksum as its GET does and AWS does (`<value>-<parts>`, with
  `x-amz-checksum-type`); moto's HEAD left the count out.
- STS's `AssumeRoleWithWebIdentity` is served unsigned, as AWS serves it (the web identity
  token is its proof; moto, with authentication on, failed it with a 500 for want of a
  signature).

Run as a script, this folder is first on `sys.path`: no module of `support` may take the name
of one that moto or its dependencies import (no `moto.py`, `http.py`, `requests.py`)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.core.authorization import ActionAuthenticatorMixin
from moto.s3 import models, responses
from moto.s3.exceptions import PreconditionFailed
from moto.server import main

_copy_object = responses.S3Response.copy_object
LAX = "lax-"


def _copy_object_if_match(self: Any) -> Any:
    if self.headers.get("If-None-Match") == "*" and (
        self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None
    ):
        raise PreconditionFailed(failed_condition="If-None-Match")
    wanted = self.headers.get("x-amz-copy-source-if-match")
    if wanted and not str(self.bucket_name).startswith(LAX):
        source = self.headers.get("x-amz-copy-source", "")
        if isinstance(source, bytes):
            source = source.decode("utf-8")
        parsed = urlparse(source)
        bucket, key = unquote(parsed.path).lstrip("/").split("/", 1)
        version = parse_qs(parsed.query).get("versionId", [None])[0]
        found = self.backend.get_object(bucket, key, version_id=version)
        if found is not None and found.etag.strip('"') != wanted.strip().strip('"'):
            raise PreconditionFailed(failed_condition="x-amz-copy-source-If-Match")
    return _copy_object(self)


responses.S3Response.copy_object = _copy_object_if_match  # type: ignore[method-assign]

_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action
_UNSIGNED = ("AssumeRoleWithWebIdentity",)  # AWS's STS: no credentials needed, none checked


def _authenticate_unless_unsigned(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    if self._get_action() in _UNSIGNED:
        return
    _authenticate(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_unless_unsigned  # type: ignore[method-assign]


_backend_copy = models.S3Backend.copy_object


def _copy_keeping_the_checksum(
    self: Any, src_key: Any, dest_bucket: str, dest: str, *a: Any, **k: Any
) -> Any:
    kind, parts = src_key.checksum_type, src_key.checksum_parts
    result = _backend_copy(self, src_key, dest_bucket, dest, *a, **k)
    copied = self.get_object(dest_bucket, dest)
    if copied is not None and copied.checksum_value == src_key.checksum_value:
        copied.checksum_type, copied.checksum_parts = kind, parts
    return result


models.S3Backend.copy_object = _copy_keeping_the_checksum  # type: ignore[method-assign]

_head_object = responses.S3Response.head_object


def _head_stating_composite_checksums(
    self: Any, bucket_name: str, query: Any, key_name: str, headers: Any
) -> Any:
    status, response_headers, body = _head_object(self, bucket_name, query, key_name, headers)
    if status == 200 and "partNumber" not in query:
        key = self.backend.get_object(bucket_name, key_name)
        if key is not None and key.checksum_type == "COMPOSITE" and key.checksum_algorithm:
            name = f"x-amz-checksum-{key.checksum_algorithm.lower()}"
            value = response_headers.get(name)
            if value and "-" not in value:
                response_headers[name] = f"{value}-{key.checksum_parts}"
                response_headers["x-amz-checksum-type"] = "COMPOSITE"
    return status, response_headers, body


responses.S3Response.head_object = _head_stating_composite_checksums  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
