"""The claim check's blob service failing under load: stopped and restarted, frozen (SIGSTOP)
and resumed. Every event is larger than one queue message, so each publish writes a blob and
then a message. A 200 must mean both are stored (the message names the blob, and the blob holds
exactly the data); every other answer must be a 503 with Retry-After, and its event must not be
on the queue."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from tests.reliability.test_outages import Load, count, running
from tests.support import QueueReader

LARGE = 60 * 1024  # over one queue message (48 KiB of JSON): every publish is claim-checked


@pytest.fixture
def own_storage(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Azurite]:
    """An Azurite of the test's own (blob, queue and table), so that its blob service can be
    stopped and frozen alone; a 1 s budget per publish."""
    azurite = Azurite(services=("blob", "queue", "table"), location=tmp_path / "azurite").start()
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", azurite.connection_string)
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", "1")
    yield azurite
    azurite.stop()


def check_both_writes(load: Load, azurite: Azurite, queue_name: str) -> dict[str, int]:
    """Every 200 has its message, and the message's blob holds exactly the event's data; no
    refused event is on the queue; every refusal is a 503 with Retry-After."""
    messages = QueueReader(azurite.connection_string, queue_name).drain()
    acknowledged = {o.event_id for o in load.outcomes if o.status == 200}
    stored = Counter(message["id"] for message in messages)
    assert set(stored) == acknowledged, "a message without a 200, or a 200 without a message"
    assert max(stored.values()) == 1
    container = ContainerClient.from_connection_string(azurite.connection_string, "events-data")
    prefix = container.url.rstrip("/") + "/"
    for message in messages:
        assert "data" not in message
        content = container.download_blob(message["dataref"].removeprefix(prefix)).readall()
        assert content == load.event(message["id"])["data"].encode(), message["id"]
    refused = [o for o in load.outcomes if o.status != 200]
    assert {o.status for o in refused} <= {503}
    assert all(o.retry_after and int(o.retry_after) > 0 for o in refused)
    assert {o.problem for o in refused} <= {"blobs-unavailable"}
    blobs = sum(1 for _ in container.list_blobs())
    return {"messages": len(messages), "blobs": blobs}


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_no_200_without_both_writes_when_the_blob_service_fails(
    own_storage: Azurite, issuer: DevIssuer, queue_name: str, outage: str
) -> None:
    async with running(Load(issuer.mint(), data_bytes=LARGE)) as load:
        await load.until(lambda seen: count(seen, 200) >= 60)
        if outage == "stopped":
            await asyncio.to_thread(own_storage.stop_service, "blob")
        else:
            own_storage.pause("blob")  # connections are accepted, nothing answers
        failed_at = time.monotonic()
        await load.until(lambda seen: count(seen, 503, after=failed_at) >= 16)
        if outage == "stopped":
            await asyncio.to_thread(own_storage.start_service, "blob")
        else:
            own_storage.resume("blob")
        back_at = time.monotonic()
        await load.until(lambda seen: count(seen, 200, after=back_at) >= 60)
    outcomes = load.outcomes
    if outage == "frozen":
        slowest = max(o.seconds for o in outcomes if o.status == 503)
        assert slowest <= 1.0 + 1.0, "no answer is held much beyond its 1 s budget"
    figures = check_both_writes(load, own_storage, queue_name)
    print(  # reported with -s: the figures of this run
        f"blob service {outage}: {len(outcomes)} publishes of {LARGE} bytes, "
        f"{count(outcomes, 200)} acknowledged, {count(outcomes, 503)} refused with 503, "
        f"{figures['messages']} messages, {figures['blobs']} blobs "
        f"({figures['blobs'] - figures['messages']} of refused events, left to the lifecycle)"
    )
