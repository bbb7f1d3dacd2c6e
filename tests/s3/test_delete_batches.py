"""`DeleteBatches` (s3/deletes.py): the group commit of the passes' deletes, over a recording
`send` (DeleteObjects) and `alone` (DeleteObject) that the test holds and answers. Pure
scheduling: the end-to-end batches against moto's server are in tests/sync/test_deletes.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sidecar.s3.conditions import Condition, Conditions, EtagForm, Findings, Verdict
from sidecar.s3.deletes import LIMIT, DeleteBatches
from sidecar.s3.errors import PreconditionFailed, S3Error


class Store:
    """What the batches ask of S3, recorded; each DeleteObjects answers `failed`, and the
    first alone delete waits until `release` is set (so others pile up behind it)."""

    def __init__(self, failed: dict[str, str] | None = None) -> None:
        self.alone: list[str] = []
        self.sent: list[list[tuple[str, str | None]]] = []  # each DeleteObjects' keys
        self.failed = failed or {}
        self.release = asyncio.Event()
        self.refuse: S3Error | None = None
        self.batcher: DeleteBatches

    async def send(self, items: Sequence[tuple[str, str | None]]) -> dict[str, str]:
        self.sent.append(list(items))
        if self.refuse is not None:
            raise self.refuse
        return {key: code for key, code in self.failed.items() if key in dict(items)}

    def deleting(self, key: str) -> asyncio.Future[None]:
        async def alone() -> None:
            self.alone.append(key)
            if len(self.alone) == 1:
                await self.release.wait()

        return asyncio.ensure_future(self.batcher.delete(key, "e-" + key, alone))


def conditions(verdict: Verdict = Verdict.HONOURED) -> Conditions:
    found = Findings(EtagForm.QUOTED, {Condition.DELETE_OBJECTS_IF_MATCH: verdict})

    async def probe() -> Findings:
        return found

    return Conditions(probe)


def make(store: Store, verdict: Verdict = Verdict.HONOURED) -> DeleteBatches:
    store.batcher = DeleteBatches(store.send, conditions(verdict))
    return store.batcher


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def behind_a_first(store: Store, keys: Sequence[str]) -> list[object]:
    """A first delete, held under way; `keys` deleted meanwhile; then it is let go. Each
    key's outcome (None, or what it raised)."""
    first = store.deleting("first")
    await settle()
    waiting = [store.deleting(key) for key in keys]
    await settle()
    store.release.set()
    outcomes = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert outcomes[0] is None
    return outcomes[1:]


async def test_a_lone_delete_goes_at_once_alone() -> None:
    store = Store()
    make(store)
    store.release.set()
    await store.deleting("a")
    assert store.alone == ["a"] and store.sent == []


async def test_deletes_made_while_one_is_under_way_go_together() -> None:
    store = Store()
    make(store)
    first = store.deleting("first")
    await settle()
    waiting = [store.deleting(f"k{n}") for n in range(5)]
    await settle()
    assert store.sent == []  # nothing sent while the first is under way
    store.release.set()
    assert await asyncio.gather(first, *waiting) == [None] * 6
    assert store.alone == ["first"]
    assert store.sent == [[(f"k{n}", f"e-k{n}") for n in range(5)]]


async def test_each_key_gets_its_own_outcome() -> None:
    store = Store({"changed": "PreconditionFailed", "gone": "NoSuchKey", "busy": "SlowDown"})
    make(store)
    keys = ["changed", "gone", "busy", "fine"]
    by_key = dict(zip(keys, await behind_a_first(store, keys), strict=True))
    assert isinstance(by_key["changed"], PreconditionFailed)
    assert by_key["changed"].key == "changed"
    assert by_key["gone"] is None and by_key["fine"] is None
    assert by_key["busy"] is None  # sent again alone, which deleted it
    assert store.alone == ["first", "busy"]


async def test_an_endpoint_that_refuses_deleteobjects_is_not_asked_again() -> None:
    store = Store()
    store.refuse = S3Error("DeleteObjects", 501, "NotImplemented", "", "")
    make(store)
    assert await behind_a_first(store, ["a", "b"]) == [None, None]
    assert store.alone == ["first", "a", "b"] and len(store.sent) == 1
    later = [store.deleting(key) for key in ("c", "d")]
    await asyncio.gather(*later)
    assert store.alone[-2:] == ["c", "d"] and len(store.sent) == 1


async def test_a_failed_batch_fails_each_of_its_deletes() -> None:
    store = Store()
    store.refuse = S3Error("DeleteObjects", 503, "SlowDown", "", "")
    make(store)
    outcomes = await behind_a_first(store, ["a", "b"])
    assert all(isinstance(outcome, S3Error) for outcome in outcomes)


async def test_a_delete_cancelled_while_waiting_is_left_out_of_its_batch() -> None:
    store = Store()
    make(store)
    first = store.deleting("first")
    await settle()
    kept, dropped = store.deleting("kept"), store.deleting("dropped")
    await settle()
    dropped.cancel()
    await settle()
    store.release.set()
    await asyncio.gather(first, kept)
    assert store.sent == [] and store.alone == ["first", "kept"]  # a batch of one goes alone


@pytest.mark.parametrize("verdict", [Verdict.IGNORED, Verdict.UNKNOWN, Verdict.REFUSED])
async def test_conditional_deletes_go_alone_where_the_etag_is_not_honoured(
    verdict: Verdict,
) -> None:
    store = Store()
    make(store, verdict)
    assert await behind_a_first(store, ["a", "b"]) == [None, None]
    assert store.sent == [] and store.alone == ["first", "a", "b"]


async def test_keys_xml_cannot_carry_go_alone() -> None:
    store = Store()
    make(store)
    keys = ["line\nbreak", "tab\tkey", "plain-1", "plain-2"]
    assert await behind_a_first(store, keys) == [None] * 4
    assert store.sent == [[("plain-1", "e-plain-1"), ("plain-2", "e-plain-2")]]
    assert sorted(store.alone) == sorted(["first", "line\nbreak", "tab\tkey"])


async def test_a_batch_holds_at_most_the_limit() -> None:
    store = Store()
    make(store)
    await behind_a_first(store, [f"k{n}" for n in range(LIMIT + 5)])
    assert [len(batch) for batch in store.sent] == [LIMIT, 5]


async def test_close_ends_the_batch_under_way_and_its_waiters() -> None:
    store = Store()
    batcher = make(store)
    gate = asyncio.Event()

    async def slow(items: Sequence[tuple[str, str | None]]) -> dict[str, str]:
        await gate.wait()
        return {}

    batcher._send = slow
    first = store.deleting("first")
    await settle()
    waiting = [store.deleting(key) for key in ("a", "b")]
    await settle()
    store.release.set()
    await first
    await settle()
    await batcher.close()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
