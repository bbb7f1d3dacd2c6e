"""The S3 XML documents: listings, errors, copy and multipart results."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from sidecar.s3 import xml
from sidecar.s3.xml import (
    ErrorDocument,
    ListedObject,
    ListPage,
    MalformedResponse,
    build_complete_multipart,
    parse_complete_multipart,
    parse_copy_result,
    parse_error,
    parse_initiate_multipart,
    parse_list_objects_v2,
    parse_list_page,
)

NS = "http://s3.amazonaws.com/doc/2006-03-01/"

LIST_PAGE = f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="{NS}">
  <Name>my-bucket</Name>
  <Prefix>team%2F</Prefix>
  <KeyCount>4</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>
  <NextContinuationToken>1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==</NextContinuationToken>
  <Contents>
    <Key>team/a+b.txt</Key>
    <LastModified>2024-01-02T03:04:05.250Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>
    <Size>1234</Size>
    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>team/%ED%95%9C%EA%B8%80/</Key>
    <LastModified>2024-01-02T03:04:06.000Z</LastModified>
    <ETag>d41d8cd98f00b204e9800998ecf8427e</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>team/big.bin</Key>
    <LastModified>2024-01-02T03:04:07.000Z</LastModified>
    <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
    <Size>75000000</Size>
    <StorageClass>GLACIER</StorageClass>
  </Contents>
  <Contents>
    <Key>team/%26%3C%3E.txt</Key>
    <LastModified>2024-01-02T03:04:08.000Z</LastModified>
    <ETag>W/"weak"</ETag>
    <Size>3</Size>
  </Contents>
</ListBucketResult>
""".encode()


def test_parse_list_objects_v2_page() -> None:
    """Last-Modified in whole seconds (to compare, as a HEAD gives it) and to the millisecond
    as listed (a download's mtime where the object carries none)."""
    page = parse_list_objects_v2(LIST_PAGE)
    second = 1_000_000_000
    assert page == ListPage(
        objects=[
            ListedObject(
                "team/a+b.txt",
                "9b2cf535f27731c974343645a3985328",
                1234,
                "1704164645",
                "STANDARD",
                1704164645 * second + 250_000_000,
            ),
            ListedObject(
                "team/%ED%95%9C%EA%B8%80/",
                "d41d8cd98f00b204e9800998ecf8427e",
                0,
                "1704164646",
                "STANDARD",
                1704164646 * second,
            ),
            ListedObject(
                "team/big.bin",
                "3858f62230ac3c915f300c664312c11f-9",
                75_000_000,
                "1704164647",
                "GLACIER",  # archived: a GET is refused until it is restored
                1704164647 * second,
            ),
            ListedObject(
                "team/%26%3C%3E.txt", "weak", 3, "1704164648", "", 1704164648 * second
            ),  # no class: STANDARD
        ],
        next_token="1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5PcROI4wI/EyIJg==",
        encoded=True,
    )


def _page(body: str, root: str = f'<ListBucketResult xmlns="{NS}">') -> bytes:
    return f"{root}{body}</ListBucketResult>".encode()


def test_last_page_has_no_token() -> None:
    body = (
        "<IsTruncated>false</IsTruncated>"
        '<Contents><Key>k</Key><ETag>"e"</ETag><Size>1</Size></Contents>'
    )
    page = parse_list_objects_v2(_page(body))
    assert page == ListPage([ListedObject("k", "e", 1, "")], None, False)


def test_token_is_ignored_when_not_truncated() -> None:
    body = "<IsTruncated>false</IsTruncated><NextContinuationToken>tok</NextContinuationToken>"
    assert parse_list_objects_v2(_page(body)) == ListPage([], None, False)


def test_truncated_flag_is_case_and_space_insensitive() -> None:
    body = "<IsTruncated> True </IsTruncated><NextContinuationToken>tok</NextContinuationToken>"
    assert parse_list_objects_v2(_page(body)).next_token == "tok"


def test_listing_without_namespace() -> None:
    body = "<EncodingType>URL</EncodingType><Contents><Key>a%20b</Key><Size>2</Size></Contents>"
    page = parse_list_objects_v2(_page(body, root="<ListBucketResult>"))
    assert page == ListPage([ListedObject("a%20b", "", 2, "")], None, True)


def test_listing_whose_elements_name_their_namespace_another_way() -> None:
    """The fast path compares tags with the root's namespace; elements in another one (a proxy
    that rewrites the document) are still read by their local names."""
    other = "urn:other"
    body = (
        f'<o:Contents xmlns:o="{other}"><o:Key>k</o:Key><o:ETag>"e"</o:ETag><o:Size>3</o:Size>'
        "<o:LastModified>2026-11-25T12:00:00.000Z</o:LastModified></o:Contents>"
        '<Contents><Key>j</Key><ETag>"f"</ETag><Size>4</Size></Contents>'
    )
    page = parse_list_objects_v2(_page(body))
    assert page.objects == [
        ListedObject("k", "e", 3, "1795608000", "", 1795608000 * 1_000_000_000),
        ListedObject("j", "f", 4, ""),
    ]


def test_a_page_listed_again_is_not_parsed_again() -> None:
    first = parse_list_page(LIST_PAGE)
    assert first.objects == parse_list_objects_v2(LIST_PAGE).objects
    assert len(first.digest) == 16 and not first.reused
    again = parse_list_page(LIST_PAGE, {first.digest})
    assert again == ListPage([], first.next_token, True, digest=first.digest, reused=True)


def test_only_what_a_page_lists_makes_its_digest() -> None:
    """Continuation tokens are opaque and need not repeat between listings of the same objects,
    so they are not part of the digest; every byte of the objects is, and so is whether keys
    are URL-encoded (the same bytes then name other keys)."""
    held = {parse_list_page(LIST_PAGE).digest}
    new_token = parse_list_page(LIST_PAGE.replace(b"1w41l63U0", b"2w41l63U0"), held)
    assert new_token.reused and new_token.next_token is not None
    assert new_token.next_token.startswith("2w41l63U0")
    for changed in (
        LIST_PAGE.replace(b"<Size>1234</Size>", b"<Size>1235</Size>"),
        LIST_PAGE.replace(b"2024-01-02T03:04:08", b"2024-01-02T03:04:09"),
        LIST_PAGE.replace(b"<EncodingType>url</EncodingType>", b""),
    ):
        page = parse_list_page(changed, held)
        assert not page.reused and page.digest not in held and len(page.objects) == 4


def test_pages_that_cannot_be_cut_are_parsed_whole() -> None:
    """No `<Contents>` (an empty page) or one in another namespace: no digest, never reused."""
    assert parse_list_page(_page("<IsTruncated>false</IsTruncated>")) == ListPage([], None, False)
    other = (
        '<o:Contents xmlns:o="urn:other"><o:Key>k</o:Key><o:Size>3</o:Size></o:Contents>'
        "<Contents><Key>j</Key><Size>4</Size></Contents>"
    )
    page = parse_list_page(_page(other), {b""})
    assert page == ListPage(
        [ListedObject("k", "", 3, ""), ListedObject("j", "", 4, "")], None, False
    )


def test_a_document_with_contents_that_is_not_a_listing_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="not a ListBucketResult"):
        parse_list_page(b"<Error><Contents><Key>k</Key></Contents></Error>")


def test_empty_listing() -> None:
    body = "<Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
    assert parse_list_objects_v2(_page(body)) == ListPage([], None, False)


@pytest.mark.parametrize(
    "body",
    [
        "<IsTruncated>true</IsTruncated>",
        "<IsTruncated>true</IsTruncated><NextContinuationToken></NextContinuationToken>",
        "<IsTruncated>true</IsTruncated><NextContinuationToken/>",
    ],
)
def test_truncated_page_without_token_is_malformed(body: str) -> None:
    with pytest.raises(MalformedResponse, match="continuation token"):
        parse_list_objects_v2(_page(body))


@pytest.mark.parametrize("size", ["many", "1.5", "-"])
def test_bad_size_is_malformed(size: str) -> None:
    with pytest.raises(MalformedResponse, match="Size"):
        parse_list_objects_v2(_page(f"<Contents><Key>k</Key><Size>{size}</Size></Contents>"))


@pytest.mark.parametrize("body", [b"", b"not xml", b"<html><body>502 Bad Gateway</body>", b"\xff"])
def test_unreadable_listing_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_list_objects_v2(body)


ERROR = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>SlowDown</Code>
  <Message>Please reduce your request rate.</Message>
  <RequestId>4442587FB7D0A2F9</RequestId>
  <HostId>ZX3l6JpiCnjYoHYdJjtE8S9L2hRAsbJcQ9Ngd/Z5GfEsA2oMvyC==</HostId>
</Error>"""


@pytest.mark.parametrize(
    "body",
    [ERROR, b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>", b"<html></html>"],
)
def test_listing_that_is_not_a_listing_is_malformed(body: bytes) -> None:
    try:
        page = parse_list_objects_v2(body)
    except MalformedResponse:
        return
    raise AssertionError(f"read as a listing: {page}")


# -- errors ------------------------------------------------------------------------------------


def test_parse_error() -> None:
    assert parse_error(ERROR) == ErrorDocument(
        "SlowDown", "Please reduce your request rate.", "4442587FB7D0A2F9"
    )


def test_parse_error_with_namespace_and_missing_fields() -> None:
    body = f'<Error xmlns="{NS}"><Code>NoSuchKey</Code></Error>'.encode()
    assert parse_error(body) == ErrorDocument("NoSuchKey", "", "")


def test_parse_error_leading_whitespace() -> None:
    # (before an XML declaration, whitespace makes the document invalid: expat refuses it)
    body = b"\n  <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    assert parse_error(body) == ErrorDocument("AccessDenied", "Access Denied", "")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"Service Unavailable",
        b'{"error": "json"}',
        b"<html><body>502 Bad Gateway</body></html>",
        b"<Error><Code>Unclosed",
        b"<ListBucketResult/>",
        b"\x00\x01",
    ],
)
def test_parse_error_of_something_else_is_none(body: bytes) -> None:
    assert parse_error(body) is None


# -- copy ----------------------------------------------------------------------------------------


def test_parse_copy_result() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<CopyObjectResult xmlns="{NS}">
  <LastModified>2024-01-02T03:04:05.000Z</LastModified>
  <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
</CopyObjectResult>""".encode()
    assert parse_copy_result(body) == (
        "9b2cf535f27731c974343645a3985328",
        "1704164645",
    )


def test_copy_answered_200_with_an_error_is_malformed() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>

<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"""
    with pytest.raises(MalformedResponse, match="InternalError"):
        parse_copy_result(body)


def test_copy_with_unreadable_body_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_copy_result(b"<CopyObjectResult><ETag>")


# -- multipart ---------------------------------------------------------------------------------


def test_parse_initiate_multipart() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="{NS}">
  <Bucket>my-bucket</Bucket>
  <Key>team/big.bin</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>""".encode()
    assert (
        parse_initiate_multipart(body)
        == "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>",
        b"<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>",
        b"garbage",
    ],
)
def test_initiate_multipart_without_upload_id_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_initiate_multipart(body)


def test_parse_complete_multipart() -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="{NS}">
  <Location>https://my-bucket.s3.eu-west-2.amazonaws.com/team/big.bin</Location>
  <Bucket>my-bucket</Bucket>
  <Key>team/big.bin</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>""".encode()
    assert parse_complete_multipart(body) == "3858f62230ac3c915f300c664312c11f-9"


def test_complete_multipart_answered_200_with_an_error_is_malformed() -> None:
    body = b"<Error><Code>InvalidPart</Code><Message>One or more parts...</Message></Error>"
    with pytest.raises(MalformedResponse, match="InvalidPart"):
        parse_complete_multipart(body)


def test_build_complete_multipart_numbers_and_quotes_parts() -> None:
    etags = ["aaa", "bbb", "ccc"]
    root = ET.fromstring(build_complete_multipart(etags))
    assert root.tag == f"{{{NS}}}CompleteMultipartUpload"
    parts = root.findall(f"{{{NS}}}Part")
    assert [(p.findtext(f"{{{NS}}}PartNumber"), p.findtext(f"{{{NS}}}ETag")) for p in parts] == [
        ("1", '"aaa"'),
        ("2", '"bbb"'),
        ("3", '"ccc"'),
    ]
    assert [child.tag for child in parts[0]] == [f"{{{NS}}}PartNumber", f"{{{NS}}}ETag"]


def test_build_complete_multipart_escapes() -> None:
    etags = ["a&b", "<c>", "d]]>e", "plain"]
    root = ET.fromstring(build_complete_multipart(etags))
    texts = [p.findtext(f"{{{NS}}}ETag") for p in root.findall(f"{{{NS}}}Part")]
    assert texts == ['"a&b"', '"<c>"', '"d]]>e"', '"plain"']


def test_build_complete_multipart_many_parts() -> None:
    etags = [f"{n:032x}" for n in range(1, 10_001)]
    root = ET.fromstring(build_complete_multipart(etags))
    numbers = [int(p.findtext(f"{{{NS}}}PartNumber") or 0) for p in root]
    assert numbers == list(range(1, 10_001))


def test_build_complete_multipart_is_one_bytes_document() -> None:
    body = build_complete_multipart(["x"])
    assert body.startswith(b"<CompleteMultipartUpload ")
    assert body.endswith(b"</CompleteMultipartUpload>")
    assert isinstance(body, bytes)


def test_listing_and_head_dates_compare_equal() -> None:
    """A listing's LastModified and a HEAD's Last-Modified name the same instant alike."""
    from sidecar.s3.metadata import normalize_last_modified

    assert normalize_last_modified("2024-01-02T03:04:05.000Z") == "1704164645"
    assert normalize_last_modified("Tue, 02 Jan 2024 03:04:05 GMT") == "1704164645"
    assert normalize_last_modified("2024-01-02T03:04:05+00:00") == "1704164645"
    assert normalize_last_modified("") == ""
    assert normalize_last_modified("not a date") == "not a date"


@pytest.mark.parametrize(
    ("text", "seconds", "nanoseconds"),
    [
        ("2024-01-02T03:04:05.000Z", "1704164645", 1704164645_000_000_000),
        ("2024-01-02T03:04:05.999Z", "1704164645", 1704164645_999_000_000),  # RGW, AWS
        ("2024-01-02T03:04:05.123456Z", "1704164645", 1704164645_123_456_000),
        ("2024-01-02T03:04:05Z", "1704164645", 1704164645_000_000_000),
        ("", "", None),
        ("not a date", "not a date", None),
    ],
)
def test_a_listed_time_keeps_its_milliseconds(
    text: str, seconds: str, nanoseconds: int | None
) -> None:
    """Compared in whole seconds (a HEAD's date has no more), kept to the listing's precision."""
    from sidecar.s3.metadata import listed_time

    assert listed_time(text) == (seconds, nanoseconds)


# -- DeleteObjects ---------------------------------------------------------------------------


def test_a_delete_document_names_each_key_and_its_etag_as_if_match_sends_it() -> None:
    document = xml.build_delete([("a&b<c>.txt", "e1"), ("d/ü.txt", None)], lambda e: f'"{e}"')
    root = ET.fromstring(document)
    objects = [
        {child.tag.rsplit("}", 1)[-1]: child.text for child in element}
        for element in root
        if element.tag.endswith("Object")
    ]
    assert objects == [{"Key": "a&b<c>.txt", "ETag": '"e1"'}, {"Key": "d/ü.txt"}]
    assert b"<Quiet>true</Quiet>" in document


def test_a_delete_result_says_what_was_not_deleted_and_why() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Deleted><Key>gone</Key></Deleted>"
        b"<Error><Key>a&amp;b</Key><Code>PreconditionFailed</Code><Message>m</Message></Error>"
        b"<Error><Key>c</Key><Code>InternalError</Code></Error>"
        b"</DeleteResult>"
    )
    assert xml.parse_delete_result(body) == {"a&b": "PreconditionFailed", "c": "InternalError"}


def test_an_error_document_for_a_delete_is_malformed() -> None:
    with pytest.raises(xml.MalformedResponse):
        xml.parse_delete_result(b"<Error><Code>InternalError</Code></Error>")


@pytest.mark.parametrize(
    ("key", "verbatim"),
    [("a/b c.txt", True), ("ü€😀", True), ("line\nbreak", False), ("cr\r", False), ("\x7f", False)],
)
def test_only_keys_xml_carries_verbatim_are_batched(key: str, verbatim: bool) -> None:
    assert xml.carried_verbatim(key) is verbatim
