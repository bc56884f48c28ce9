"""A cache of Resource Registry answers per resource identifier, shared by all requests.

- Rules are fresh for ``ttl``; "not registered" (404) for ``negative_ttl``.
- Concurrent misses for one identifier share one registry call (single-flight).
- A hot entry is refreshed in the background shortly before it expires; no request waits for it.
- When a refresh fails, the last good rules keep serving for up to ``stale`` seconds past their
  expiry (stale-if-error); with nothing usable the lookup fails (the caller answers 503).
- After a failed call the registry is not asked again about that identifier for
  ``FAILURE_BACKOFF_SECONDS``, so an outage does not turn into a stampede.
- One publisher may cause at most ``lookups_per_minute`` registry calls for identifiers that are
  not cached (a token bucket of that size, refilled over a minute); beyond it the lookup fails
  with ``TooManyLookups`` (the caller answers 429).

Memory is bounded in every map, and a flood of made-up identifiers cannot push out what a
publisher had a right to:

- ``_rules``: resources with rules, at most ``max_entries`` and ``RULES_PER_ENTRY`` times as many
  rules, least recently used evicted first. Only other resources *with rules* can evict one.
- ``_last_good``: the rules of a resource evicted from ``_rules`` while still within their stale
  window, kept for that window: as many again, oldest evicted first.
- ``_not_found``: "not registered" answers, at most ``max_negative_entries``, apart from the
  rules, so no number of unknown identifiers evicts a single rule.
- ``_failed_at``: when each recently failed identifier failed, only within the back-off window
  and at most ``MAX_FAILURE_RECORDS``.
- ``_flights``: registry calls in progress, at most ``MAX_FLIGHTS`` (beyond: 503).
- the per-publisher buckets: at most ``MAX_PUBLISHERS`` publishers, least recently seen evicted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.core.model import CacheOutcome, Lookup, PolicyRule, Rules
from shared.core.ports import RegistryUnavailable, RuleSource, TooManyLookups

log = logging.getLogger("events.registry")

#: Refresh in the background once an entry has lived this share of its time to live.
REFRESH_AHEAD_FRACTION = 0.8
FAILURE_BACKOFF_SECONDS = 1.0
SUMMARY_INTERVAL_SECONDS = 60.0
MAX_FAILURE_RECORDS = 10_000
MAX_FLIGHTS = 1_000
MAX_PUBLISHERS = 10_000
#: The rule stores hold at most this many rules per entry they may hold, on average.
RULES_PER_ENTRY = 8


@dataclass(slots=True)
class _Entry:
    rules: tuple[PolicyRule, ...]
    fetched_at: float
    fresh_until: float
    usable_until: float  # fresh_until plus the stale window


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    evictions: int = 0
    background_refreshes: int = 0
    limited: int = 0

    def summary(self, rules: int, last_good: int, not_found: int) -> str:
        return (
            f"registry cache: entries={rules} last_good={last_good} not_found={not_found} "
            f"hits={self.hits} misses={self.misses} stale={self.stale} errors={self.errors} "
            f"evictions={self.evictions} background_refreshes={self.background_refreshes} "
            f"limited={self.limited}"
        )


class _RuleStore:
    """Entries with rules, least recently used first, bounded in entries and in rules.

    A policy's size is up to the registry (one entry can hold hundreds of rules), so counting
    entries alone would bound nothing; the rule count bounds memory (docs: about 0.3 KB a rule).
    """

    def __init__(self, max_entries: int, max_rules: int) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_rules = max_rules
        self.rule_count = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identifier: str) -> _Entry | None:
        return self._entries.get(identifier)

    def touch(self, identifier: str) -> None:
        self._entries.move_to_end(identifier)

    def put(self, identifier: str, entry: _Entry) -> list[tuple[str, _Entry]]:
        """Store ``entry`` as the most recently used; return what was evicted to make room."""
        self.pop(identifier)
        self._entries[identifier] = entry
        self.rule_count += len(entry.rules)
        evicted = []
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_entries or self.rule_count > self._max_rules
        ):
            oldest, old_entry = self._entries.popitem(last=False)
            self.rule_count -= len(old_entry.rules)
            evicted.append((oldest, old_entry))
        return evicted

    def pop(self, identifier: str) -> _Entry | None:
        entry = self._entries.pop(identifier, None)
        if entry is not None:
            self.rule_count -= len(entry.rules)
        return entry


class LookupBudget:
    """Per publisher, a bucket of ``per_minute`` registry lookups, refilled evenly over a minute.

    Two floats per publisher, for at most ``max_publishers`` publishers (least recently seen
    forgotten first: a forgotten publisher starts again with a full bucket).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float],
        max_publishers: int = MAX_PUBLISHERS,
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_publishers = max_publishers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, publisher: str) -> None:
        """Spend one lookup, or raise TooManyLookups saying when the next one is available."""
        now = self._clock()
        tokens, updated = self._buckets.pop(publisher, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - updated) * self._rate)
        if tokens < 1.0:
            self._buckets[publisher] = (tokens, now)
            raise TooManyLookups(max(1, math.ceil((1.0 - tokens) / self._rate)))
        self._buckets[publisher] = (tokens - 1.0, now)
        while len(self._buckets) > self._max_publishers:
            self._buckets.popitem(last=False)


class CachedPolicyRules:
    """Wraps a ``RuleSource`` (the registry client) with the policy described above."""

    def __init__(
        self,
        source: RuleSource,
        *,
        ttl: float,
        negative_ttl: float,
        stale: float,
        max_entries: int,
        max_negative_entries: int | None = None,
        lookups_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._stale = stale
        self._max_entries = max_entries
        self._max_negative_entries = max_negative_entries or max_entries
        self._clock = clock
        max_rules = max_entries * RULES_PER_ENTRY
        self._rules = _RuleStore(max_entries, max_rules)
        self._last_good = _RuleStore(max_entries, max_rules)
        self._not_found: OrderedDict[str, float] = OrderedDict()  # identifier -> fresh until
        self._flights: dict[str, asyncio.Task[Rules]] = {}
        self._failed_at: OrderedDict[str, float] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._budget = LookupBudget(lookups_per_minute, clock=clock) if lookups_per_minute else None
        self._last_summary = clock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._rules)

    def sizes(self) -> dict[str, int]:
        """How many items each map holds (for tests and the summary line)."""
        return {
            "rules": len(self._rules),
            "last_good": len(self._last_good),
            "not_found": len(self._not_found),
            "failed_at": len(self._failed_at),
            "flights": len(self._flights),
            "publishers": len(self._budget) if self._budget is not None else 0,
        }

    async def rules_for(self, identifier: str) -> Rules:
        return (await self.lookup(identifier)).rules

    def cached(self, identifier: str) -> Lookup | None:
        """The rules for ``identifier`` when memory has a fresh answer (a hit); None when the
        registry must be asked (or stale rules served), which only ``lookup`` does."""
        now = self._clock()
        self._maybe_log_summary(now)
        entry = self._rules.get(identifier)
        if entry is not None:
            self._rules.touch(identifier)
            if now < entry.fresh_until:
                self.stats.hits += 1
                self._maybe_refresh_ahead(identifier, entry, now)
                return Lookup(entry.rules, CacheOutcome.HIT)
        else:
            not_found_until = self._not_found.get(identifier)
            if not_found_until is not None:
                if now < not_found_until:
                    self.stats.hits += 1
                    return Lookup(None, CacheOutcome.HIT)
                del self._not_found[identifier]
        return None

    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        """The rules for ``identifier``, and how they were found.

        Raises RegistryUnavailable when there is no answer to trust, and TooManyLookups when
        the answer needs a registry call that ``requester`` (a publisher) has no budget for.
        """
        found = self.cached(identifier)
        if found is not None:
            return found
        now = self._clock()
        if self._backing_off(identifier, now):
            return self._stale_or_raise(identifier, RegistryUnavailable("recent registry failure"))
        if identifier not in self._flights:
            self._admit(requester)
        try:
            rules = await self._fetch_shared(identifier)
        except RegistryUnavailable as error:
            self.stats.errors += 1
            lookup = self._stale_or_raise(identifier, error)
            log.warning(
                "registry unavailable (%s); serving the rules of %s until %.0f s past their expiry",
                error,
                identifier,
                self._stale,
            )
            return lookup
        self.stats.misses += 1
        return Lookup(rules, CacheOutcome.MISS)

    def _admit(self, requester: str | None) -> None:
        """A new registry call is about to start: charge it to the publisher, within limits."""
        if len(self._flights) >= MAX_FLIGHTS:
            raise RegistryUnavailable(f"{MAX_FLIGHTS} registry calls already in progress")
        if requester is not None and self._budget is not None:
            try:
                self._budget.take(requester)
            except TooManyLookups:
                self.stats.limited += 1
                raise

    def _usable(self, identifier: str) -> _Entry | None:
        entry = self._rules.get(identifier) or self._last_good.get(identifier)
        return entry if entry is not None and self._clock() < entry.usable_until else None

    def _stale_or_raise(self, identifier: str, error: RegistryUnavailable) -> Lookup:
        entry = self._usable(identifier)
        if entry is None:
            raise error
        self.stats.stale += 1
        return Lookup(entry.rules, CacheOutcome.STALE)

    def _backing_off(self, identifier: str, now: float) -> bool:
        failed_at = self._failed_at.get(identifier)
        return failed_at is not None and now - failed_at < FAILURE_BACKOFF_SECONDS

    def _record_failure(self, identifier: str) -> None:
        now = self._clock()
        self._failed_at.pop(identifier, None)
        self._failed_at[identifier] = now  # kept in the order they failed: oldest first
        while self._failed_at:
            oldest, failed_at = next(iter(self._failed_at.items()))
            if len(self._failed_at) <= MAX_FAILURE_RECORDS and (
                now - failed_at < FAILURE_BACKOFF_SECONDS
            ):
                break
            del self._failed_at[oldest]

    async def _fetch_shared(self, identifier: str) -> Rules:
        """One registry call per identifier at a time; every concurrent caller gets its result."""
        flight = self._flights.get(identifier)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(identifier))
            self._flights[identifier] = flight
            flight.add_done_callback(lambda _: self._flights.pop(identifier, None))
        # shield: a caller that gives up (its request was cancelled) must not cancel the others'
        return await asyncio.shield(flight)

    async def _fetch(self, identifier: str) -> Rules:
        try:
            rules = await self._source.rules_for(identifier)
        except RegistryUnavailable:
            self._record_failure(identifier)
            raise
        self._failed_at.pop(identifier, None)
        if rules is None:
            self._store_not_found(identifier)
        else:
            self._store_rules(identifier, rules)
        return rules

    def _store_rules(self, identifier: str, rules: tuple[PolicyRule, ...]) -> None:
        now = self._clock()
        fresh_until = now + self._ttl
        self._not_found.pop(identifier, None)
        self._last_good.pop(identifier)
        entry = _Entry(rules, now, fresh_until, fresh_until + self._stale)
        for evicted, old_entry in self._rules.put(identifier, entry):
            self.stats.evictions += 1
            if now < old_entry.usable_until:
                self._last_good.put(evicted, old_entry)

    def _store_not_found(self, identifier: str) -> None:
        # The registry says the resource is gone: its old rules must not serve, even stale.
        self._rules.pop(identifier)
        self._last_good.pop(identifier)
        self._not_found.pop(identifier, None)
        self._not_found[identifier] = self._clock() + self._negative_ttl
        while len(self._not_found) > self._max_negative_entries:
            self._not_found.popitem(last=False)

    def _maybe_refresh_ahead(self, identifier: str, entry: _Entry, now: float) -> None:
        if identifier in self._flights or len(self._flights) >= MAX_FLIGHTS:
            return
        if now - entry.fetched_at < self._ttl * REFRESH_AHEAD_FRACTION:
            return
        if self._backing_off(identifier, now):
            return
        task = asyncio.ensure_future(self._refresh_in_background(identifier))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_in_background(self, identifier: str) -> None:
        self.stats.background_refreshes += 1
        try:
            await self._fetch_shared(identifier)
        except RegistryUnavailable as error:
            self.stats.errors += 1
            log.warning("background refresh of %s failed: %s", identifier, error)

    def _maybe_log_summary(self, now: float) -> None:
        if now - self._last_summary >= SUMMARY_INTERVAL_SECONDS:
            self._last_summary = now
            log.debug(
                self.stats.summary(len(self._rules), len(self._last_good), len(self._not_found))
            )

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
