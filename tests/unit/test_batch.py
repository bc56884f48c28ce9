"""How the pipeline runs a batch: at most MAX_SENDS_IN_FLIGHT sends at a time, each within its own
time budget, none started once one has failed, one outcome per element. The orchestration alone,
with the ports answered in memory (the real queue, registry and issuer are in
tests/integration/test_content_modes.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.issuer import DevIssuer
from shared.adapters.oidc import KeySet, StaticSigningKeys
from shared.adapters.tokens import TokenVerifier
from shared.cloudevents.jsonformat import BATCH_PREFIX_BYTES, batch_length_at_least
from shared.core import batch as batch_module
from shared.core import problems
from shared.core.batch import MAX_SENDS_IN_FLIGHT, MIN_ANSWER_CAP_BYTES, BatchOutcome
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
    def cached(self, identifier: str) -> Lookup | None:
        return None  # always the lookup: the tests count its calls through it

    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        return Lookup(RULES, CacheOutcome.HIT)


class CountingSink:
    """Counts the sends in flight; each waits until ``release`` is set."""

    max_message_bytes = 49152
    destinations = ("in-memory",)

    def __init__(self, *, release: asyncio.Event) -> None:
        self.release = release
        #: Set once MAX_SENDS_IN_FLIGHT sends are waiting at the same time.
        self.full = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.sent: list[bytes] = []

    async def send(self, message: bytes, partition: int = 0) -> None:
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


def pipeline(
    sink: CountingSink,
    issuer: DevIssuer,
    *,
    budget: float = 3.0,
    batch_timeout: float = 20.0,
    max_batch_events: int = 100,
) -> PublishPipeline:
    keys = StaticSigningKeys({ISSUER: KeySet([issuer.current_key.public_jwk()])})
    verifier = TokenVerifier(
        trusted_issuers=(ISSUER,), keys=keys, audience=None, clock_skew_seconds=10
    )
    return PublishPipeline(
        Ports(verifier=verifier, rules=Rules(), sink=sink),
        Limits(
            max_body_bytes=1024 * 1024,
            queue_timeout_seconds=budget,
            batch_timeout_seconds=batch_timeout,
            max_batch_events=max_batch_events,
        ),
    )


def batch_request(issuer: DevIssuer, count: int, body: bytes | None = None) -> PublishRequest:
    events = [{**VALID_EVENT, "id": f"e{n}"} for n in range(count)]
    return PublishRequest(
        method="POST",
        path="/events",
        headers={
            "authorization": f"Bearer {issuer.mint()}",
            "content-type": "application/cloudevents-batch+json",
        },
        body=json.dumps(events).encode() if body is None else body,
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

    async def send(message: bytes, partition: int = 0) -> None:
        await asyncio.sleep(0.03)  # 60% of the budget, each
        await slow_send(message, partition)

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


# -- the batch's own deadline (EVENTS_BATCH_TIMEOUT_SECONDS) -----------------------------------


async def test_the_batch_is_answered_at_its_deadline_and_each_answer_is_true() -> None:
    """The queue hangs, and each send's own budget (10 s) is far beyond the batch's (0.2 s):
    the answer still comes at the batch's deadline. The elements whose send was under way are
    503 "may have been stored" (and are, once the queue answers); the others are 503
    batch-timeout, and are never sent."""
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    sink = CountingSink(release=release)
    publishing = pipeline(sink, issuer, budget=10.0, batch_timeout=0.2)
    async with asyncio.timeout(5):  # a bound: the deadline is 0.2 s
        response = await publishing.handle(batch_request(issuer, 40))
    assert response.status == 207
    results = json.loads(response.body)["results"]
    sending = [r["id"] for r in results if not r["problem"]["type"].endswith(":batch-timeout")]
    timed_out = [r["id"] for r in results if r["problem"]["type"].endswith(":batch-timeout")]
    assert len(sending) == MAX_SENDS_IN_FLIGHT
    assert {r["status"] for r in results} == {503}
    for entry in results:
        if entry["id"] in sending:
            assert "may have been stored" in entry["problem"]["detail"]
    assert "EVENTS_BATCH_TIMEOUT_SECONDS" in results[-1]["problem"]["detail"]
    release.set()
    await publishing.close()
    assert sorted(json.loads(message)["id"] for message in sink.sent) == sorted(sending)
    assert not set(timed_out) & {json.loads(message)["id"] for message in sink.sent}


async def test_a_batch_within_its_deadline_is_answered_in_full() -> None:
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    release.set()
    sink = CountingSink(release=release)
    response = await pipeline(sink, issuer, batch_timeout=5).handle(batch_request(issuer, 40))
    assert response.status == 200
    assert len(sink.sent) == 40


async def test_each_element_data_is_held_to_the_nesting_limit_on_its_own() -> None:
    """The batch body nests far more brackets than the limit in all; each element's ``data`` is
    bounded on its own: 64 levels is accepted, 65 is that element's problem alone."""
    issuer = DevIssuer(ISSUER)
    release = asyncio.Event()
    release.set()
    sink = CountingSink(release=release)
    events = [{**VALID_EVENT, "id": f"e{n}", "data": {"n": [n]}} for n in range(40)]
    events[3]["data"] = json.loads("[" * 64 + "]" * 64)
    events[7]["data"] = json.loads("[" * 65 + "]" * 65)
    events[9]["data"] = {"text": "[" * 200}  # brackets in a string nest nothing
    request = batch_request(issuer, 0, body=json.dumps(events).encode())
    response = await pipeline(sink, issuer, batch_timeout=5).handle(request)
    assert response.status == 207
    answers = json.loads(response.body)["results"]
    failed = [n for n, answer in enumerate(answers) if answer["status"] != 200]
    assert failed == [7]
    assert "nested more than 64" in json.dumps(answers[7])
    assert len(sink.sent) == 39


# -- an over-long batch is counted before it is parsed -----------------------------------------


async def test_an_over_long_batch_is_refused_before_its_elements_are_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse_batch(body: bytes) -> list[Any]:
        raise AssertionError("the whole batch was parsed")

    monkeypatch.setattr(batch_module, "parse_batch", parse_batch)
    issuer = DevIssuer(ISSUER)
    sink = CountingSink(release=asyncio.Event())
    body = b"[" + b",".join([b"{}"] * 100_000) + b"]"
    response = await pipeline(sink, issuer).handle(batch_request(issuer, 0, body))
    assert response.status == 413
    problem = json.loads(response.body)
    assert problem["type"].endswith(":batch-too-large")
    assert "more than" in problem["detail"]
    assert sink.sent == []


@settings(max_examples=200)
@given(
    st.lists(
        st.none()
        | st.integers()
        | st.text(max_size=30)
        | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        max_size=6000,
    ),
    st.integers(min_value=0, max_value=40),
)
def test_the_count_before_parsing_never_exceeds_the_real_count(
    elements: list[Any], padding: int
) -> None:
    body = json.dumps(elements, indent=padding or None).encode()
    counted = batch_length_at_least(body)
    assert counted <= len(elements)
    if len(body) > BATCH_PREFIX_BYTES:
        assert counted > 0


# -- the answer's size is bounded by the request's ---------------------------------------------


async def test_a_batch_of_tiny_invalid_events_gets_an_answer_of_bounded_size() -> None:
    """1000 ``{}`` (3 kB) would get 1000 full problems (about 700 kB): the answer stays within
    its cap (64 KiB, or twice the request), every element still has its status, and
    ``omittedDetails`` says how many problems were shortened, the last ones most."""
    issuer = DevIssuer(ISSUER)
    sink = CountingSink(release=asyncio.Event())
    body = b"[" + b",".join([b"{}"] * 1000) + b"]"
    publishing = pipeline(sink, issuer, max_batch_events=1000)
    response = await publishing.handle(batch_request(issuer, 0, body))
    assert response.status == 207
    assert len(response.body) <= max(MIN_ANSWER_CAP_BYTES, 2 * len(body))
    answer = json.loads(response.body)
    assert (answer["accepted"], answer["failed"]) == (0, 1000)
    assert [entry["index"] for entry in answer["results"]] == list(range(1000))
    assert {entry["status"] for entry in answer["results"]} == {400}
    assert answer["omittedDetails"] == 1000
    assert answer["results"][0]["problem"]["type"].endswith(":invalid-event")  # the first: brief
    assert answer["results"][-1] == {"index": 999, "status": 400}  # the last ones shortest


def test_an_answer_within_its_cap_is_left_whole() -> None:
    outcome = BatchOutcome.of(
        [{"id": "a"}], [problems.invalid_event({"id": ("bad",)})], max_bytes=64 * 1024
    )
    assert "omittedDetails" not in json.loads(outcome.to_json())


async def test_a_shortened_answer_keeps_the_first_problems_whole() -> None:
    """200 ``{}``: some problems shortened to fit, the last ones; the first keep everything."""
    issuer = DevIssuer(ISSUER)
    sink = CountingSink(release=asyncio.Event())
    body = b"[" + b",".join([b"{}"] * 200) + b"]"
    publishing = pipeline(sink, issuer, max_batch_events=1000)
    answer = await publishing.handle(batch_request(issuer, 0, body))
    assert len(answer.body) <= MIN_ANSWER_CAP_BYTES
    results = json.loads(answer.body)
    assert 0 < results["omittedDetails"] < 200
    kept = 200 - results["omittedDetails"]
    assert all("errors" in entry["problem"] for entry in results["results"][:kept])
    assert not any("errors" in entry["problem"] for entry in results["results"][kept:])
