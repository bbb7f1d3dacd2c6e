"""Parsing and building the few S3 XML documents the sidecar uses. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from ..model import normalize_etag
from .metadata import normalize_last_modified


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str  # as listed: still URL-encoded when `encoded` is true
    etag: str  # normalised (no quotes)
    size: int
    last_modified: str


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[ListedObject]
    next_token: str | None
    encoded: bool
    answered_at: str = ""  # the server's `Date` (normalised): set by the client


@dataclass(frozen=True, slots=True)
class ErrorDocument:
    code: str
    message: str
    request_id: str


class MalformedResponse(ValueError):
    """S3 (or something in front of it) answered with a body we cannot read."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element) -> dict[str, str]:
    return {_local(child.tag): (child.text or "") for child in element}


def _parse(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)  # noqa: S314 - stdlib expat: no external entities, bounded expansion
    except ET.ParseError as error:
        raise MalformedResponse(f"unreadable XML: {body[:200]!r}") from error


def parse_list_objects_v2(body: bytes) -> ListPage:
    root = _parse(body)
    if _local(root.tag) != "ListBucketResult":
        # A 200 with another document (an error, a proxy's page) is not an empty listing:
        # read as one, it would look like every object had been deleted.
        raise MalformedResponse(f"not a ListBucketResult: <{_local(root.tag)}>")
    objects: list[ListedObject] = []
    next_token: str | None = None
    truncated = False
    encoded = False
    for child in root:
        tag = _local(child.tag)
        if tag == "Contents":
            fields = _children(child)
            try:
                size = int(fields.get("Size", "0") or 0)
            except ValueError as error:
                raise MalformedResponse(f"bad Size in listing: {fields!r}") from error
            objects.append(
                ListedObject(
                    key=fields.get("Key", ""),
                    etag=normalize_etag(fields.get("ETag", "")),
                    size=size,
                    last_modified=normalize_last_modified(fields.get("LastModified", "")),
                )
            )
        elif tag == "NextContinuationToken":
            next_token = child.text or None
        elif tag == "IsTruncated":
            truncated = (child.text or "").strip().lower() == "true"
        elif tag == "EncodingType":
            encoded = (child.text or "").strip().lower() == "url"
    if truncated and not next_token:
        raise MalformedResponse("listing is truncated but has no continuation token")
    return ListPage(objects, next_token if truncated else None, encoded)


def parse_error(body: bytes) -> ErrorDocument | None:
    """The `<Error>` document, or None when the body is not one (HEAD has no body)."""
    if not body.lstrip().startswith(b"<"):
        return None
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return None
    if _local(root.tag) != "Error":
        return None
    fields = _children(root)
    return ErrorDocument(
        fields.get("Code", ""), fields.get("Message", ""), fields.get("RequestId", "")
    )


def parse_copy_result(body: bytes) -> tuple[str, str]:
    """(etag, last_modified) of CopyObject. S3 can answer 200 with an `<Error>` body."""
    root = _parse(body)
    if _local(root.tag) == "Error":
        fields = _children(root)
        raise MalformedResponse(f"copy failed: {fields.get('Code', '')}")
    fields = _children(root)
    return (
        normalize_etag(fields.get("ETag", "")),
        normalize_last_modified(fields.get("LastModified", "")),
    )


def parse_initiate_multipart(body: bytes) -> str:
    fields = _children(_parse(body))
    upload_id = fields.get("UploadId", "")
    if not upload_id:
        raise MalformedResponse("no UploadId in CreateMultipartUpload response")
    return upload_id


def parse_complete_multipart(body: bytes) -> str:
    root = _parse(body)
    fields = _children(root)
    if _local(root.tag) == "Error":
        raise MalformedResponse(f"multipart completion failed: {fields.get('Code', '')}")
    return normalize_etag(fields.get("ETag", ""))


def build_complete_multipart(etags: list[str]) -> bytes:
    parts = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>&quot;{escape(etag)}&quot;</ETag></Part>"
        for number, etag in enumerate(etags, start=1)
    )
    return (
        '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{parts}</CompleteMultipartUpload>"
    ).encode()
