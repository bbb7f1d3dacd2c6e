"""What a request to any AWS service can raise, whatever the service says: no answer after
every retry (`Unavailable`, with `ResponseTooLarge` for an answer over its bound), an answer that
is not HTTP (`MalformedAnswer`), and a streamed body that gave up because its source changed
(`BodyChanged`). A service's own refusals are its client's types (s3/errors.py, sqs.py)."""

from __future__ import annotations

import aiohttp


class Unavailable(Exception):
    """No answer after every retry (network down, endpoint wrong, credentials absent)."""


class ResponseTooLarge(Unavailable):
    """An answer longer than it may be, announced or sent: a broken or hostile endpoint. The
    response was closed, not read on; no more than `limit` bytes of it were kept."""

    def __init__(self, what: str, limit: int, announced: int | None = None) -> None:
        size = f"announces {announced} bytes" if announced is not None else "sends more"
        super().__init__(f"{what}: the answer {size}, over the limit of {limit} bytes")
        self.limit = limit
        self.announced = announced


class MalformedAnswer(aiohttp.ClientError):
    """The server's answer is not valid HTTP/1.1 (llhttp refused it), or uses a framing we never
    asked for; the connection was closed. Retried like any connection failure."""


class BodyChanged(Exception):
    """The local file changed while its content was being sent; the upload was abandoned."""


def describe(error: BaseException) -> str:
    """An error's type and message, for logs (the message alone when it is the type's name)."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
