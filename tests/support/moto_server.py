"""moto's server as the tests run it (`python tests/support/moto_server.py -H 127.0.0.1 -p PORT`),
with the S3 behaviours the sidecar relies on that moto 5 lacks: CopyObject honours
`x-amz-copy-source-if-match` (AWS answers 412 when the source's ETag is another; moto copied
whatever it found, so a copy made on an old read could stamp another client's newer bytes) and
`If-None-Match: *` (AWS answers 412 when the key exists; moto wrote over it).

In a bucket whose name starts with `lax-`, CopyObject ignores both, as moto itself does (and
as other stores may): what a client must check for itself there, a test can see it check.

Run as a script, this folder is first on `sys.path`: no module of `support` may take the name
of one that moto or its dependencies import (no `moto.py`, `http.py`, `requests.py`)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.s3 import responses
from moto.s3.exceptions import PreconditionFailed
from moto.server import main

_copy_object = responses.S3Response.copy_object
LAX = "lax-"


def _copy_object_if_match(self: Any) -> Any:
    if str(self.bucket_name).startswith(LAX):
        return _copy_object(self)
    if self.headers.get("If-None-Match") == "*" and (
        self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None
    ):
        raise PreconditionFailed(failed_condition="If-None-Match")
    wanted = self.headers.get("x-amz-copy-source-if-match")
    if wanted:
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

if __name__ == "__main__":
    main(sys.argv[1:])
