"""A cache of Resource Registry answers per resource identifier, shared by all requests.

- Positive answers (rules) are fresh for ``ttl``; "not found" for ``negative_ttl``.
- Concurrent misses for one identifier share one registry call (single-flight).
- A hot entry is refreshed in the background shortly before it expires; no request waits for it.
- When a refresh fails, the last good rules keep serving for up to ``stale`` seconds past their
  expiry (stale-if-error); with nothing usable the lookup fails (the caller answers 503).
- After a failed call the registry is not asked again about that identifier for
  ``FAILURE_BACKOFF_SECONDS``, so an outage does not turn into a stampede.
- At most ``max_entries`` identifiers are kept, least recently used evicted first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shared.registry import PolicyRule, PolicyRuleSource, RegistryUnavailable

log = logging.getLogger("events.registry")

#: Refresh in the background once an entry has lived this share of its time to live.
REFRESH_AHEAD_FRACTION = 0.8
FAILURE_BACKOFF_SECONDS = 1.0
SUMMARY_INTERVAL_SECONDS = 60.0

Rules = tuple[PolicyRule, ...] | None  # None: the registry does not know the resource


class CacheOutcome(Enum):
    HIT = "hit"  # answered from a fresh entry
    MISS = "miss"  # answered by a registry call this request waited for
    STALE = "stale"  # the registry failed; answered from an expired entry


@dataclass(frozen=True, slots=True)
class Lookup:
    rules: Rules
    outcome: CacheOutcome


@dataclass(slots=True)
class _Entry:
    rules: Rules
    fetched_at: float
    fresh_until: float
    usable_until: float  # fresh_until plus the stale window (positive answers only)


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    evictions: int = 0
    background_refreshes: int = 0

    def summary(self, entries: int) -> str:
        return (
            f"registry cache: entries={entries} hits={self.hits} misses={self.misses} "
            f"stale={self.stale} errors={self.errors} evictions={self.evictions} "
            f"background_refreshes={self.background_refreshes}"
        )


class CachedPolicyRules:
    """Wraps a ``PolicyRuleSource`` (the registry client) with the policy described above."""

    def __init__(
        self,
        source: PolicyRuleSource,
        *,
        ttl: float,
        negative_ttl: float,
        stale: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._stale = stale
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, asyncio.Task[Rules]] = {}
        self._failed_at: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._last_summary = clock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    async def rules_for(self, identifier: str) -> Rules:
        return (await self.lookup(identifier)).rules

    async def lookup(self, identifier: str) -> Lookup:
        """The rules for ``identifier``, and how they were found; RegistryUnavailable if none."""
        now = self._clock()
        self._maybe_log_summary(now)
        entry = self._entries.get(identifier)
        if entry is not None:
            self._entries.move_to_end(identifier)
            if now < entry.fresh_until:
                self.stats.hits += 1
                self._maybe_refresh_ahead(identifier, entry, now)
                return Lookup(entry.rules, CacheOutcome.HIT)

        if self._backing_off(identifier, now):
            return self._stale_or_raise(identifier, RegistryUnavailable("recent registry failure"))
        try:
            rules = await self._fetch_shared(identifier)
        except RegistryUnavailable as error:
            self.stats.errors += 1
            lookup = self._stale_or_raise(identifier, error)
            log.warning(
                "registry unavailable (%s); serving the rules of %s from %.0f s ago until %.0f s "
                "past their expiry",
                error,
                identifier,
                self._clock() - self._entries[identifier].fetched_at,
                self._stale,
            )
            return lookup
        self.stats.misses += 1
        return Lookup(rules, CacheOutcome.MISS)

    def _stale_or_raise(self, identifier: str, error: RegistryUnavailable) -> Lookup:
        entry = self._entries.get(identifier)
        if entry is not None and entry.rules is not None and self._clock() < entry.usable_until:
            self.stats.stale += 1
            return Lookup(entry.rules, CacheOutcome.STALE)
        raise error

    def _backing_off(self, identifier: str, now: float) -> bool:
        failed_at = self._failed_at.get(identifier)
        return failed_at is not None and now - failed_at < FAILURE_BACKOFF_SECONDS

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
            self._failed_at[identifier] = self._clock()
            raise
        self._failed_at.pop(identifier, None)
        self._store(identifier, rules)
        return rules

    def _store(self, identifier: str, rules: Rules) -> None:
        now = self._clock()
        fresh_until = now + (self._ttl if rules is not None else self._negative_ttl)
        usable_until = fresh_until + (self._stale if rules is not None else 0.0)
        self._entries[identifier] = _Entry(rules, now, fresh_until, usable_until)
        self._entries.move_to_end(identifier)
        while len(self._entries) > self._max_entries:
            evicted, _ = self._entries.popitem(last=False)
            self._failed_at.pop(evicted, None)
            self.stats.evictions += 1

    def _maybe_refresh_ahead(self, identifier: str, entry: _Entry, now: float) -> None:
        if entry.rules is None or identifier in self._flights:
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
            log.debug(self.stats.summary(len(self._entries)))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
