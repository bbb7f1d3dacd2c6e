"""An EC2 instance metadata service shaped like IMDSv2, on 127.0.0.1, for the credential chain's
tests: `PUT /latest/api/token` (with `X-aws-ec2-metadata-token-ttl-seconds`) hands out a session
token; every `GET` without a live token is refused 401, as on an instance that requires IMDSv2;
`/latest/meta-data/iam/security-credentials/` names the role and `.../<role>` hands out its
credentials (`issue`, e.g. a fresh AssumeRole on moto each time) with the lifetime the test sets.
Everything it was asked is counted, so a test can tell what the sidecar did."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

ROLE = "s3sync-instance-role"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Imds:
    def __init__(self, issue: Callable[[], Awaitable[dict[str, str]]]) -> None:
        self.issue = issue  # the credentials to hand out: AccessKeyId, SecretAccessKey, Token
        self.lifetime = 3600.0  # seconds from a fetch to the Expiration handed out
        self.role = ROLE  # the instance profile's role, as the listing names it
        self.tokens: dict[str, float] = {}  # live session tokens: time.monotonic() they end
        self.puts = 0
        self.gets = 0
        self.unauthorized = 0  # GETs without a live token
        self.handed: list[dict[str, str]] = []  # credentials handed out, in order
        self.headers_seen: list[dict[str, str]] = []  # of each request for credentials
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/latest/api/token", self._token)
        app.router.add_get("/latest/meta-data/iam/security-credentials/", self._roles)
        app.router.add_get("/latest/meta-data/iam/security-credentials/{role}", self._credentials)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def revoke_tokens(self) -> None:
        """Every session token handed out stops working (as when it expires)."""
        self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        self.puts += 1
        try:
            ttl = int(request.headers.get(TTL_HEADER, ""))
        except ValueError:
            return web.Response(status=400)
        if not 1 <= ttl <= 21600:
            return web.Response(status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + ttl
        return web.Response(text=token, headers={TTL_HEADER: str(ttl)})

    def _authorized(self, request: web.Request) -> bool:
        self.gets += 1
        ends = self.tokens.get(request.headers.get(TOKEN_HEADER, ""))
        if ends is None or time.monotonic() >= ends:
            self.unauthorized += 1
            return False
        return True

    async def _roles(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        return web.Response(text=self.role)

    async def _credentials(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        self.headers_seen.append(dict(request.headers))
        if request.match_info["role"] != self.role:
            return web.Response(status=404)
        document = dict(await self.issue())
        document["Code"] = "Success"
        document["Type"] = "AWS-HMAC"
        document["LastUpdated"] = iso(datetime.now(UTC))
        document["Expiration"] = iso(datetime.now(UTC) + timedelta(seconds=self.lifetime))
        self.handed.append(document)
        return web.json_response(document)
