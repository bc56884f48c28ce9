"""How the pipeline runs a batch: at most MAX_SENDS_IN_FLIGHT sends at a time, each within its own
time budget, none started once one has failed, one outcome per element. The orchestration alone,
with the ports answered in memory (the real queue, registry and issuer are in
tests/integration/test_content_modes.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from devtools.issuer import DevIssuer
from shared.adapters.oidc import KeySet, StaticSigningKeys
from shared.adapters.tokens import TokenVerifier
from shared.core import problems
from shared.core.batch import MAX_SENDS_IN_FLIGHT, BatchOutcome
from shared.core.model import (
    ACTION_ID,
    PUBLISHED,
    REPLAYED,
    Attribute,
    CacheOutcome,
    Lookup,
    PolicyRule,
)
from shared.core.pipeline import Limits, Ports, PublishPipeline, PublishRequest
from tests.support import VALID_EVENT

ISSUER = "https://issuer.example/"
RULES = (
    PolicyRule(
        subject=(Attribute("urn:altinn:org", "ttd"),),
        action=Attribute(ACTION_ID, "publish"),
        resource=(Attribute("urn:altinn:resource", "demo-events"),),
    ),
)


class Rules:
    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        return Lookup(RULES, CacheOutcome.HIT)


class CountingSink:
    """Counts the sends in flight; each waits until ``release`` is set."""

    max_message_bytes = 49152
    destination = "in-memory"

    def __init__(self, *, release: asyncio.Event) -> None:
        self.release = release
        #: Set once MAX_SENDS_IN_FLIGHT sends are waiting at the same time.
        self.full = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.sent: list[bytes] = []

    async def send(self, message: bytes) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= MAX_SENDS_IN_FLIGHT:
            self.full.set()
        try:
            await self.release.wait()
            self.sent.append(message)
        finally:
            self.in_flight -= 1

    async def close(self) -> None: ...


def pipeline(sink: CountingSink, issuer: DevIssuer, *, budget: float = 3.0) -> PublishPipeline:
    keys = StaticSigningKeys({ISSUER: KeySet([issuer.current_key.public_jwk()])})
    verifier = TokenVerifier(
        trusted_issuers=(ISSUER,), keys=keys, audience=None, clock_skew_seconds=10
    )
    return PublishPipeline(
        Ports(verifier=verifier, rules=Rules(), sink=sink),
        Limits(max_body_bytes=1024 * 1024, queue_timeout_seconds=budget),
    )


def batch_request(issuer: DevIssuer, count: int) -> PublishRequest:
    events = [{**VALID_EVENT, "id": f"e{n}"} for n in range(count)]
    return PublishRequest(
        method="POST",
        path="/events",
        headers={
            "authorization": f"Bearer {issuer.mint()}",
            "content-type": "application/cloudevents-batch+json",
        },
        body=json.dumps(events).encode(),
    )


async def test_at_most_max_sends_in_flight_and_every_event_sent_once() -> None:
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    sink = CountingSink(release=release)
    handling = asyncio.ensure_future(pipeline(sink, issuer).handle(batch_request(issuer, 100)))
    async with asyncio.timeout(10):  # (a failure, not a hang, if they never all start)
        await sink.full.wait()  # the first sends are all waiting: no more may start
    for _ in range(10):
        await asyncio.sleep(0)  # give any send beyond the bound the chance to start (none may)
    assert sink.in_flight == MAX_SENDS_IN_FLIGHT
    release.set()
    response = await handling
    assert response.status == 200
    assert sink.most_in_flight == MAX_SENDS_IN_FLIGHT
    assert sorted(json.loads(message)["id"] for message in sink.sent) == sorted(
        f"e{n}" for n in range(100)
    )


async def test_sends_still_open_when_the_budget_runs_out_are_503_and_go_on() -> None:
    """The answer stops waiting at the deadline; the sends do not stop: each one ends with a
    definite outcome (shared/core/delivery.py), here stored once the queue answers. The elements
    whose turn came after a send had failed were never sent: 503, and nothing queued."""
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    sink = CountingSink(release=release)  # the queue does not answer yet
    publishing = pipeline(sink, issuer, budget=0.05)
    response = await publishing.handle(batch_request(issuer, 40))
    assert response.status == 207
    body: dict[str, Any] = json.loads(response.body)
    assert (body["accepted"], body["failed"]) == (0, 40)
    assert {entry["status"] for entry in body["results"]} == {503}
    assert response.headers["Retry-After"] == str(problems.RETRY_AFTER_SECONDS)
    assert sink.sent == []
    assert publishing.delivery.pending == MAX_SENDS_IN_FLIGHT  # only the first turn was sent
    release.set()
    await publishing.close()
    assert len(sink.sent) == MAX_SENDS_IN_FLIGHT
    assert publishing.delivery.pending == 0


async def test_each_send_has_its_own_budget_from_when_it_starts() -> None:
    """A batch whose sends each take a good share of the budget is published whole, however
    long the batch takes: an element's budget starts with its own send, as if it were alone."""
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    sink = CountingSink(release=release)
    release.set()
    slow_send = sink.send

    async def send(message: bytes) -> None:
        await asyncio.sleep(0.03)  # 60% of the budget, each
        await slow_send(message)

    sink.send = send  # type: ignore[method-assign]
    response = await pipeline(sink, issuer, budget=0.05).handle(batch_request(issuer, 64))
    assert response.status == 200  # four turns of 16: 0.12 s, more than twice the budget
    assert len(sink.sent) == 64


def test_outcome_body_and_headers() -> None:
    outcome = BatchOutcome.of(
        [{"id": "a"}, {"id": 5}, "x", {"id": "r"}],
        [
            PUBLISHED,
            problems.queue_unavailable(),
            problems.invalid_event({"id": ("bad",)}),
            REPLAYED,
        ],
    )
    assert outcome.status == 207
    assert outcome.headers() == {"Content-Type": "application/json", "Retry-After": "5"}
    body = outcome.body()
    assert (body["accepted"], body["failed"]) == (2, 2)
    assert body["results"][0] == {"index": 0, "id": "a", "status": 200}
    assert body["results"][3] == {"index": 3, "id": "r", "status": 200, "replayed": True}
    assert body["results"][1]["status"] == 503
    assert "id" not in body["results"][1]
    assert set(body["results"][2]["problem"]) == {"type", "title", "status", "detail", "errors"}
    assert outcome.summary() == "batch events=4 statuses=200x2,400x1,503x1 replayed=1"
