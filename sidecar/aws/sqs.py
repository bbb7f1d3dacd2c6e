"""The three SQS calls the change feed needs (ReceiveMessage, DeleteMessageBatch,
GetQueueAttributes), over SQS's JSON protocol, on the one signed-request path (signed.py) with
SQS's rules (`SQS_RULES`: a refusal is a JSON document naming its `__type`).

No retries here (`attempts=1`): the caller (`feed.ChangeFeed`) is a loop that backs off and says
when the queue is failing. An expired credential is refreshed once, as for S3. Every failure is a
`QueueError`.

Whatever the messages hold, each can be received (and so deleted): answers are read up to
`ANSWER_LIMIT`, enough for one message of SQS's largest size (1 MiB) as JSON escapes it at worst,
so that a hostile endpoint cannot exhaust memory; ten such messages do not fit, so after an
answer over the limit the next `ONE_AT_A_TIME` receives ask for one message each (the ten come
back after the queue's visibility timeout). An answer is decoded as UTF-8 with the bytes that
are not UTF-8 kept as lone surrogates (`surrogateescape`): a body holding such bytes is the
parser's to refuse (events.py), and never stops the answer's other messages being read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .credentials import CredentialsProvider
from .errors import ResponseTooLarge, Unavailable
from .http import Answer, HttpClient, Origin
from .signed import Refusal, SignedRequests

# One message of SQS's largest size (1 MiB) escaped at worst (6 bytes a byte: "\u0001"), with room
ANSWER_LIMIT = 8 * 1024 * 1024
ONE_AT_A_TIME = 10  # receives of one message each, after an answer over ANSWER_LIMIT
LONG_POLL = 20  # seconds: SQS's longest wait

_REGION_IN_HOST = re.compile(r"^(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com")
_CREDENTIAL_ERRORS = ("ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException")


class QueueError(Exception):
    """SQS refused or could not be reached. `code` is SQS's error name ("" when unreachable)."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.status = status

    @property
    def kind(self) -> str:
        """For the errors metric: unreachable, denied, missing, throttled or error."""
        if not self.status:
            return "unreachable"
        if self.status == 403 or "AccessDenied" in self.code:
            return "denied"
        if "NonExistentQueue" in self.code or "QueueDoesNotExist" in self.code:
            return "missing"
        if self.status == 429 or "Throttl" in self.code or "OverLimit" in self.code:
            return "throttled"
        return "error"


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    receipt: str
    body: str


@dataclass(frozen=True, slots=True)
class QueueUrl:
    url: str
    scheme: str
    host: str  # the Host header
    region: str | None  # from an AWS host name; None for any other endpoint

    @classmethod
    def parse(cls, url: str) -> QueueUrl:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        segments = [segment for segment in parts.path.split("/") if segment]
        if len(segments) != 2:
            raise ValueError("must end in /<account id>/<queue name>")
        match = _REGION_IN_HOST.match(parts.hostname)
        return cls(url.strip(), parts.scheme, parts.netloc, match.group(1) if match else None)


class SqsRules:
    """SQS's refusals: JSON documents; an unknown or expired credential is refreshed once."""

    service = "sqs"

    def refusal(self, method: str, answer: Answer) -> Refusal:
        try:
            document = json.loads(answer.body) if answer.body else None
        except (ValueError, RecursionError):  # deep nesting from a hostile endpoint
            document = None
        code, message = _error(document, answer.status)
        return Refusal(
            code,
            message,
            retry=answer.status >= 500 or answer.status == 429,
            refresh=code in _CREDENTIAL_ERRORS,
        )

    def error(self, operation: str, subject: str, status: int, refusal: Refusal) -> QueueError:
        return QueueError(refusal.code, f"{operation}: {refusal.message}", status)


SQS_RULES = SqsRules()


def sqs_requests(
    http: HttpClient,
    queue: QueueUrl,
    *,
    region: str,
    credentials: CredentialsProvider,
    origin: Origin | None = None,
) -> SignedRequests:
    """The signed-request path to `queue` (in the region its host names, else `region`), at
    `origin` when the SDKs' endpoint variables name one, else at the queue URL's host."""
    return SignedRequests(
        http=http,
        origin=origin if origin is not None else Origin(queue.scheme, queue.host),
        region=queue.region or region,
        credentials=credentials,
        rules=SQS_RULES,
        limit=ANSWER_LIMIT,
        error_limit=ANSWER_LIMIT,
        attempts=1,
    )


class QueueClient:
    def __init__(self, requests: SignedRequests, queue: QueueUrl) -> None:
        self._requests = requests
        self.queue = queue
        self._one_at_a_time = 0  # receives left that ask for one message (after one too large)

    async def receive(self, *, wait: int = LONG_POLL, limit: int = 10) -> list[Message]:
        """Up to `limit` messages (one while the answers are too large for more, see above)."""
        single = self._one_at_a_time > 0
        try:
            answer = await self._call(
                "ReceiveMessage",
                {"MaxNumberOfMessages": 1 if single else limit, "WaitTimeSeconds": wait},
                seconds=wait + 20,
            )
        except QueueError as error:
            if error.code == "AnswerTooLarge" and not single and limit > 1:
                self._one_at_a_time = ONE_AT_A_TIME
            raise
        if single:
            self._one_at_a_time -= 1
        messages = answer.get("Messages") or []
        if not isinstance(messages, list):
            raise QueueError("InvalidAnswer", "ReceiveMessage: Messages is not a list", 200)
        received: list[Message] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            receipt = message.get("ReceiptHandle")
            if not isinstance(receipt, str):
                continue
            body, name = message.get("Body"), message.get("MessageId")
            received.append(
                Message(
                    _loggable(name),
                    receipt,
                    body if isinstance(body, str) else "",
                )
            )
        return received

    async def delete(self, receipts: list[str]) -> int:
        """Delete messages by receipt handle (up to ten); how many SQS did not delete."""
        if not receipts:
            return 0
        entries = [{"Id": str(number), "ReceiptHandle": r} for number, r in enumerate(receipts)]
        answer = await self._call("DeleteMessageBatch", {"Entries": entries}, seconds=30)
        failed = answer.get("Failed") or []
        return len(failed) if isinstance(failed, list) else 0

    async def attributes(self) -> dict[str, str]:
        answer = await self._call(
            "GetQueueAttributes",
            {"AttributeNames": ["ApproximateNumberOfMessages", "MaximumMessageSize"]},
            seconds=30,
        )
        attributes = answer.get("Attributes") or {}
        return (
            {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        )

    async def _call(
        self, action: str, payload: dict[str, Any], *, seconds: float
    ) -> dict[str, Any]:
        body = json.dumps({"QueueUrl": self.queue.url, **payload}).encode()
        try:
            answer = await self._requests.request(
                action,
                "POST",
                "/",
                subject=self.queue.url,
                headers={
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": f"AmazonSQS.{action}",
                },
                body=body,
                payload_hash=hashlib.sha256(body).hexdigest(),
                seconds=seconds,
            )
        except ResponseTooLarge as error:
            raise QueueError("AnswerTooLarge", str(error), 200) from None
        except Unavailable as error:
            raise QueueError("", str(error)) from None
        try:
            text = answer.body.decode("utf-8", "surrogateescape") if answer.body else "{}"
            document = json.loads(text)
        except (ValueError, RecursionError):  # deep nesting from a hostile endpoint
            document = None
        if not isinstance(document, dict):
            raise QueueError(
                "InvalidAnswer", f"{action}: the answer is not a JSON object", answer.status
            )
        return document


def _error(answer: Any, status: int) -> tuple[str, str]:
    if isinstance(answer, dict):
        code = str(answer.get("__type") or answer.get("code") or "").rpartition("#")[2]
        message = str(answer.get("message") or answer.get("Message") or "")
        return code or f"HTTP{status}", message or f"HTTP {status}"
    return f"HTTP{status}", f"HTTP {status}"


def _loggable(name: Any) -> str:
    """A message's id, for the log only: what is not UTF-8 in it escaped, so that it can be
    written."""
    return name.encode("utf-8", "backslashreplace").decode() if isinstance(name, str) else ""
