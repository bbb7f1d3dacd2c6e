"""What S3 access can raise, and how S3 refuses. An answer that is not a success is an
`S3Error` (`PreconditionFailed` for a conditional write that found another version, `NotFound`);
no answer at all is `S3Unavailable` (`ResponseTooLarge` for an answer over its bound); an upload
whose local file changed while it was sent is `BodyChanged`. The last three are any AWS
request's (aws/errors.py), under the names S3's callers know.

`S3_RULES` is S3's part of the one signed-request path (aws/signed.py): an error is an XML
document, read up to `ERROR_DOCUMENT_LIMIT`; 5xx, 429 and the codes S3 documents as transient
are sent again; a rejected or expired credential (or a HEAD's bodyless 400/403, which may be
one) is refreshed once; `RequestTimeTooSkewed` corrects the clock.
"""

from __future__ import annotations

from ..aws.errors import BodyChanged, ResponseTooLarge, Unavailable
from ..aws.http import Answer
from ..aws.signed import Refusal
from . import xml

# No answer is read without a bound: a broken or hostile endpoint cannot exhaust memory. An
# error document is read up to 64 KiB, and past that only its status counts; any other answer
# read whole (listings, XML results) up to 8 MiB, twice a worst-case page of 1,000 URL-encoded
# 1,024-byte keys.
ERROR_DOCUMENT_LIMIT = 64 * 1024
RESULT_LIMIT = 8 * 1024 * 1024

S3Unavailable = Unavailable  # no answer from S3 after every retry

_RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 429})
_RETRYABLE_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "InternalError",
        "OperationAborted",
        "ServiceUnavailable",
        "RequestTimeTooSkewed",
    }
)
# What S3 answers (403) to a GET, or a copy's source, in an archive storage class that is not
# restored: GET says InvalidObjectState, CopyObject ObjectNotInActiveTierError.
_ARCHIVED_CODES = frozenset({"InvalidObjectState", "ObjectNotInActiveTierError"})
_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired"}
)


class S3Error(Exception):
    """S3 answered, and the answer was not a success."""

    def __init__(self, operation: str, status: int, code: str, message: str, key: str) -> None:
        super().__init__(f"{operation} {key!r}: HTTP {status} {code} {message}".rstrip())
        self.operation = operation
        self.status = status
        self.code = code
        self.key = key

    @property
    def archived(self) -> bool:
        """A read (GET, a copy's source) refused because the object is archived, not restored."""
        return self.code in _ARCHIVED_CODES


class PreconditionFailed(S3Error):
    """A conditional write found another version than expected: someone else changed it.
    `if_match`: the ETag the refused `If-Match` named, when S3 itself refused one (the client
    sets it): a HEAD that finds that very ETag says the endpoint did not understand the form
    it was sent in (conditions.py)."""

    if_match: str | None = None


class NotFound(S3Error):
    pass


def error_for(operation: str, status: int, code: str, message: str, key: str) -> S3Error:
    if status == 412 or code == "PreconditionFailed":
        return PreconditionFailed(operation, status, code, message, key)
    if status == 404 and code in ("", "NoSuchKey", "NoSuchUpload", "NotFound"):
        return NotFound(operation, status, code, message, key)
    return S3Error(operation, status, code, message, key)


class S3Rules:
    """S3's refusals: XML error documents (see the module docstring)."""

    service = "s3"

    def refusal(self, method: str, answer: Answer) -> Refusal:
        document = xml.parse_error(answer.body)
        code = document.code if document else ""
        message = document.message if document else ""
        if answer.oversized:  # only the status is known; 5xx and 429 are retried as usual
            message = f"(an error document over {ERROR_DOCUMENT_LIMIT} bytes, not read)"
        # A HEAD error has no body to name its code: a 400/403 there may be an expired
        # credential too, worth one refresh.
        bodyless_denial = method == "HEAD" and not code and answer.status in (400, 403)
        return Refusal(
            code,
            message,
            retry=answer.status in _RETRYABLE_STATUS or code in _RETRYABLE_CODES,
            refresh=code in _CREDENTIAL_CODES or bodyless_denial,
            skewed=code == "RequestTimeTooSkewed",
        )

    def error(self, operation: str, subject: str, status: int, refusal: Refusal) -> S3Error:
        return error_for(operation, status, refusal.code, refusal.message, subject)


S3_RULES = S3Rules()

__all__ = [
    "ERROR_DOCUMENT_LIMIT",
    "RESULT_LIMIT",
    "S3_RULES",
    "BodyChanged",
    "NotFound",
    "PreconditionFailed",
    "ResponseTooLarge",
    "S3Error",
    "S3Rules",
    "S3Unavailable",
    "error_for",
]
