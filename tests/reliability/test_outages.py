"""Dependencies failing under load: the queue stopped and restarted, the queue frozen (SIGSTOP),
the token issuer gone. Publishes run through the real function handler, concurrently; every
phase change waits for what the load observed, never for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from shared.app.runtime import close_current_runtime
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
    #: A 503 that says the connection to the queue broke after the event went out.
    maybe_stored: bool = False
    #: The problem type's name (``queue-unavailable``, ...), for a problem.
    problem: str | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


#: What a publisher that retries does on each answer: send the same event again on these.
RETRIED = (503, 409)


@dataclass
class Load:
    """Publishes distinct events with ``concurrency`` workers until told to stop.

    With ``retry``, each worker is a publisher that sends the same event again after every 503
    (and 409 publish-in-progress) until it gets a 200, as the problems' Retry-After invites
    (after a short pause, not the advised seconds: the test would take minutes), and finishes
    the event it is on before it stops.
    """

    token: str
    concurrency: int = 8
    cap: int = 3000
    retry: bool = False
    #: Text data of this many bytes in each event (0: VALID_EVENT's data); over 48 KiB, every
    #: event goes through the claim check.
    data_bytes: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    stopping: bool = False

    async def _worker(self, worker: int) -> None:
        sequence = 0
        event_id = ""
        retrying = False
        while len(self.outcomes) < self.cap and (retrying or not self.stopping):
            if not retrying:
                event_id = f"w{worker}-{sequence}"
                sequence += 1
            request = func.HttpRequest(
                "POST",
                "http://localhost/events",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/cloudevents+json",
                },
                body=body_of(self.event(event_id)),
            )
            started = time.monotonic()
            response = await publish_function()(request)
            problem = (
                json.loads(response.get_body())["type"].rsplit(":", 1)[1]
                if response.status_code != 200
                else None
            )
            outcome = Outcome(
                event_id,
                response.status_code,
                response.headers.get("Retry-After"),
                started,
                time.monotonic(),
                response.status_code == 503 and b"may have been stored" in response.get_body(),
                problem,
            )
            async with self.changed:
                self.outcomes.append(outcome)
                self.changed.notify_all()
            retrying = self.retry and response.status_code in RETRIED
            if retrying:
                await asyncio.sleep(0.05)  # the publisher's back-off between attempts

    def event(self, event_id: str) -> dict[str, Any]:
        """The event published under ``event_id``; its data names it, so that a blob can be
        matched to its event."""
        if not self.data_bytes:
            return {**VALID_EVENT, "id": event_id}
        data = f"{event_id}.".ljust(self.data_bytes, "x")
        return {**VALID_EVENT, "id": event_id, "datacontenttype": "text/plain", "data": data}

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


def count(outcomes: list[Outcome], *statuses: int, after: float = 0.0) -> int:
    return sum(1 for o in outcomes if o.status in statuses and o.started >= after)


@pytest.fixture
def queue_env(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", str(QUEUE_BUDGET_SECONDS))
    return function_env


@pytest.fixture
def own_queue(
    queue_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Azurite]:
    """An Azurite of the test's own (queue and table, data in a folder), so that its queue can
    be stopped, restarted and frozen alone."""
    azurite = Azurite(services=("queue", "table"), location=tmp_path / "azurite").start()
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", azurite.connection_string)
    yield azurite
    azurite.stop()


def check_delivery(load: Load, stored: list[str]) -> None:
    """Nothing acknowledged is lost; a publisher that retried until 200 has each event on the
    queue exactly once."""
    acknowledged = {o.event_id for o in load.outcomes if o.status == 200}
    assert acknowledged <= set(stored), acknowledged - set(stored)
    if load.retry:
        # Twice only where the queue's connection broke after the event went out, so that it
        # may have been stored while the answer said 503 (and told the publisher so).
        repeated = {event_id: n for event_id, n in Counter(stored).items() if n > 1}
        uncertain = {o.event_id for o in load.outcomes if o.maybe_stored}
        assert set(repeated) <= uncertain, set(repeated) - uncertain
        assert all(n == 2 for n in repeated.values())
        assert set(stored) == acknowledged  # every event retried until it was acknowledged
        assert {o.status for o in load.outcomes} <= {200, 503, 409}
    else:
        assert {o.status for o in load.outcomes} == {200, 503}


RETRY = pytest.mark.parametrize("retry", [False, True], ids=["gives-up", "retries-until-200"])


@RETRY
async def test_queue_stopped_and_restarted_under_load(
    own_queue: Azurite, issuer: DevIssuer, queue_name: str, retry: bool
) -> None:
    async with running(Load(issuer.mint(), retry=retry)) as load:
        await load.until(lambda seen: count(seen, 200) >= 150)
        await asyncio.to_thread(own_queue.stop_service, "queue")
        stopped_at = time.monotonic()
        await load.until(lambda seen: count(seen, 503, 409, after=stopped_at) >= 16)
        await asyncio.to_thread(own_queue.start_service, "queue")
        restarted_at = time.monotonic()
        await load.until(lambda seen: count(seen, 200, after=restarted_at) >= 150)
    outcomes = load.outcomes
    assert all(o.retry_after and int(o.retry_after) > 0 for o in outcomes if o.status == 503)
    recovered = min(o.finished for o in outcomes if o.status == 200 and o.started >= restarted_at)
    assert recovered - restarted_at <= 5.0
    stored = [event["id"] for event in QueueReader(own_queue.connection_string, queue_name).drain()]
    check_delivery(load, stored)
    assert len(outcomes) >= 316  # a few hundred publishes around the outage
    print(  # reported with -s: the figures of this run
        f"queue restart ({'retrying' if retry else 'giving up'}): {len(outcomes)} publishes, "
        f"{count(outcomes, 200)} acknowledged, {count(outcomes, 503)} refused with 503, "
        f"{count(outcomes, 409)} with 409, first success {recovered - restarted_at:.2f} s after "
        f"the restart, {len(stored)} messages stored, "
        f"{len(stored) - len(set(stored))} twice after a connection cut mid-send"
    )


@RETRY
async def test_frozen_queue_never_holds_an_answer_beyond_its_budget(
    own_queue: Azurite, issuer: DevIssuer, queue_name: str, retry: bool
) -> None:
    async with running(Load(issuer.mint(), retry=retry)) as load:
        await load.until(lambda seen: count(seen, 200) >= 150)
        own_queue.pause("queue")  # SIGSTOP: connections are accepted, nothing answers
        paused_at = time.monotonic()
        await load.until(lambda seen: count(seen, 503, 409, after=paused_at) >= 16)
        own_queue.resume("queue")
        resumed_at = time.monotonic()
        await load.until(lambda seen: count(seen, 200, after=resumed_at) >= 150)
        paused_for = resumed_at - paused_at
    outcomes = load.outcomes
    assert paused_for > QUEUE_BUDGET_SECONDS
    slowest = max(o.seconds for o in outcomes)
    assert slowest <= QUEUE_BUDGET_SECONDS + 1.0, slowest
    stored = [event["id"] for event in QueueReader(own_queue.connection_string, queue_name).drain()]
    check_delivery(load, stored)
    assert len(outcomes) >= 316
    print(
        f"queue frozen {paused_for:.2f} s ({'retrying' if retry else 'giving up'}): "
        f"{len(outcomes)} publishes, {count(outcomes, 200)} acknowledged, "
        f"{count(outcomes, 503)} refused with 503, {count(outcomes, 409)} with 409, "
        f"slowest answer {slowest:.2f} s, {len(stored)} messages stored"
    )


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
