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
    "batch of 100 new events": (200, 100),
    "batch of 100 replays": (200, 0),
    "batch of 100 copies of one event": (2, 1),  # one claim, one send, one commit
}


async def test_storage_requests_per_publish_do_not_grow(
    stack: LocalStack, registry: DevRegistry
) -> None:
    found = await count(stack, resource=RESOURCE)
    print("COUNTS", {k: (v.table, v.queue) for k, v in found.items()})
    assert set(found) == set(LIMITS)
    for scenario, (table, queue) in LIMITS.items():
        calls = found[scenario]
        assert calls.table <= table, (scenario, calls)
        assert calls.queue == queue, (scenario, calls)
