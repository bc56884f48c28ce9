"""The storage requests a publish makes, counted from the outside through pass-through proxies
(tests/support/storagecalls.py): a test that fails when a count grows. docs/performance.md
reports the same counts from ``make bench``."""

from __future__ import annotations

from devtools.registry import DevRegistry
from devtools.stack import LocalStack
from tests.support import DEMO_IDENTIFIER
from tests.support.storagecalls import count

RESOURCE = f"urn:altinn:resource:{DEMO_IDENTIFIER}"

#: scenario: (most table requests, queue requests)
LIMITS = {
    "new event": (2, 1),  # the claim, and the commit after the answer
    "replay": (2, 0),  # the refused insert, and the read of the commit
    # Reads of the next generation (at most 14 keys per query, so at most 14 queries over the
    # 8 partitions of one publisher), one reservation transaction per partition, one commit
    # transaction per partition: 25 measured.
    "batch of 100 new events": (30, 100),
    # The reads alone: 8 to 14 queries, 9 measured.
    "batch of 100 replays": (14, 0),
    "batch of 100 copies of one event": (2, 1),  # one claim, one send, one commit
}


async def test_storage_requests_per_publish_do_not_grow(
    stack: LocalStack, registry: DevRegistry
) -> None:
    found = await count(stack, resource=RESOURCE)
    assert set(found) == set(LIMITS)
    for scenario, (table, queue) in LIMITS.items():
        calls = found[scenario]
        assert calls.table <= table, (scenario, calls)
        assert calls.queue == queue, (scenario, calls)
    new = found["batch of 100 new events"]
    assert (new.table + new.queue) / 100 <= 1.4, new  # storage requests per new event
