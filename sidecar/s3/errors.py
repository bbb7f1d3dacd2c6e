"""What S3 access can raise: an answer that is not a success (`S3Error`, with
`PreconditionFailed` for a conditional write that found another version and `NotFound`), no
answer at all (`S3Unavailable`, and `ResponseTooLarge` for an answer over its bound), and an
upload whose local file changed while it was sent (`BodyChanged`)."""

from __future__ import annotations


class S3Error(Exception):
    """S3 answered, and the answer was not a success."""

    def __init__(self, operation: str, status: int, code: str, message: str, key: str) -> None:
        super().__init__(f"{operation} {key!r}: HTTP {status} {code} {message}".rstrip())
        self.operation = operation
        self.status = status
        self.code = code
        self.key = key


class PreconditionFailed(S3Error):
    """A conditional write found another version than expected: someone else changed it."""


class NotFound(S3Error):
    pass


class S3Unavailable(Exception):
    """No answer from S3 after every retry (network down, endpoint wrong, credentials absent)."""


class ResponseTooLarge(S3Unavailable):
    """An answer longer than it may be, announced or sent: a broken or hostile endpoint. The
    response was closed, not read on; no more than `limit` bytes of it were kept."""

    def __init__(self, what: str, limit: int, announced: int | None = None) -> None:
        size = f"announces {announced} bytes" if announced is not None else "sends more"
        super().__init__(f"{what}: the answer {size}, over the limit of {limit} bytes")
        self.limit = limit
        self.announced = announced


class BodyChanged(Exception):
    """The local file changed while its content was being sent; the upload was abandoned."""


def error_for(operation: str, status: int, code: str, message: str, key: str) -> S3Error:
    if status == 412 or code == "PreconditionFailed":
        return PreconditionFailed(operation, status, code, message, key)
    if status == 404 and code in ("", "NoSuchKey", "NoSuchUpload", "NotFound"):
        return NotFound(operation, status, code, message, key)
    return S3Error(operation, status, code, message, key)


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
