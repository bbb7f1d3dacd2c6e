"""A test bucket as another client sees it: botocore against the test's S3 server (moto or Ceph
RGW), outside the sidecar."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from support.s3_server import S3Server


@dataclass
class Bucket:
    name: str
    client: Any
    server: S3Server

    @classmethod
    def create(cls, server: S3Server, prefix: str = "t-") -> Bucket:
        """A new bucket with a name of its own (starting with `prefix`: moto_server.py's
        `LAX` makes one whose copies ignore their source's condition)."""
        name = f"{prefix}{uuid.uuid4().hex[:16]}"
        client = server.client()
        client.create_bucket(Bucket=name)
        return cls(name, client, server)

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=key))

    def put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        response = self.client.put_object(
            Bucket=self.name, Key=key, Body=body, Metadata=metadata or {}
        )
        return str(response["ETag"]).strip('"')

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def set_metadata(self, key: str, metadata: dict[str, str]) -> None:
        """Another client's chmod or touch: the object copied onto itself, new metadata."""
        self.client.copy_object(
            Bucket=self.name,
            Key=key,
            CopySource={"Bucket": self.name, "Key": key},
            MetadataDirective="REPLACE",
            Metadata=metadata,
        )

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except self.client.exceptions.ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


def content_of(bucket: Bucket, key: str, expected: bytes) -> None:
    """Asserts that S3 holds `key` with these bytes."""
    assert bucket.exists(key), f"{key} not in S3"
    assert bucket.get(key) == expected
