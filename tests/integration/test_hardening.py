"""Edges found by attacking the running endpoint (docs/errors.md states each rule), through the
real function handler and Azurite: a batch whose table and queue are slow is still answered
within EVENTS_BATCH_TIMEOUT_SECONDS, with per-element answers that are true; a media type that
no storage call would carry is a 400, not a 503, in every mode; and a repeated ``ce-`` header is
refused however the host joined it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devtools.stack import LocalStack
from shared.adapters.blobs import StorageBlobStore
from shared.app.runtime import current_runtime
from shared.cloudevents.attributes import check_media_type
from shared.core.model import StoredData
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader
from tests.support.faults import Fault, FaultProxy

BATCH = "application/cloudevents-batch+json"
BINARY = {
    "ce-specversion": "1.0",
    "ce-id": "binary-1",
    "ce-source": "https://example.org/orders/42",
    "ce-type": "no.example.order.created",
    "ce-resource": "urn:altinn:resource:demo-events",
}


async def settled(seconds: float = 30) -> None:
    """Every send and record write the last publishes left running has ended."""
    await current_runtime().pipeline.close(seconds)


# -- a batch within its time ---------------------------------------------------------------------


async def publish_slowly(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    queue_proxy: FaultProxy,
    *,
    table_seconds: float,
    queue_seconds: float,
    batch_timeout: float,
) -> tuple[list[dict[str, Any]], dict[str, set[str]], list[str]]:
    """A batch of 100 with every table and queue call answered late: the events, the ids by
    answer (published, timed out, maybe), and what was queued once all work had ended."""
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200  # makes the tables
    await settled()
    queue.drain()
    table_proxy.add(Fault.DELAY, seconds=table_seconds, times=None)
    queue_proxy.add(Fault.DELAY, seconds=queue_seconds, times=None)
    events = [{**VALID_EVENT, "id": f"slow-{n}"} for n in range(100)]
    started = time.monotonic()
    answer = await post(json.dumps(events).encode(), content_type=BATCH)
    took = time.monotonic() - started
    # a bound on the contract (the deadline, and the answer's bookkeeping), not a speed figure
    assert took < batch_timeout + 3, took
    assert answer.status_code == 207
    results = json.loads(answer.get_body())["results"]
    assert [entry["id"] for entry in results] == [event["id"] for event in events]
    published = {r["id"] for r in results if r["status"] == 200}
    timed_out = {
        r["id"]
        for r in results
        if r["status"] == 503 and r["problem"]["type"].endswith(":batch-timeout")
    }
    maybe = {r["id"] for r in results} - published - timed_out
    assert timed_out, "most elements had not started by the deadline"
    for entry in results:
        if entry["id"] in maybe:
            assert entry["status"] == 503
            assert "may have been stored" in entry["problem"]["detail"]
    await settled()  # the sends under way at the deadline go on to their end
    table_proxy.clear()
    queue_proxy.clear()
    queued = [message["id"] for message in queue.drain()]
    assert len(queued) == len(set(queued))
    assert published <= set(queued), "every 200 is on the queue"
    assert not timed_out & set(queued), "no batch-timeout element was sent"
    assert set(queued) <= published | maybe
    return events, {"published": published, "timed_out": timed_out, "maybe": maybe}, queued


async def test_a_batch_with_the_findings_slow_table_and_queue_is_answered_in_time(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    queue_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The finding: a table answering in 4 s and a queue in 2.5 s made a batch of 100 take
    38.7 s, past the host's 30 s. With EVENTS_BATCH_TIMEOUT_SECONDS=8 the answer comes at about
    8 s, and each element's answer is true once its work has ended: a 200 is on the queue, a
    503 batch-timeout is not. (A table slower than every budget also defeats de-duplication:
    docs/idempotency.md says what a retry then does.)"""
    monkeypatch.setenv("EVENTS_BATCH_TIMEOUT_SECONDS", "8")
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", "3")
    await publish_slowly(
        post, queue, table_proxy, queue_proxy, table_seconds=4, queue_seconds=2.5, batch_timeout=8
    )


async def test_a_whole_batch_retried_after_its_deadline_queues_nothing_twice(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    queue_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slow, but within each call's budget: the batch times out part way, and the publisher
    retries all of it. Those published are replayed, the rest published now: each once."""
    monkeypatch.setenv("EVENTS_BATCH_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", "3")
    events, _, queued = await publish_slowly(
        post, queue, table_proxy, queue_proxy, table_seconds=1, queue_seconds=1.5, batch_timeout=5
    )
    again = await post(json.dumps(events).encode(), content_type=BATCH)
    assert again.status_code == 200, again.get_body()[:500]
    replayed = {r["id"] for r in json.loads(again.get_body())["results"] if r.get("replayed")}
    assert replayed == set(queued)
    requeued = [message["id"] for message in queue.drain()]
    assert sorted(queued + requeued) == sorted(event["id"] for event in events)


# -- media types no storage call would carry -----------------------------------------------------


NON_ASCII = 'text/plain; x="\u00e9"'


async def test_a_non_ascii_media_type_is_400_in_every_mode(post: Post, queue: QueueReader) -> None:
    structured = await post({**VALID_EVENT, "datacontenttype": NON_ASCII})
    binary = await post(b"hello", content_type=NON_ASCII, headers=BINARY)
    batch = await post(
        json.dumps([{**VALID_EVENT, "datacontenttype": NON_ASCII}]).encode(), content_type=BATCH
    )
    for answer in (structured, binary):
        assert answer.status_code == 400
        assert "ASCII" in problem_of(answer)["errors"]["datacontenttype"][0]
    assert batch.status_code == 207
    [entry] = json.loads(batch.get_body())["results"]
    assert entry["status"] == 400
    assert "ASCII" in entry["problem"]["errors"]["datacontenttype"][0]
    assert queue.drain() == []


@pytest.fixture(scope="module")
def blob_store(stack: LocalStack) -> Iterator[tuple[asyncio.AbstractEventLoop, StorageBlobStore]]:
    """The endpoint's own blob adapter on a container of this module's, and the loop it runs
    in (hypothesis calls the test synchronously, once per example)."""
    loop = asyncio.new_event_loop()

    async def connect() -> StorageBlobStore:
        store = StorageBlobStore.connect(
            connection_string=stack.azurite.connection_string,
            account_url=None,
            container=f"headers-{uuid.uuid4().hex[:12]}",
        )
        assert store is not None
        return store

    store = loop.run_until_complete(connect())
    try:
        yield loop, store
    finally:
        loop.run_until_complete(store.close())
        loop.close()


_MEDIA_TYPES = st.builds(
    lambda essence, name, value: f"{essence}; {name}={value}",
    st.sampled_from(["text/plain", "application/json", "application/vnd.x+json", "image/png"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,7}", fullmatch=True),
    st.text(max_size=10).map(lambda text: '"' + text.replace('"', "").replace("\\", "") + '"')
    | st.text(min_size=1, max_size=10),
) | st.text(max_size=30)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_MEDIA_TYPES)
@example(value=NON_ASCII)  # the finding
@example(value='text/plain; x="\x7f"')
def test_every_media_type_validation_accepts_is_one_a_blob_can_carry(
    blob_store: tuple[asyncio.AbstractEventLoop, StorageBlobStore], value: str
) -> None:
    """The class of the finding, not its instance: ``datacontenttype`` is the only validated
    value that reaches a storage header (a claim-checked blob's Content-Type; blob names are
    ours, metadata fixed); whatever validation accepts, the endpoint's blob adapter stores in
    the real blob service, so no client error becomes a 503."""
    if check_media_type(value) is not None:
        return
    loop, store = blob_store
    loop.run_until_complete(store.put(uuid.uuid4().hex, StoredData(b"x", value, "data")))


# -- a repeated ce- header -----------------------------------------------------------------------


@pytest.mark.parametrize("joined", ["first,second", "first, second"], ids=["host", "comma-space"])
async def test_a_repeated_ce_header_is_refused_whichever_way_it_was_joined(
    post: Post, queue: QueueReader, joined: str
) -> None:
    """The Functions host joins repeated header lines with "," (docs/errors.md, "Binary
    mode"); a proxy in front of it may join them with ", ". Both are refused."""
    answer = await post(b"{}", content_type="application/json", headers={**BINARY, "ce-id": joined})
    assert answer.status_code == 400
    assert "only once" in problem_of(answer)["errors"]["id"][0]
    assert queue.drain() == []


async def test_a_comma_in_a_ce_header_can_be_sent_encoded(post: Post, queue: QueueReader) -> None:
    answer = await post(
        b"{}", content_type="application/json", headers={**BINARY, "ce-id": "a%2Cb"}
    )
    assert answer.status_code == 200
    [event] = queue.drain()
    assert event["id"] == "a,b"
