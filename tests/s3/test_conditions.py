"""What the endpoint honours of the conditions the sidecar's writes carry (s3/conditions.py), as
the probe finds it on each server the tests know (s3/probe.py), and what a `Conditions` does
with it: the form ETags are sent in, the HEAD right before a write whose condition is not
honoured, the ETag an answer left out. The probe runs against moto and Ceph RGW; the rules of
`Conditions` are tested on their own, with a look that is a plain function."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.bucket import Bucket
from support.metrics import metric
from support.s3_server import REGION, S3Server
from support.waiting import eventually, in_thread

from sidecar.aws.credentials import Credentials, StaticCredentials
from sidecar.aws.http import HttpClient
from sidecar.core.keys import probe_prefix
from sidecar.metrics import Metrics
from sidecar.s3 import probe as probe_module
from sidecar.s3.client import S3Client, s3_requests
from sidecar.s3.conditions import Condition, Conditions, EtagForm, Findings, Look, Verdict
from sidecar.s3.endpoint import Endpoint
from sidecar.s3.errors import PreconditionFailed
from sidecar.s3.probe import probe

# What each server is known to do (measured: moto 5 with the tests' copy If-Match patch,
# tests/support/moto_server.py; Ceph RGW 16.2.15). The README's "Tested S3 servers" says the same.
EXPECTED = {
    "moto": (
        EtagForm.QUOTED,
        {
            Condition.PUT_IF_MATCH: Verdict.HONOURED,
            Condition.PUT_IF_NONE_MATCH: Verdict.HONOURED,
            Condition.DELETE_IF_MATCH: Verdict.HONOURED,
            Condition.DELETE_OBJECTS_IF_MATCH: Verdict.HONOURED,
            Condition.COPY_SOURCE_IF_MATCH: Verdict.HONOURED,
            Condition.COPY_IF_NONE_MATCH: Verdict.HONOURED,
            Condition.COMPLETE_IF_MATCH: Verdict.IGNORED,
            Condition.COMPLETE_IF_NONE_MATCH: Verdict.HONOURED,
        },
    ),
    "rgw": (
        EtagForm.BARE,
        {
            Condition.PUT_IF_MATCH: Verdict.HONOURED,
            Condition.PUT_IF_NONE_MATCH: Verdict.HONOURED,
            Condition.DELETE_IF_MATCH: Verdict.IGNORED,
            Condition.DELETE_OBJECTS_IF_MATCH: Verdict.IGNORED,
            Condition.COPY_SOURCE_IF_MATCH: Verdict.IGNORED,
            Condition.COPY_IF_NONE_MATCH: Verdict.IGNORED,
            Condition.COMPLETE_IF_MATCH: Verdict.IGNORED,
            Condition.COMPLETE_IF_NONE_MATCH: Verdict.IGNORED,
        },
    ),
}


@pytest.fixture
async def plain_client(s3_server: S3Server, bucket: Bucket) -> AsyncIterator[S3Client]:
    """Our S3 client on the test bucket, built without a probe (it sends what it is told)."""
    http = HttpClient()
    endpoint = Endpoint.parse(s3_server.endpoint_pattern, bucket.name)
    credentials = StaticCredentials(
        Credentials(s3_server.access_key_id, s3_server.secret_access_key)
    )
    requests = s3_requests(http, endpoint, region=REGION, credentials=credentials, metrics=None)
    yield S3Client(requests, endpoint, bucket.name)
    await http.close()


@pytest.mark.any_s3
async def test_the_probe_finds_what_each_server_honours(
    s3_server: S3Server, bucket: Bucket, plain_client: S3Client
) -> None:
    bucket.put("data/kept.txt", b"a user's object")
    prefix = probe_prefix("data/", ".s3sync-sidecar")
    findings = await probe(plain_client, prefix)
    form, verdicts = EXPECTED[s3_server.name]
    assert findings.form is form
    assert findings.form_known
    assert dict(findings.verdicts) == verdicts
    # Only its own key was touched, and it is gone.
    assert await in_thread(bucket.list_keys) == ["data/kept.txt"]
    assert await in_thread(bucket.get, "data/kept.txt") == b"a user's object"


@pytest.mark.any_s3
async def test_the_probe_clears_keys_left_by_a_probe_that_died(
    bucket: Bucket, plain_client: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = probe_prefix("", ".s3sync-sidecar")
    bucket.put(prefix + "left-by-a-killed-sidecar", b"probe")
    bucket.put(".s3sync-sidecar/state-of-someone-else", b"not a probe key")
    monkeypatch.setattr(probe_module, "LEFTOVER_AGE", -1)  # any probe key counts as old
    await probe(plain_client, prefix)
    assert await in_thread(bucket.list_keys) == [".s3sync-sidecar/state-of-someone-else"]


@pytest.mark.any_s3
async def test_a_syncer_says_what_the_server_honours_once(
    syncer_factory, s3_server: S3Server, bucket: Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    """Learned before the first conditional write, logged once, exported in /metrics; another
    sidecar's probe key in the listing is neither synced nor counted as skipped."""
    bucket.put(".s3sync-sidecar/probe-of-another-sidecar", b"probe")
    syncer = await syncer_factory()
    for name in ("a.txt", "b.txt"):
        (syncer.folder / name).write_bytes(b"written here")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 3))
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    form, verdicts = EXPECTED[s3_server.name]
    for condition, verdict in verdicts.items():
        assert metric(syncer, "s3sync_s3_condition", condition=condition.value) == 1
        assert (
            metric(
                syncer,
                "s3sync_s3_condition",
                condition=condition.value,
                s3sync_s3_condition=verdict.value,
            )
            == 1
        ), condition
    assert metric(syncer, "s3sync_s3_if_match_form", s3sync_s3_if_match_form=form.value) == 1
    said = [r.getMessage() for r in caplog.records if "honour" in r.getMessage()]
    assert len(said) == 1, said
    assert not (syncer.folder / ".s3sync-sidecar" / "probe-of-another-sidecar").exists()
    assert metric(syncer, "s3sync_skipped_paths_total") == 0
    assert metric(syncer, "s3sync_s3_requests_total", operation="PutObject") == 2


async def test_a_stop_during_the_probe_ends_it_before_the_connections_close(
    syncer_factory, bucket: Bucket, proxy
) -> None:
    """The probe hangs (its first PUT is never answered) while an upload waits for it; the stop
    ends the probe and waits for it before closing the connections (chaos seed 43 on RGW: a
    probe left running tried to delete its key on a closed client, a traceback at exit)."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    proxy.faults.methods = {"PUT"}
    proxy.faults.hang = True
    (syncer.folder / "waits.txt").write_bytes(b"waits for the probe")
    await eventually(lambda: proxy.seen["PUT"] >= 1, what="the probe's first PUT")
    conditions = syncer._running().s3.conditions
    probing = conditions._probing
    assert probing is not None and not probing.done()
    await syncer.stop(timeout=1)
    assert probing.done()
    assert await in_thread(bucket.list_keys) == []


# -- the rules, with a look that is a plain function -------------------------------------------


def _ignoring_everything() -> Conditions:
    async def probed() -> Findings:
        return Findings(EtagForm.BARE, dict.fromkeys(Condition, Verdict.IGNORED))

    return Conditions(probed, Metrics())


async def test_an_ignored_condition_is_checked_with_a_look_first() -> None:
    conditions = _ignoring_everything()
    held = "a" * 32

    async def look() -> str | None:
        return held

    headers = await conditions.headers("DeleteObject", "k", held, False, look)
    assert headers == {"If-Match": held}  # still sent, bare as learned
    with pytest.raises(PreconditionFailed):
        await conditions.headers("DeleteObject", "k", "b" * 32, False, look)
    with pytest.raises(PreconditionFailed):  # If-None-Match: * where an object is there
        await conditions.headers("PutObject", "k", None, True, look)
    assert await conditions.headers("PutObject", "k", None, False, look) == {}


async def test_an_answer_without_an_etag_is_completed_by_a_look_after() -> None:
    conditions = _ignoring_everything()
    ours, theirs = "c" * 32 + "-2", "d" * 32

    def finds(etag: str | None) -> Look:
        async def look() -> str | None:
            return etag

        return look

    assert await conditions.answered("Complete", "k", "", ours, finds(ours)) == ours
    assert await conditions.answered("Complete", "k", "e" * 32, ours, finds(None)) == "e" * 32
    with pytest.raises(PreconditionFailed):  # another client's version is there already
        await conditions.answered("Complete", "k", "", ours, finds(theirs))
    with pytest.raises(PreconditionFailed):
        await conditions.answered("Complete", "k", "", ours, finds(None))


async def test_the_quoted_form_is_given_up_once_where_the_probe_could_not_tell() -> None:
    async def denied() -> Findings:
        return Findings(EtagForm.QUOTED, form_known=False)

    conditions = Conditions(denied)
    await conditions.ready()
    assert conditions.header("e" * 32) == f'"{"e" * 32}"'
    assert conditions.refused_as_sent("PutObject") is True
    assert conditions.header("e" * 32) == "e" * 32
    assert conditions.refused_as_sent("PutObject") is False


async def test_a_form_the_probe_proved_is_kept() -> None:
    async def proved() -> Findings:
        return Findings(EtagForm.QUOTED, dict.fromkeys(Condition, Verdict.HONOURED))

    conditions = Conditions(proved)
    await conditions.ready()
    assert conditions.refused_as_sent("PutObject") is False
    assert conditions.header("e" * 32) == f'"{"e" * 32}"'
