"""The registry cache in front of the real registry client and the dev registry server, with a
clock the test moves (so expiry is exact, and no test waits for time to pass)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from devtools.registry import DevRegistry, publish_rule
from shared.adapters.registry import ResourceRegistryClient
from shared.core.model import CacheOutcome, Lookup
from shared.core.ports import RegistryUnavailable, TooManyLookups
from shared.core.registry_cache import (
    FAILURE_BACKOFF_SECONDS,
    REFRESH_AHEAD_FRACTION,
    SUMMARY_INTERVAL_SECONDS,
    CachedPolicyRules,
)
from tests.support import Clock

TTL, NEGATIVE_TTL, STALE = 300.0, 30.0, 3600.0
TTD = ("urn:altinn:org", "ttd")


@pytest.fixture
async def cache(
    registry_client: ResourceRegistryClient, clock: Clock
) -> AsyncIterator[CachedPolicyRules]:
    cache = CachedPolicyRules(
        registry_client,
        ttl=TTL,
        negative_ttl=NEGATIVE_TTL,
        stale=STALE,
        max_entries=100,
        clock=clock,
    )
    yield cache
    await cache.close()


async def test_second_lookup_is_a_hit_without_a_registry_call(
    cache: CachedPolicyRules, registry: DevRegistry
) -> None:
    first = await cache.lookup("demo-events")
    second = await cache.lookup("demo-events")
    assert (first.outcome, second.outcome) == (CacheOutcome.MISS, CacheOutcome.HIT)
    assert second.rules == first.rules
    assert first.rules
    assert registry.requests["demo-events"] == 1


async def test_expiry_makes_exactly_one_call(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    await cache.lookup("demo-events")
    clock.now += TTL
    outcomes = [(await cache.lookup("demo-events")).outcome for _ in range(5)]
    assert outcomes == [CacheOutcome.MISS] + [CacheOutcome.HIT] * 4
    assert registry.requests["demo-events"] == 2


async def test_rule_change_is_honoured_after_the_ttl(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    before = (await cache.lookup("demo-events")).rules
    registry.rules["demo-events"] = [publish_rule("demo-events", ("urn:altinn:org", "skd"))]
    clock.now += TTL - 1
    assert (await cache.lookup("demo-events")).rules == before
    clock.now += 1
    after = (await cache.lookup("demo-events")).rules
    assert after is not None
    assert after[0].subject[0].value == "skd"


async def test_not_found_is_cached_for_the_negative_ttl(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    results = [await cache.lookup("unregistered") for _ in range(50)]
    assert all(result.rules is None for result in results)
    assert registry.requests["unregistered"] == 1
    clock.now += NEGATIVE_TTL
    await cache.lookup("unregistered")
    assert registry.requests["unregistered"] == 2


async def test_a_registration_is_seen_once_the_negative_entry_expires(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    assert (await cache.lookup("new-resource")).rules is None
    registry.rules["new-resource"] = [publish_rule("new-resource", TTD)]
    clock.now += NEGATIVE_TTL
    assert (await cache.lookup("new-resource")).rules


async def test_concurrent_misses_share_one_call(
    cache: CachedPolicyRules, registry: DevRegistry
) -> None:
    registry.delay_seconds = 0.2  # keep the first call open while the others arrive
    results = await asyncio.gather(*(cache.lookup("demo-events") for _ in range(100)))
    assert registry.requests["demo-events"] == 1
    assert all(result.rules == results[0].rules for result in results)
    assert {result.outcome for result in results} == {CacheOutcome.MISS}


async def test_a_cancelled_waiter_does_not_cancel_the_others(
    cache: CachedPolicyRules, registry: DevRegistry
) -> None:
    registry.delay_seconds = 0.2
    first = asyncio.ensure_future(cache.lookup("demo-events"))
    second = asyncio.ensure_future(cache.lookup("demo-events"))
    await asyncio.sleep(0)  # let both start waiting on the one call
    first.cancel()
    assert (await second).rules
    assert first.cancelled()
    assert registry.requests["demo-events"] == 1


async def test_stale_rules_serve_while_the_registry_is_down_then_fail_closed(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    good = (await cache.lookup("demo-events")).rules
    registry.fail_status = 500
    clock.now += TTL
    stale = await cache.lookup("demo-events")
    assert (stale.outcome, stale.rules) == (CacheOutcome.STALE, good)

    clock.now += STALE - 1
    assert (await cache.lookup("demo-events")).outcome is CacheOutcome.STALE
    clock.now += 1
    with pytest.raises(RegistryUnavailable):
        await cache.lookup("demo-events")
    assert cache.stats.stale == 2
    assert cache.stats.errors == 3


async def test_registry_recovery_replaces_stale_rules(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    await cache.lookup("demo-events")
    registry.fail_status = 503
    clock.now += TTL
    assert (await cache.lookup("demo-events")).outcome is CacheOutcome.STALE
    registry.fail_status = None
    clock.now += FAILURE_BACKOFF_SECONDS
    assert (await cache.lookup("demo-events")).outcome is CacheOutcome.MISS
    assert (await cache.lookup("demo-events")).outcome is CacheOutcome.HIT


async def test_failures_back_off_instead_of_hammering_the_registry(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    registry.fail_status = 500
    for _ in range(20):
        with pytest.raises(RegistryUnavailable):
            await cache.lookup("demo-events")
    assert registry.requests["demo-events"] == 1
    clock.now += FAILURE_BACKOFF_SECONDS
    with pytest.raises(RegistryUnavailable):
        await cache.lookup("demo-events")
    assert registry.requests["demo-events"] == 2


async def test_a_stale_not_found_is_not_served(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    assert (await cache.lookup("unregistered")).rules is None
    registry.fail_status = 500
    clock.now += NEGATIVE_TTL
    with pytest.raises(RegistryUnavailable):
        await cache.lookup("unregistered")


async def test_slow_registry_with_a_stale_entry_answers_from_it(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    await cache.lookup("demo-events")
    registry.delay_seconds = 2  # beyond the client's 0.5 s limit
    clock.now += TTL
    assert (await cache.lookup("demo-events")).outcome is CacheOutcome.STALE


async def test_hot_entries_refresh_in_the_background(
    cache: CachedPolicyRules, registry: DevRegistry, clock: Clock
) -> None:
    await cache.lookup("demo-events")
    registry.rules["demo-events"] = [publish_rule("demo-events", ("urn:altinn:org", "skd"))]
    registry.delay_seconds = 0.2
    clock.now += TTL * REFRESH_AHEAD_FRACTION
    answered = await asyncio.wait_for(cache.lookup("demo-events"), timeout=0.1)
    assert answered.outcome is CacheOutcome.HIT  # the request did not wait for the refresh
    assert answered.rules is not None
    assert answered.rules[0].subject[0].value == "ttd"
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*pending)
    assert registry.requests["demo-events"] == 2
    refreshed = (await cache.lookup("demo-events")).rules
    assert refreshed is not None
    assert refreshed[0].subject[0].value == "skd"
    assert cache.stats.background_refreshes == 1


async def test_size_is_bounded_least_recently_used_first(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    cache = CachedPolicyRules(
        registry_client, ttl=TTL, negative_ttl=NEGATIVE_TTL, stale=STALE, max_entries=3, clock=clock
    )
    for name in ("a", "b", "c", "d"):
        registry.rules[name] = [publish_rule(name, TTD)]
    for name in ("a", "b", "c"):
        await cache.lookup(name)
    await cache.lookup("a")  # a is now the most recently used
    await cache.lookup("d")  # evicts b
    assert len(cache) == 3
    assert cache.stats.evictions == 1
    await cache.lookup("a")
    await cache.lookup("b")
    assert registry.requests["a"] == 1
    assert registry.requests["b"] == 2


async def test_a_summary_is_logged_at_debug_level_once_a_minute(
    cache: CachedPolicyRules, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="events.registry"):
        await cache.lookup("demo-events")
        await cache.lookup("demo-events")
        clock.now += SUMMARY_INTERVAL_SECONDS
        await cache.lookup("unregistered")
        await cache.lookup("demo-events")
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert summaries == [
        "registry cache: entries=1 last_good=0 not_found=0 hits=1 misses=1 stale=0 errors=0 "
        "evictions=0 background_refreshes=0 limited=0"
    ]


# -- a flood of made-up resources, and rules pushed out by other rules ---------------------------


def small_cache(
    registry_client: ResourceRegistryClient, clock: Clock, **options: int
) -> CachedPolicyRules:
    return CachedPolicyRules(
        registry_client,
        ttl=TTL,
        negative_ttl=NEGATIVE_TTL,
        stale=STALE,
        clock=clock,
        **{"max_entries": 2, **options},
    )


async def test_a_flood_of_unknown_resources_does_not_evict_good_rules(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    """The reviewer's flood: a small cache, one good lookup, more unknown resources than the
    cache holds, then the registry goes down: the good resource is still answered."""
    cache = small_cache(registry_client, clock, max_negative_entries=3)
    good = (await cache.lookup("demo-events")).rules
    for number in range(10):
        assert (await cache.lookup(f"made-up-{number}")).rules is None
    assert cache.sizes()["not_found"] == 3  # bounded on its own
    registry.fail_status = 503
    clock.now += TTL  # the good entry is no longer fresh: only its stale rules can answer
    answered = await cache.lookup("demo-events")
    assert (answered.outcome, answered.rules) == (CacheOutcome.STALE, good)
    await cache.close()


async def test_rules_pushed_out_by_other_rules_still_serve_stale_for_the_whole_window(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    cache = small_cache(registry_client, clock)
    for name in ("r1", "r2", "r3", "r4"):
        registry.rules[name] = [publish_rule(name, TTD)]
    good = (await cache.lookup("demo-events")).rules
    for name in ("r1", "r2", "r3"):  # three more with rules: demo-events leaves the fresh cache
        await cache.lookup(name)
    assert cache.sizes()["rules"] == 2
    assert cache.sizes()["last_good"] == 2  # demo-events and r1
    registry.fail_status = 500
    clock.now += TTL + STALE - 1
    assert (await cache.lookup("demo-events")) == Lookup(good, CacheOutcome.STALE)
    clock.now += 1 + FAILURE_BACKOFF_SECONDS
    with pytest.raises(RegistryUnavailable):  # the window is over: fail closed
        await cache.lookup("demo-events")
    await cache.close()


async def test_a_resource_that_becomes_unknown_loses_its_last_good_rules(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    cache = small_cache(registry_client, clock)
    await cache.lookup("demo-events")
    del registry.rules["demo-events"]
    clock.now += TTL
    assert (await cache.lookup("demo-events")).rules is None
    registry.fail_status = 500
    clock.now += NEGATIVE_TTL
    with pytest.raises(RegistryUnavailable):
        await cache.lookup("demo-events")
    await cache.close()


async def test_one_publisher_may_look_up_only_so_many_new_resources_a_minute(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    cache = small_cache(registry_client, clock, max_entries=100, lookups_per_minute=3)
    for number in range(3):
        await cache.lookup(f"new-{number}", requester="ttd")
    with pytest.raises(TooManyLookups) as caught:
        await cache.lookup("new-3", requester="ttd")
    assert caught.value.retry_after_seconds == 20  # one lookup comes back every 60/3 s
    assert registry.total_requests == 3
    # cached answers cost nothing, and another publisher has a budget of its own
    assert (await cache.lookup("new-0", requester="ttd")).outcome is CacheOutcome.HIT
    assert (await cache.lookup("new-3", requester="skd")).rules is None
    clock.now += 20
    assert (await cache.lookup("new-4", requester="ttd")).rules is None
    with pytest.raises(TooManyLookups):
        await cache.lookup("new-5", requester="ttd")
    assert cache.stats.limited == 2
    await cache.close()


async def test_joining_a_lookup_in_progress_costs_nothing(
    registry_client: ResourceRegistryClient, registry: DevRegistry, clock: Clock
) -> None:
    cache = small_cache(registry_client, clock, max_entries=100, lookups_per_minute=1)
    registry.delay_seconds = 0.2
    results = await asyncio.gather(
        *(cache.lookup("demo-events", requester="ttd") for _ in range(20))
    )
    assert {result.outcome for result in results} == {CacheOutcome.MISS}
    assert registry.requests["demo-events"] == 1
    await cache.close()
