"""Dependencies failing under load: the queue stopped and restarted, the queue frozen (SIGSTOP),
the token issuer gone. Publishes run through the real function handler, concurrently; every
phase change waits for what the load observed, never for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
import pytest

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from shared.runtime import close_current_runtime
from tests.integration.conftest import publish_function
from tests.support import VALID_EVENT, QueueReader, body_of

QUEUE_BUDGET_SECONDS = 1.0


@dataclass
class Outcome:
    event_id: str
    status: int
    retry_after: str | None
    started: float
    finished: float

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class Load:
    """Publishes distinct events with ``concurrency`` workers until told to stop."""

    token: str
    concurrency: int = 8
    cap: int = 3000
    outcomes: list[Outcome] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    stopping: bool = False

    async def _worker(self, worker: int) -> None:
        sequence = 0
        while not self.stopping and len(self.outcomes) < self.cap:
            event_id = f"w{worker}-{sequence}"
            sequence += 1
            request = func.HttpRequest(
                "POST",
                "http://localhost/events",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/cloudevents+json",
                },
                body=body_of({**VALID_EVENT, "id": event_id}),
            )
            started = time.monotonic()
            response = await publish_function()(request)
            outcome = Outcome(
                event_id,
                response.status_code,
                response.headers.get("Retry-After"),
                started,
                time.monotonic(),
            )
            async with self.changed:
                self.outcomes.append(outcome)
                self.changed.notify_all()

    async def until(self, predicate: Callable[[list[Outcome]], bool]) -> None:
        """Wait until the outcomes so far satisfy ``predicate`` (within a minute)."""
        async with asyncio.timeout(60), self.changed:
            await self.changed.wait_for(lambda: predicate(self.outcomes))

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(n) for n in range(self.concurrency)))


@contextlib.asynccontextmanager
async def running(load: Load) -> AsyncIterator[Load]:
    """The load runs for the block; afterwards it stops, and the function's clients close."""
    task = asyncio.ensure_future(load.run())
    try:
        yield load
    finally:
        load.stopping = True
        await task
        await close_current_runtime()


def count(outcomes: list[Outcome], status: int, after: float = 0.0) -> int:
    return sum(1 for o in outcomes if o.status == status and o.started >= after)


@pytest.fixture
def queue_env(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", str(QUEUE_BUDGET_SECONDS))
    return function_env


async def test_queue_stopped_and_restarted_under_load(
    queue_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    issuer: DevIssuer,
    queue_name: str,
    tmp_path: Path,
) -> None:
    azurite = Azurite(location=tmp_path / "azurite").start()
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", azurite.connection_string)
    async with running(Load(issuer.mint())) as load:
        await load.until(lambda seen: count(seen, 200) >= 150)
        await asyncio.to_thread(azurite.stop)
        stopped_at = time.monotonic()
        await load.until(lambda seen: count(seen, 503, after=stopped_at) >= 16)
        azurite = await asyncio.to_thread(
            Azurite(port=azurite.port, location=tmp_path / "azurite").start
        )
        restarted_at = time.monotonic()
        await load.until(lambda seen: count(seen, 200, after=restarted_at) >= 150)
    try:
        outcomes = load.outcomes
        assert {o.status for o in outcomes} == {200, 503}
        assert all(o.retry_after and int(o.retry_after) > 0 for o in outcomes if o.status == 503)
        recovered = min(
            o.finished for o in outcomes if o.status == 200 and o.started >= restarted_at
        )
        assert recovered - restarted_at <= 5.0
        acknowledged = {o.event_id for o in outcomes if o.status == 200}
        stored = [
            event["id"] for event in QueueReader(azurite.connection_string, queue_name).drain()
        ]
        assert acknowledged <= set(stored), acknowledged - set(stored)
        assert len(outcomes) >= 316  # a few hundred publishes around the outage
        print(  # reported with -s: the figures of this run
            f"queue restart: {len(outcomes)} publishes, {count(outcomes, 200)} acknowledged, "
            f"{count(outcomes, 503)} refused with 503, first success "
            f"{recovered - restarted_at:.2f} s after the restart, {len(stored)} messages stored"
        )
    finally:
        azurite.stop()


async def test_frozen_queue_never_holds_an_answer_beyond_its_budget(
    queue_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, issuer: DevIssuer, queue_name: str
) -> None:
    azurite = Azurite().start()
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", azurite.connection_string)
    async with running(Load(issuer.mint())) as load:
        await load.until(lambda seen: count(seen, 200) >= 150)
        azurite.pause()  # SIGSTOP: connections are accepted, nothing answers
        paused_at = time.monotonic()
        await load.until(lambda seen: count(seen, 503, after=paused_at) >= 16)
        azurite.resume()
        resumed_at = time.monotonic()
        await load.until(lambda seen: count(seen, 200, after=resumed_at) >= 150)
        paused_for = resumed_at - paused_at
    try:
        outcomes = load.outcomes
        assert paused_for > QUEUE_BUDGET_SECONDS
        assert {o.status for o in outcomes} == {200, 503}
        slowest = max(o.seconds for o in outcomes)
        assert slowest <= QUEUE_BUDGET_SECONDS + 1.0, slowest
        acknowledged = {o.event_id for o in outcomes if o.status == 200}
        stored = [
            event["id"] for event in QueueReader(azurite.connection_string, queue_name).drain()
        ]
        assert acknowledged <= set(stored), acknowledged - set(stored)
        assert len(outcomes) >= 316
        print(
            f"queue frozen {paused_for:.2f} s: {len(outcomes)} publishes, "
            f"{count(outcomes, 200)} acknowledged, {count(outcomes, 503)} refused with 503, "
            f"slowest answer {slowest:.2f} s, {len(stored)} messages stored"
        )
    finally:
        azurite.stop()


async def test_issuer_outage_after_warm_up(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, own_issuer: DevIssuer
) -> None:
    monkeypatch.setenv("EVENTS_TRUSTED_ISSUERS", own_issuer.base_url)

    async def publish(token: str) -> func.HttpResponse:
        request = func.HttpRequest(
            "POST",
            "http://localhost/events",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            body=body_of(VALID_EVENT),
        )
        return await publish_function()(request)

    try:
        remembered = own_issuer.mint()
        assert (await publish(remembered)).status_code == 200
        own_issuer.available = False  # discovery and JWKS now answer 503

        assert (await publish(remembered)).status_code == 200
        known_key = await publish(own_issuer.mint(org="ttd"))  # a new token, a cached key
        assert known_key.status_code == 200
        own_issuer.rotate(publish=False)  # signs with a key the JWKS never showed
        unknown = await publish(own_issuer.mint())
        assert unknown.status_code == 401
        assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
        assert own_issuer.jwks_requests == 1
    finally:
        await close_current_runtime()
