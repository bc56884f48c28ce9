"""Idempotent publish under every interleaving hypothesis finds: a stateful test of the real
pipeline (shared/core/pipeline.py, shared/core/delivery.py, shared/core/idempotency.py) over the
in-memory stores, where every table call and every send waits at a gate until the test decides its
fate (answered, carried out with its answer lost, or not carried out), on a clock the test moves
across generation boundaries, with processes that die at any moment.

Invariants, after every step (docs/idempotency.md states them as the contract):

- no 200 (new or replay) for an identity whose content is not on the queue;
- no second message for an identity within its window unless a message of it was stored
  without its record (the send's outcome was unknown, the process died between its send and its
  record, the record's write failed, or the publish went on without a known claim): those are
  counted, and a process that has stopped has an excuse for each one;
- 409 publish-in-progress only while another publish of the identity is under way, and never
  later than 15 s (the lease) after that publish's answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.core.idempotency import Claim, IdempotentRecords, UncertainClaim
from shared.core.model import ACTION_ID, Attribute, CacheOutcome, Lookup, PolicyRule, Publisher
from shared.core.pipeline import Limits, Ports, PublishPipeline, PublishRequest
from shared.core.telemetry import NoTelemetry
from tests.support.memory import CALLER, Gate, MemoryQueue, MemoryTables, Operation
from tests.support.timing import ManualClock

WINDOW = 100.0
BUDGET = 3.0
LEASE = 5 * BUDGET
#: Mostly one identity, so that publishes of it meet; the other proves they stay apart.
IDENTITIES = ("i1", "i1", "i1", "i2")
CONTENTS = ("x", "y")
RULES = (
    PolicyRule(
        subject=(Attribute("urn:altinn:org", "ttd"),),
        action=Attribute(ACTION_ID, "publish"),
        resource=(Attribute("urn:altinn:resource", "demo-events"),),
    ),
)
PUBLISHER = Publisher(
    issuer="https://issuer/", subject="s", scopes=frozenset({"altinn:events.publish"}), org="ttd"
)


class Verifier:
    async def authenticate(self, authorization: str | None) -> Publisher:
        return PUBLISHER


class Rules:
    def cached(self, identifier: str) -> Lookup | None:
        return None  # always the lookup: the tests count its calls through it

    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        return Lookup(RULES, CacheOutcome.HIT)


def event_for(identity: str, content: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": identity,
        "source": "/orders",
        "type": "order.created",
        "resource": "urn:altinn:resource:demo-events",
        "data": {"v": content},
    }


def request_for(identity: str, content: str) -> PublishRequest:
    return PublishRequest(
        method="POST",
        path="/events",
        headers={"content-type": "application/cloudevents+json", "authorization": "Bearer x"},
        body=json.dumps(event_for(identity, content)).encode(),
    )


def batch_for(elements: list[tuple[str, str]]) -> PublishRequest:
    return PublishRequest(
        method="POST",
        path="/events",
        headers={"content-type": "application/cloudevents-batch+json", "authorization": "x"},
        body=json.dumps([event_for(identity, content) for identity, content in elements]).encode(),
    )


@dataclass
class Sent:
    identity: str
    content: str
    owner: str | None
    process: str


@dataclass
class Request:
    identity: str
    content: str
    process: str
    started: float
    task: asyncio.Task[Any]
    answered: float | None = None
    status: int | None = None
    kind: str = ""
    #: The element's index when the request is a batch's.
    index: int | None = None


@dataclass
class Process:
    name: str
    pipeline: PublishPipeline
    alive: bool = True
    died: float | None = None
    requests: list[Request] = field(default_factory=list)


class IdempotencyMachine(RuleBasedStateMachine):
    required = True

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        #: The process each task belongs to (the tasks a process starts are its own too).
        self.owner_of_task: dict[asyncio.Task[Any], str] = {}
        self.loop.set_task_factory(self._task)
        self.clock = ManualClock(now=1000 * WINDOW + WINDOW - 0.5)  # just before a boundary
        self.gate = Gate()
        self.tables = MemoryTables(self.gate)
        self.queue = MemoryQueue(self.gate, self.clock.time)
        self.processes: list[Process] = []
        self.dead: list[Process] = []
        self.requests: list[Request] = []
        #: What each message stored on the queue was sent as.
        self.sent: dict[bytes, Sent] = {}
        #: Why a claim's message may be on the queue without its record.
        self.excuses: dict[str, set[str]] = {}
        self.generation = 0
        for _ in range(2):
            self.processes.append(self._new_process())

    # -- the system ------------------------------------------------------------------------------
    def _new_process(self) -> Process:
        self.generation += 1
        name = f"p{self.generation}"
        records = IdempotentRecords(
            self.tables,
            prefix="ids",
            window_seconds=WINDOW,
            budget_seconds=BUDGET,
            clock=self.clock,
        )
        pipeline = PublishPipeline(
            Ports(verifier=Verifier(), rules=Rules(), sink=self.queue, records=records),
            Limits(queue_timeout_seconds=BUDGET, records_required=self.required),
            telemetry=NoTelemetry(),
            clock=self.clock,
        )
        machine = self
        send = pipeline.delivery.send

        async def sending(
            message: bytes, deadline: Any, *, claim: Claim | None, **rest: Any
        ) -> None:
            event = json.loads(message)
            machine.sent[message] = Sent(
                event["id"], event["data"]["v"], claim.owner if claim else None, name
            )
            if claim is not None and not claim.certain:
                machine._excuse(claim.owner, "published without a known claim")
            await send(message, deadline, claim=claim, **rest)

        pipeline.delivery.send = sending  # type: ignore[method-assign]
        claim = records.claim

        async def claiming(*arguments: Any) -> Any:
            try:
                return await claim(*arguments)
            except UncertainClaim as error:
                if not machine.required:
                    machine._excuse(error.claim.owner, "published without a known claim")
                raise

        records.claim = claiming  # type: ignore[method-assign]
        claim_many = records.claim_many

        async def claiming_many(*arguments: Any) -> Any:
            answers = await claim_many(*arguments)
            for answer in answers:
                if isinstance(answer, UncertainClaim) and not machine.required:
                    machine._excuse(answer.claim.owner, "published without a known claim")
            return answers

        records.claim_many = claiming_many  # type: ignore[method-assign]
        return Process(name, pipeline)

    def _task(self, loop: asyncio.AbstractEventLoop, coroutine: Any, **options: Any) -> Any:
        context = options.get("context")
        task = asyncio.Task(coroutine, loop=loop, **options)
        self.owner_of_task[task] = context.run(CALLER.get) if context else CALLER.get()
        return task

    def _excuse(self, owner: str | None, why: str) -> None:
        if owner is not None:
            self.excuses.setdefault(owner, set()).add(why)

    def _run(self) -> None:
        async def turns() -> None:
            for _ in range(60):
                await asyncio.sleep(0)

        self.loop.run_until_complete(turns())
        for request in self.requests:
            if request.answered is None and request.task.done() and not request.task.cancelled():
                response = request.task.result()
                request.answered = self.clock.now
                request.status = response.status
                if request.index is not None and response.status in (200, 207):
                    entry = json.loads(response.body)["results"][request.index]
                    request.status = entry["status"]
                    if entry["status"] >= 400:
                        request.kind = entry["problem"]["type"].rsplit(":", 1)[-1]
                    elif entry.get("replayed"):
                        request.kind = "replay"
                elif response.status >= 400:
                    request.kind = json.loads(response.body)["type"].rsplit(":", 1)[-1]
                elif response.headers.get("Idempotent-Replayed") == "true":
                    request.kind = "replay"

    def _stored(self) -> list[Sent]:
        return [self.sent[message] for message in self.queue.messages]

    # -- what happens ------------------------------------------------------------------------------
    @rule(
        which=st.integers(0, 1),
        identity=st.sampled_from(IDENTITIES),
        content=st.sampled_from(CONTENTS),
    )
    def publish(self, which: int, identity: str, content: str) -> None:
        self._publish(which, identity, content)

    @rule(which=st.integers(0, 1), content=st.sampled_from(CONTENTS))
    def publish_again(self, which: int, content: str) -> None:
        """The same identity again (a retry, or another content under it)."""
        self._publish(which, "i1", content)

    @rule(
        which=st.integers(0, 1),
        elements=st.lists(
            st.tuples(st.sampled_from(IDENTITIES), st.sampled_from(CONTENTS)),
            min_size=2,
            max_size=4,
        ),
    )
    def publish_a_batch(self, which: int, elements: list[tuple[str, str]]) -> None:
        """A batch: its elements claimed together, its commits written together."""
        self._start(which, batch_for(elements), elements)

    def _publish(self, which: int, identity: str, content: str) -> None:
        self._start(which, request_for(identity, content), [(identity, content)], batch=False)

    def _start(
        self,
        which: int,
        publish: PublishRequest,
        elements: list[tuple[str, str]],
        *,
        batch: bool = True,
    ) -> None:
        process = self.processes[which]
        context = contextvars.copy_context()
        context.run(CALLER.set, process.name)
        coroutine = process.pipeline.handle(publish)
        task = self.loop.create_task(coroutine, context=context)
        for index, (identity, content) in enumerate(elements):
            request = Request(
                identity,
                content,
                process.name,
                self.clock.now,
                task,
                index=index if batch else None,
            )
            process.requests.append(request)
            self.requests.append(request)
        self._run()

    def _pick(self, index: int) -> Operation:
        return self.gate.pending[index % len(self.gate.pending)]

    def _follow(self, operation: Operation, fate: str) -> None:
        """Note why a message may end up without its record."""
        waited = not operation.future.done()
        if operation.kind == "send":
            sent = self.sent.get(operation.subject.encode())
            owner = sent.owner if sent else None
            if fate == "lose" or (not waited and fate == "answer"):
                self._excuse(owner, "the send's outcome was unknown")
        elif fate == "fail" or not waited:
            for record in operation.records or (operation.record,):
                if record is not None and record.state.value == "committed":
                    self._excuse(record.owner, "the record's write failed")

    @precondition(lambda self: self.gate.pending)
    @rule(index=st.integers(0, 20))
    def answer(self, index: int) -> None:
        operation = self._pick(index)
        self._follow(operation, "answer")
        self.gate.answer(operation)
        self._run()

    @precondition(lambda self: self.gate.pending)
    @rule(rounds=st.integers(1, 40))
    def answer_everything(self, rounds: int) -> None:
        """A network that works: every call waiting is answered, oldest first, and so on for
        the calls that follow, ``rounds`` times."""
        for _ in range(rounds):
            if not self.gate.pending:
                return
            self.answer(0)

    @precondition(lambda self: self.gate.pending)
    @rule(index=st.integers(0, 20))
    def lose_the_answer(self, index: int) -> None:
        operation = self._pick(index)
        self._follow(operation, "lose")
        self.gate.lose(operation)
        self._run()

    @precondition(lambda self: self.gate.pending)
    @rule(index=st.integers(0, 20))
    def fail(self, index: int) -> None:
        operation = self._pick(index)
        self._follow(operation, "fail")
        self.gate.fail(operation)
        self._run()

    @rule(seconds=st.sampled_from([0.01, 0.3, 1.0, 2.5, 3.1, 6.0, 12.0, 16.0, 45.0]))
    def wait(self, seconds: float) -> None:
        for _ in range(200):  # in steps, so that each woken task runs at its own time
            due = self.clock.next_timer
            if due is None or due > self.clock.now + seconds:
                break
            step = max(0.0, due - self.clock.now)
            seconds -= step
            self.clock.advance(step)
            self._run()
        self.clock.advance(max(0.0, seconds))
        self._run()

    @rule(before=st.sampled_from([0.1, 0.3, 2.0, 10.0]))
    def wait_for_a_boundary(self, before: float) -> None:
        """Up to ``before`` seconds before the next generation starts."""
        boundary = (self.clock.now // WINDOW + 1) * WINDOW
        self.wait(max(0.0, boundary - before - self.clock.now))

    @rule(which=st.integers(0, 1))
    def die(self, which: int) -> None:
        """The process stops at once: whatever it was doing stops, its answers never come."""
        process = self.processes[which]
        if self._busy(process):  # its records may be unwritten, or half written
            for message, sent in self.sent.items():
                if sent.process == process.name and message in self.queue.messages:
                    self._excuse(sent.owner, "the process died between its send and its record")
        process.alive, process.died = False, self.clock.now
        for task, owner in self.owner_of_task.items():
            if owner == process.name:
                task.cancel()
        self._run()
        for operation in self.gate.pending:
            if operation.caller == process.name and operation.kind == "send":
                sent = self.sent.get(operation.subject.encode())
                self._excuse(sent.owner if sent else None, "the process died")
        self.dead.append(process)
        self.processes[which] = self._new_process()

    # -- what must hold ----------------------------------------------------------------------------
    @invariant()
    def a_200_only_for_content_on_the_queue(self) -> None:
        stored = {(sent.identity, sent.content) for sent in self._stored()}
        for request in self.requests:
            if request.status == 200:
                assert (request.identity, request.content) in stored, request

    @invariant()
    def a_second_message_only_with_a_stored_send_left_unrecorded(self) -> None:
        """Of the messages of one identity stored with their record (and no excuse), each one
        is a window (less two leases, for the records written around it) after the last."""
        by_identity: dict[str, list[tuple[float, Sent]]] = {}
        for message, at in zip(self.queue.messages, self.queue.stored_at, strict=True):
            sent = self.sent[message]
            by_identity.setdefault(sent.identity, []).append((at, sent))
        for identity, stored in by_identity.items():
            last: tuple[float, Sent] | None = None
            for at, sent in sorted(stored, key=lambda item: item[0]):
                if self._unrecorded(sent):
                    continue
                assert last is None or at - last[0] >= WINDOW - 2 * LEASE, (identity, last, sent)
                last = (at, sent)

    def _unrecorded(self, sent: Sent) -> bool:
        """Stored without its record, or with an excuse for its record not counting."""
        return (
            sent.owner is None
            or sent.owner not in self.tables.committed_owners
            or sent.owner in self.excuses
        )

    @invariant()
    def every_message_left_unrecorded_has_an_excuse_once_its_publish_stopped(self) -> None:
        for sent in self._stored():
            if sent.owner in self.tables.committed_owners:
                continue
            living = [p for p in self.processes if p.name == sent.process]
            if living and self._busy(living[0]):
                continue  # its record may still be written
            assert sent.owner is not None
            assert self.excuses.get(sent.owner), sent

    def _busy(self, process: Process) -> bool:
        return (
            any(not request.task.done() for request in process.requests)
            or process.pipeline.delivery.pending > 0
            or any(operation.caller == process.name for operation in self.gate.pending)
        )

    @invariant()
    def in_progress_only_while_another_publish_is_under_way(self) -> None:
        for request in self.requests:
            if request.kind != "publish-in-progress" or request.answered is None:
                continue
            at = request.answered
            others = [
                other
                for other in self.requests
                if other is not request
                and other.identity == request.identity
                and other.started <= at
            ]
            assert any(
                (other.answered is None and self._alive(other.process))
                or (other.answered is not None and other.answered >= at - LEASE)
                or (not self._alive(other.process) and self._died(other.process) >= at - LEASE)
                for other in others
            ), (request, others)

    def _alive(self, name: str) -> bool:
        return any(process.name == name and process.alive for process in self.processes)

    def _died(self, name: str) -> float:
        return next(process.died or 0.0 for process in self.dead if process.name == name)

    @invariant()
    def answers_are_what_the_contract_allows(self) -> None:
        allowed = {
            200: {"", "replay"},
            409: {"publish-in-progress", "duplicate-event-id"},
            503: {"queue-unavailable", "records-unavailable", "batch-timeout"},
        }
        for request in self.requests:
            if request.status is not None:
                assert request.kind in allowed[request.status], request

    def teardown(self) -> None:
        async def settled() -> None:  # requests, and settlements still at a gate; a request's
            while left := asyncio.all_tasks() - {asyncio.current_task()}:  # end may start more
                for task in left:
                    task.cancel()
                await asyncio.gather(*left, return_exceptions=True)

        self.loop.run_until_complete(settled())
        self.loop.close()


STATEFUL = settings(
    max_examples=500,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class WithRequiredDeduplication(IdempotencyMachine):
    required = True


class WithoutRequiredDeduplication(IdempotencyMachine):
    required = False


TestWithRequiredDeduplication = WithRequiredDeduplication.TestCase
TestWithRequiredDeduplication.settings = STATEFUL
TestWithoutRequiredDeduplication = WithoutRequiredDeduplication.TestCase
TestWithoutRequiredDeduplication.settings = STATEFUL
