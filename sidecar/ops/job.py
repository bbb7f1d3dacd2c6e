"""What an operation is given and what it can end with: the job it carries out (`Job`), what it
may ask to be looked at again (`Followup`), and the ways it can find the world changed
(`LocalChanged`, `RemoteChanged`, `IntegrityError`) or S3's bytes out of reach (`Archived`).
Every operation has one signature, `async (Job) -> None` (`Operation`).

An operation never calls another, nor back into scheduling. What must be looked at again in
another pass (a conflict copy to upload, a parent directory whose last child went) it adds to
`job.followups`, which the pipeline submits even when the operation fails halfway. What must
follow in this pass, on the same facts (a conflict won locally: the local version goes up), it
leaves in `job.then`, which the executor runs next as the decision it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..core.model import Hint
from ..core.reconcile import Decision, Facts
from ..core.state import PathState


class LocalChanged(Exception):
    """The local path is no longer what the decision saw: decide again."""


class RemoteChanged(Exception):
    """S3 no longer holds what the decision saw: learn what it holds, and decide again."""


class IntegrityError(Exception):
    """S3 stored something other than what we sent (or sent something other than it claims)."""


class Archived(Exception):
    """S3 holds the object (`etag`) in an archive storage class: its bytes cannot be read until
    it is restored in S3. Known from what S3 said of it (`RemoteEntry.archived`), or from a
    GET it refused (403 InvalidObjectState)."""

    def __init__(self, rel: str, etag: str) -> None:
        super().__init__(f"{rel!r} is archived in S3: it can be read once it is restored")
        self.rel = rel
        self.etag = etag


@dataclass(frozen=True, slots=True)
class Followup:
    """A path to look at again because of what an operation did: a local change (`hint`: what
    changed) for the upload pool, or with `remote`, a consequence of S3's for the download pool."""

    rel: str
    hint: Hint = Hint.NONE
    remote: bool = False


@dataclass(slots=True)
class Job:
    """One decision to carry out, with what it was decided on."""

    rel: str
    facts: Facts
    decision: Decision
    ps: PathState
    gen: int  # the path's IN_MODIFY count when the decision was made
    followups: list[Followup] = field(default_factory=list)
    then: Decision | None = None  # carried out next, in this pass, on these facts


Operation = Callable[[Job], Awaitable[None]]


__all__ = [
    "Archived",
    "Followup",
    "IntegrityError",
    "Job",
    "LocalChanged",
    "Operation",
    "RemoteChanged",
]
