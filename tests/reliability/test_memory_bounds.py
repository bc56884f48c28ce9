"""Memory stays bounded when a publisher makes the registry cache look up 200,000 distinct
resources while the registry fails: the decision logic alone, against a failing registry
stand-in in memory (tests/unit/test_registry_cache_bounds.py has the other bounds)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from devtools.azurite import ROOT
from shared.core.model import PolicyRule
from shared.core.ports import RegistryUnavailable
from shared.core.registry_cache import MAX_FAILURE_RECORDS, CachedPolicyRules
from tests.support import Clock


class FailingRegistry:
    async def rules_for(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        raise RegistryUnavailable("down")


async def failing_lookups(
    cache: CachedPolicyRules, clock: Clock, numbers: range, step: float = 0.0
) -> int:
    """Look up made-up resources while the registry fails; how many failed (all should)."""
    failed = 0
    for number in numbers:
        clock.now += step
        try:
            await cache.lookup(f"made-up-resource-{number:08d}", requester=f"org{number % 7}")
        except RegistryUnavailable:
            failed += 1
    return failed


def failing_cache(clock: Clock) -> CachedPolicyRules:
    return CachedPolicyRules(
        FailingRegistry(),
        ttl=300,
        negative_ttl=30,
        stale=3600,
        max_entries=1000,
        lookups_per_minute=100_000,
        clock=clock,
    )


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def probe(clock: Clock) -> dict[str, int]:
    """200,000 failing lookups in one instant (so only the bound on failure records holds, not
    their expiry), with the memory measured after 20,000 and after all of them."""
    cache = failing_cache(clock)
    failed = await failing_lookups(cache, clock, range(20_000))
    gc.collect()
    after_20k = resident_bytes()
    failed += await failing_lookups(cache, clock, range(20_000, 200_000))
    gc.collect()
    return {"failed": failed, "after_20k": after_20k, "after_200k": resident_bytes()} | {
        f"size_{name}": size for name, size in cache.sizes().items()
    }


def test_200000_distinct_failing_resources_leave_memory_bounded() -> None:
    """In a fresh interpreter, so that nothing else in the test session allocates meanwhile."""
    script = (
        "import asyncio, json; from tests.support import Clock; "
        "from tests.reliability.test_memory_bounds import probe; "
        "print(json.dumps(asyncio.run(probe(Clock()))))"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(output)
    assert result["failed"] == 200_000
    assert result["size_failed_at"] == MAX_FAILURE_RECORDS
    assert (result["size_flights"], result["size_publishers"]) == (0, 7)
    # Ten times the failures, and no more memory: the old cache kept every failing id (41.6 MB
    # in the review; its resident size grew by 22 MB here).
    growth = result["after_200k"] - result["after_20k"]
    assert growth < 2_000_000, result


async def test_failure_records_last_only_as_long_as_the_back_off(clock: Clock) -> None:
    cache = failing_cache(clock)
    assert await failing_lookups(cache, clock, range(5_000), step=0.01) == 5_000
    assert cache.sizes()["failed_at"] == 100  # the last second's worth
