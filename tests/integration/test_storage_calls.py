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
    # One reservation transaction per partition (8 partitions of one publisher) and one commit
    # transaction per partition, a few more where lingering commits split: 16 to 18 measured.
    "batch of 100 new events": (20, 100),
    # One refused transaction per partition, then the reads of the next generation's commits
    # (at most 14 keys per query): 16 to 20 measured. Ids spread over the 8 partitions by
    # their digest, so at most 7 partitions hold more than 14 of 100: 8 + 8 + 7 = 23 at worst.
    "batch of 100 replays": (23, 0),
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
