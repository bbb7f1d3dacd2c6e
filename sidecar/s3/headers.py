"""What requests to the bucket say beyond each operation's own headers, built from the
settings (settings/writes.py) once, for `S3Client`: on every request that creates an object
version (`write_headers`: encryption, storage class, ACL) and on every request
(`request_headers`: requester pays). Pure."""

from __future__ import annotations


def write_headers(
    *,
    sse: str | None = None,
    kms_key_id: str | None = None,
    bucket_key: bool | None = None,
    storage_class: str | None = None,
    acl: str | None = None,
) -> dict[str, str]:
    """What every request that creates an object version must say (`SYNC_SSE`,
    `SYNC_SSE_KMS_KEY_ID`, `SYNC_SSE_BUCKET_KEY`, `SYNC_STORAGE_CLASS`, `SYNC_ACL`): a copy onto
    itself that did not restate them would get the bucket's default encryption, `STANDARD`
    and a private ACL."""
    headers: dict[str, str] = {}
    if sse is not None:
        headers["x-amz-server-side-encryption"] = sse
    if kms_key_id is not None:
        headers["x-amz-server-side-encryption-aws-kms-key-id"] = kms_key_id
    if bucket_key is not None:
        headers["x-amz-server-side-encryption-bucket-key-enabled"] = str(bucket_key).lower()
    if storage_class is not None:
        headers["x-amz-storage-class"] = storage_class
    if acl is not None:
        headers["x-amz-acl"] = acl
    return headers


def request_headers(*, request_payer: str | None = None) -> dict[str, str]:
    """What every request to the bucket says (`SYNC_REQUEST_PAYER`: reads and listings too)."""
    return {} if request_payer is None else {"x-amz-request-payer": request_payer}


__all__ = ["request_headers", "write_headers"]
