"""`Syncer`s in this process, on folders under a test's temporary folder, against its bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.bucket import Bucket
from support.s3_server import REGION


class Syncers:
    """Starts `Syncer`s (on `folder` unless told another) polling every 0.3 s unless told;
    `stop_all` stops every one started."""

    def __init__(self, folder: Path, bucket: Bucket) -> None:
        self.folder = folder
        self.bucket = bucket
        self.started: list[Any] = []

    async def start(
        self,
        directory: Path | None = None,
        prefix: str = "",
        endpoint: str | None = None,
        **kwargs: Any,
    ) -> Any:
        from sidecar import Syncer

        folder = directory if directory is not None else self.folder
        folder.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("download_interval", 0.3)
        syncer = Syncer(
            str(folder),
            self.bucket.name,
            endpoint or self.bucket.server.endpoint_pattern,
            REGION,
            prefix=prefix,
            **kwargs,
        )
        self.started.append(syncer)
        await syncer.start()
        syncer.folder = folder  # type: ignore[attr-defined]
        return syncer

    async def stop_all(self) -> None:
        for syncer in self.started:
            await syncer.stop(timeout=30)
