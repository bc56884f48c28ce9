"""Every map in the registry cache is bounded, whatever a publisher sends: the decision logic
alone, against a registry stand-in in memory (the real client is tested over HTTP in
tests/integration/test_registry_cache.py)."""

from __future__ import annotations

import pytest

from shared.core.model import Attribute, PolicyRule
from shared.core.ports import TooManyLookups
from shared.core.registry_cache import RULES_PER_ENTRY, CachedPolicyRules, LookupBudget
from tests.support import Clock

RULE = PolicyRule(
    subject=(Attribute("urn:altinn:org", "ttd"),),
    action=Attribute("urn:oasis:names:tc:xacml:1.0:action:action-id", "publish"),
    resource=(Attribute("urn:altinn:resource", "demo-events"),),
)


class Registry:
    """Knows every identifier that starts with ``rules-`` and gives it ``size`` rules."""

    def __init__(self, size: int = 1) -> None:
        self.size = size

    async def rules_for(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        return (RULE,) * self.size if identifier.startswith("rules-") else None


async def test_not_found_answers_are_bounded_apart_from_the_rules(clock: Clock) -> None:
    cache = CachedPolicyRules(
        Registry(), ttl=300, negative_ttl=30, stale=3600, max_entries=5,
        max_negative_entries=50, clock=clock,
    )  # fmt: skip
    for number in range(5):
        await cache.lookup(f"rules-{number}")
    for number in range(10_000):
        assert (await cache.lookup(f"unknown-{number}")).rules is None
    assert cache.sizes() | {"failed_at": 0} == {
        "rules": 5, "last_good": 0, "not_found": 50, "failed_at": 0, "flights": 0, "publishers": 0
    }  # fmt: skip
    assert cache.stats.evictions == 0


async def test_rule_stores_are_bounded_in_rules_not_only_in_entries(clock: Clock) -> None:
    """One entry may hold hundreds of rules: the stores count rules, so memory stays bounded."""
    cache = CachedPolicyRules(
        Registry(size=RULES_PER_ENTRY * 4), ttl=300, negative_ttl=30, stale=3600,
        max_entries=10, clock=clock,
    )  # fmt: skip
    for number in range(30):
        await cache.lookup(f"rules-{number}")
    sizes = cache.sizes()
    # 10 entries' worth of rules (80) in each store: two entries of 32 rules each
    assert (sizes["rules"], sizes["last_good"]) == (2, 2)
    assert cache.stats.evictions == 28


def test_lookup_budget_refills_evenly_and_forgets_the_least_recently_seen(clock: Clock) -> None:
    budget = LookupBudget(60, clock=clock, max_publishers=3)
    for _ in range(60):
        budget.take("ttd")
    with pytest.raises(TooManyLookups) as caught:
        budget.take("ttd")
    assert caught.value.retry_after_seconds == 1
    clock.now += 1.0
    budget.take("ttd")
    for publisher in ("a", "b", "c"):
        budget.take(publisher)
    assert len(budget) == 3  # ttd, the least recently seen, was forgotten
    for _ in range(60):
        budget.take("ttd")  # ... so it starts again with a full bucket
