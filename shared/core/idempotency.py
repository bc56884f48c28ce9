"""Idempotent publish, decided: an event's identity and content, what a record of it means, and
how a publish claims, commits and releases it. Pure decisions over a small storage port
(``RecordTables``, shared/core/ports.py: insert, read, replace, delete), so that every rule here is
tested in milliseconds against an in-memory store and the Azure Table adapter
(shared/adapters/tables.py) only carries out storage operations. docs/idempotency.md states the
contract in full.

**Identity.** (publisher, ``source``, ``id``), the publisher being ``Publisher.identity`` (the
token's org code in lower case, else its organisation number, else its issuer and subject).
Hashed into a key: ids and sources are arbitrary strings, table keys are not.

**Content.** The event under the CloudEvents type system (shared/cloudevents/canonical.py),
without what the endpoint adds (trace context, the claim check's ``dataref``). Its fingerprint
carries a mark (``ce1:``); a record written before the mark existed holds the SHA-256 of the
event's canonical queue message instead, and is compared with that.

**Records and generations.** Time is cut into generations as long as the window, each with its
own table, so that old records are dropped a whole table at a time (no table is scanned). A claim
made in generation *g* inserts a ``reserved`` record into *g*'s table; a commit writes the
``committed`` record into the next generation's table, where a later claim of *g* looks first
(a replay costs the refused insert and that read), and which the next generation's claims insert
into (so they find it). A reservation carries its lease (``until``): the moment its publish is
over whatever happened to it, derived from the time budgets (``Budgets``); a publish's own record
work is finished before then. A claim made within one lease (and a margin for clock skew) of
its generation's end reserves in the next generation's table too, so that a claim made on the
other side of the boundary sees the publish in flight: one identity never has two publishes
under way.

**Claims.** Each claim has an owner id written into its records, so that a publish recognises
its own record again (after an answer it lost) and never settles another's. A claim whose
answer was lost or late (``UncertainClaim``) is settled by looking: what is its own is committed
or removed, what is not is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from shared.cloudevents import CloudEvent
from shared.cloudevents.canonical import content_digest
from shared.core.model import Publisher, Record, RecordState, Reservation, Stored
from shared.core.ports import (
    MAX_TRANSACTION,
    Clock,
    RecordChanged,
    RecordExists,
    RecordsUnavailable,
    RecordTables,
    TransactionRefused,
    Write,
)

log = logging.getLogger("events.records")

_SEPARATOR = "\x1f"  # a control character: never part of a valid source or id
#: The mark of a fingerprint of the canonical content (docs/idempotency.md, "Content").
FINGERPRINT_MARK: Final = "ce1:"
#: The attributes the endpoint adds to an event: never part of its content.
ADDED_BY_ENDPOINT: Final = frozenset({"traceparent", "tracestate"})
#: The lease of a reservation written before leases were recorded.
LEGACY_LEASE_SECONDS: Final = 120.0
#: How far apart two instances' clocks may be for the generation boundary to stay invisible.
CLOCK_SKEW_SECONDS: Final = 5.0
#: A claim that finds the same content in flight polls it, for at most this share of the
#: claim's budget, pausing first this long, doubling up to the maximum.
IN_FLIGHT_WAIT_SHARE: Final = 0.8
IN_FLIGHT_FIRST_PAUSE_SECONDS: Final = 0.01
IN_FLIGHT_MAX_PAUSE_SECONDS: Final = 0.2
#: Polls of identities in flight one request may make in all (a batch shares them).
POLLS_PER_REQUEST: Final = 16
#: How many partitions one publisher's records spread over (``partition_of``).
PUBLISHER_PARTITIONS: Final = 8
#: How long a commit waits for others of its partition to be written with it (real time: it
#: decides nothing), and how many at most are written together.
COMMIT_LINGER_SECONDS: Final = 0.01


# -- identity and content ----------------------------------------------------------------------


def record_key(publisher: Publisher, event: CloudEvent) -> str:
    """The key of an event's identity: its partition (``partition_of``), a dash, and the
    SHA-256 hex digest of the identity (73 characters in all)."""
    identity = _SEPARATOR.join((publisher.identity, event.source, event.id))
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    bucket = int(digest[0], 16) % PUBLISHER_PARTITIONS
    return f"{_publisher_group(publisher.identity)}{bucket}-{digest}"


@functools.lru_cache(maxsize=4096)
def _publisher_group(identity: str) -> str:
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def queue_partition(key: str, partitions: int) -> int:
    """The queue partition of an event's identity (its ``record_key``): a stable hash of the
    identity (the last eight hex digits of its digest, independent of the digit that chose its
    table partition) modulo ``partitions``, so that replays and retries meet the same queue."""
    if partitions <= 1:
        return 0
    return int(key[-8:], 16) % partitions


def partition_of(key: str) -> str:
    """The partition a key's record is stored in: the publisher's group (six hex digits of a
    hash of its identity) and one of ``PUBLISHER_PARTITIONS`` digits chosen by the identity, so
    that one batch's records share a few partitions, in which they are claimed and committed
    together, while the deployment's spread over many (docs/idempotency.md, "Partitions"). A
    key without a dash (a test's) is its first two characters."""
    partition, dash, _ = key.partition("-")
    return partition if dash else key[:2]


@dataclass(frozen=True, slots=True)
class Content:
    """An event's content as records compare it: its fingerprint, and how to make the older
    form (``legacy``, only called when a record in that form is found)."""

    fingerprint: str
    legacy: Callable[[], str] | None = None

    def matches(self, recorded: str) -> bool:
        if recorded.startswith(FINGERPRINT_MARK):
            return recorded == self.fingerprint
        return self.legacy is not None and recorded == self.legacy()


def content_of(event: CloudEvent, legacy_message: Callable[[], bytes] | None = None) -> Content:
    """The content of a valid event; ``legacy_message``: its canonical queue message without
    what the endpoint adds, the form records written before the mark hold."""
    fingerprint = FINGERPRINT_MARK + content_digest(event.members, ignore=ADDED_BY_ENDPOINT)
    if legacy_message is None:
        return Content(fingerprint)
    make = legacy_message
    return Content(fingerprint, lambda: hashlib.sha256(make()).hexdigest())


# -- what a record says --------------------------------------------------------------------------


def counts(record: Record, now: float, window: float) -> bool:
    """Whether a record still says anything: a commit within the window, a lease not lapsed."""
    if record.state is RecordState.COMMITTED:
        return now - record.at < window
    until = record.until if record.until is not None else record.at + LEGACY_LEASE_SECONDS
    return now < until


def verdict(record: Record, content: Content, now: float, window: float) -> Reservation | None:
    """What a record another publish wrote says to a claim of ``content``; None when it no
    longer counts (the identity is free)."""
    if not counts(record, now, window):
        return None
    if not content.matches(record.fingerprint):
        return Reservation.CONFLICT  # other content: no need to know how that publish ends
    if record.state is RecordState.COMMITTED:
        return Reservation.REPLAY
    return Reservation.IN_FLIGHT


@dataclass(frozen=True, slots=True)
class Budgets:
    """The time budgets of one publish's record work, all from the queue's budget ``seconds``
    (EVENTS_QUEUE_TIMEOUT_SECONDS, 3 s by default): a claim takes at most one budget, the send
    is answered within one more, a send still unanswered then goes on in the background until
    ``send_cutoff`` after the claim, and the commit has the last budget. The lease is five
    budgets (15 s by default): a reservation never outlives its publish, and a 409
    publish-in-progress is never answered later than 15 s after that publish's answer."""

    seconds: float

    @property
    def claim(self) -> float:
        return self.seconds

    @property
    def lease(self) -> float:
        return 5 * self.seconds

    @property
    def send_cutoff(self) -> float:
        """After the claim, when a send still unanswered is given up (its outcome unknown)."""
        return 4 * self.seconds - 0.1 * self.seconds


def minimum_window_seconds(budget_seconds: float) -> float:
    """The shortest window: four times what a generation overlaps the next by (a lease and the
    clock margin), so that most claims are far from a boundary."""
    return 4 * (Budgets(budget_seconds).lease + CLOCK_SKEW_SECONDS)


@dataclass(frozen=True, slots=True)
class Generations:
    """The window's generations: which table a moment belongs to."""

    window: float
    prefix: str
    #: How close to its generation's end a claim reserves in the next table too.
    overlap: float

    def of(self, now: float) -> int:
        return int(now // self.window)

    def table(self, generation: int) -> str:
        return f"{self.prefix}{generation}"

    def near_end(self, now: float) -> bool:
        return (self.of(now) + 1) * self.window - now <= self.overlap

    def expired(self, names: list[str], now: float) -> list[str]:
        """The tables older than the previous generation: nothing in them counts any more."""
        keep_from = self.of(now) - 1
        found = []
        for name in names:
            number = name[len(self.prefix) :]
            if name.startswith(self.prefix) and number.isdigit() and int(number) < keep_from:
                found.append(name)
        return found


# -- claims -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A publish's claim of an identity. ``held``: the etag of each generation's record it
    holds; empty for an uncertain claim (its answer was lost: its records may or may not be
    there, and are found again by ``owner``)."""

    key: str
    generation: int
    owner: str
    fingerprint: str
    at: float
    until: float
    near_end: bool
    held: Mapping[int, str] = field(default_factory=dict)

    @property
    def certain(self) -> bool:
        return bool(self.held)


class UncertainClaim(RecordsUnavailable):
    """The records gave no answer (in time) to a claim: ``claim`` is what it may have written."""

    def __init__(self, reason: str, claim: Claim) -> None:
        super().__init__(reason)
        self.claim = claim


class Polls:
    """How many more times a request may poll an identity in flight (a batch shares them)."""

    __slots__ = ("left",)

    def __init__(self, limit: int = POLLS_PER_REQUEST) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class IdempotentRecords:
    """The records of published identities, over a ``RecordTables`` store (see the module
    docstring for what it writes where)."""

    def __init__(
        self,
        tables: RecordTables,
        *,
        prefix: str,
        window_seconds: float,
        budget_seconds: float,
        clock: Clock,
        commit_linger_seconds: float | None = None,
    ) -> None:
        self.tables = tables
        self.budgets = Budgets(budget_seconds)
        self.window = window_seconds
        self.generations = Generations(
            window_seconds, prefix, overlap=self.budgets.lease + CLOCK_SKEW_SECONDS
        )
        self.clock = clock
        #: ``commit_linger_seconds``: how long a commit waits for others of its partition (the
        #: runtime's is COMMIT_LINGER_SECONDS); None: only those of the same moment
        self._commits = GroupedWrites(
            tables, commit_linger_seconds, clock=clock, budget_seconds=self.budgets.claim
        )

    # -- a claim ---------------------------------------------------------------------------------

    async def claim(self, key: str, content: Content, polls: Polls) -> Claim | Reservation:
        """Claim ``key`` for ``content``: a ``Claim`` (publish it), or what is recorded
        (replay, conflict, in flight). A publish of the same content in flight is polled (up to
        most of the budget, and ``polls``) and answered as it ended. UncertainClaim when the
        records give no answer in time."""
        owner = secrets.token_hex(16)
        attempt: list[Claim] = []
        try:
            async with self.clock.timeout(self.budgets.claim):
                return await self._claim(key, content, owner, polls, attempt)
        except TimeoutError:
            reason = f"no answer within {self.budgets.claim:g} s"
        except RecordsUnavailable as error:
            reason = str(error)
        raise UncertainClaim(reason, attempt[-1]) from None

    async def _claim(
        self, key: str, content: Content, owner: str, polls: Polls, attempt: list[Claim]
    ) -> Claim | Reservation:
        give_up_at = self.clock.time() + self.budgets.claim * IN_FLIGHT_WAIT_SHARE
        pause = IN_FLIGHT_FIRST_PAUSE_SECONDS
        while True:
            answer = await self._attempt(key, content, owner, attempt)
            if answer is not Reservation.IN_FLIGHT:
                return answer
            if self.clock.time() + pause > give_up_at or not polls.take():
                return answer
            await self.clock.sleep(pause)
            pause = min(pause * 2, IN_FLIGHT_MAX_PAUSE_SECONDS)

    async def _attempt(
        self, key: str, content: Content, owner: str, attempt: list[Claim]
    ) -> Claim | Reservation:
        now = self.clock.time()
        generation = self.generations.of(now)
        table = self.generations.table(generation)
        until = now + self.budgets.lease
        near_end = self.generations.near_end(now)
        mine = Record(content.fingerprint, RecordState.RESERVED, now, until, owner)
        attempt.append(Claim(key, generation, owner, content.fingerprint, now, until, near_end))
        for _ in range(3):  # a record taken over (or released) concurrently: try again
            try:
                etag = await self.tables.insert(table, key, mine)
            except RecordExists:
                found, current = await self._recorded(key, generation, content, owner, now)
                if found is not None:
                    return found
                if current is None:
                    continue  # gone meanwhile
                if current.record.owner == owner:
                    etag = current.etag  # an earlier try of this claim landed after all
                else:
                    try:  # no longer counts: take it over, unless someone else just did
                        etag = await self.tables.replace(table, key, mine, current.etag)
                    except RecordChanged:
                        continue
            held = {generation: etag}
            if near_end:
                next_etag, found = await self._hold(generation + 1, key, mine, content, now)
                if next_etag is None:
                    await self._let_go(table, key, etag)
                    if found is not None:
                        return found
                    continue
                held[generation + 1] = next_etag
            return Claim(key, generation, owner, content.fingerprint, now, until, near_end, held)
        return Reservation.IN_FLIGHT

    async def peek(self, key: str, content: Content, polls: Polls) -> Reservation:
        """A dry run's look at ``key`` (nothing written): what a claim of ``content`` would
        answer now, from the next generation's record and then this one's. A publish of the
        same content in flight is polled as a claim polls it (``polls``, and most of the
        budget), so that a publish that has just been answered reads as the replay it is.
        Raises RecordsUnavailable when the records give no answer in time."""
        return (await self.peek_many([(key, content)], polls))[0]

    async def peek_many(
        self, items: Sequence[tuple[str, Content]], polls: Polls
    ) -> list[Reservation]:
        """``peek`` for several identities, with the reads of ``claim_many``: the next
        generation's and this generation's records of them all (one query per partition and 14
        keys each; one read each for a single identity); those in flight read again."""
        try:
            async with self.clock.timeout(self.budgets.claim):
                return await self._peek_many(items, polls)
        except TimeoutError:
            raise RecordsUnavailable(f"no answer within {self.budgets.claim:g} s") from None

    async def _peek_many(
        self, items: Sequence[tuple[str, Content]], polls: Polls
    ) -> list[Reservation]:
        give_up_at = self.clock.time() + self.budgets.claim * IN_FLIGHT_WAIT_SHARE
        pause = IN_FLIGHT_FIRST_PAUSE_SECONDS
        answers = [Reservation.NEW] * len(items)
        looking = list(range(len(items)))
        while True:
            found = await self._read_verdicts([items[i] for i in looking])
            for index, answer in zip(looking, found, strict=True):
                answers[index] = answer
            looking = [i for i in looking if answers[i] is Reservation.IN_FLIGHT]
            if not looking or self.clock.time() + pause > give_up_at or not polls.take():
                return answers
            await self.clock.sleep(pause)
            pause = min(pause * 2, IN_FLIGHT_MAX_PAUSE_SECONDS)

    async def _read_verdicts(self, items: Sequence[tuple[str, Content]]) -> list[Reservation]:
        now = self.clock.time()
        generation = self.generations.of(now)
        keys = [key for key, _ in items]
        tables = [self.generations.table(g) for g in (generation + 1, generation)]
        if len(keys) == 1:
            found = await asyncio.gather(*(self.tables.read(t, keys[0]) for t in tables))
            recorded = [{keys[0]: stored} if stored else {} for stored in found]
        else:
            recorded = list(await asyncio.gather(*(self.tables.read_many(t, keys) for t in tables)))
        answers = []
        for key, content in items:
            answer = Reservation.NEW
            for stored in (records.get(key) for records in recorded):
                found_here = verdict(stored.record, content, now, self.window) if stored else None
                if found_here is not None:
                    answer = found_here
                    break
            answers.append(answer)
        return answers

    async def claim_many(
        self, items: Sequence[tuple[str, Content]], polls: Polls
    ) -> list[Claim | Reservation | UncertainClaim]:
        """Claims of several identities (a batch's, all different), each answered exactly as
        ``claim`` would answer it alone (an UncertainClaim returned, not raised), with few
        calls: they are reserved together, one transaction per partition (at most
        MAX_TRANSACTION each), as each would be inserted alone. A transaction refused (one of
        its identities is recorded already: a replay, mostly) is looked at: the next
        generation's records of its identities are read (one query per partition and 14 keys),
        which answers replays and conflicts; the rest are reserved together again, and claimed
        one at a time if refused once more. Identities found in flight are claimed alone (they
        are polled), and so are all of them near a generation's end (they reserve in two
        tables)."""
        if len(items) < 2 or self.generations.near_end(self.clock.time()):
            return list(await asyncio.gather(*(self._claim_alone(k, c, polls) for k, c in items)))
        generation = self.generations.of(self.clock.time())
        answers: list[Claim | Reservation | UncertainClaim | None] = [None] * len(items)

        async def reserve(indices: list[int]) -> None:
            refused = await self._reserve_together(generation, items, indices, answers)
            if refused:
                await self._look_then_reserve(generation, items, refused, answers, polls)

        await asyncio.gather(*(reserve(chunk) for chunk in _chunks(items)))
        return [answer for answer in answers if answer is not None]

    async def _look_then_reserve(
        self,
        generation: int,
        items: Sequence[tuple[str, Content]],
        indices: list[int],
        answers: list[Claim | Reservation | UncertainClaim | None],
        polls: Polls,
    ) -> None:
        """Claim ``indices`` whose transaction was refused. The next generation's records of
        them are read (where a commit of this generation is); what they do not answer, this
        generation's (where a commit of the last one is, and the reservations). Replays and
        conflicts are answered from them; identities with no record are reserved together
        again; the rest are claimed alone (in flight: polled; a record that no longer counts:
        taken over; a refusal again, or records that could not be read)."""
        alone: list[int] = []
        again = indices
        for table in (generation + 1, generation):
            now = self.clock.time()
            keys = [items[i][0] for i in again]
            try:
                async with self.clock.timeout(self.budgets.claim):
                    recorded = await self.tables.read_many(self.generations.table(table), keys)
            except (TimeoutError, RecordsUnavailable):
                alone += again
                again = []
                break
            unrecorded: list[int] = []
            for index in again:
                key, content = items[index]
                stored = recorded.get(key)
                found = verdict(stored.record, content, now, self.window) if stored else None
                if found is Reservation.REPLAY or found is Reservation.CONFLICT:
                    answers[index] = found
                elif stored is None or (table == generation + 1 and found is None):
                    unrecorded.append(index)  # this generation's records may still tell
                else:
                    alone.append(index)
            again = unrecorded
            if not again:
                break
        if len(again) > 1:
            alone += await self._reserve_together(generation, items, again, answers)
        else:
            alone += again

        async def claim_alone(index: int) -> None:
            answers[index] = await self._claim_alone(*items[index], polls)

        await asyncio.gather(*(claim_alone(index) for index in alone))

    async def _claim_alone(
        self, key: str, content: Content, polls: Polls
    ) -> Claim | Reservation | UncertainClaim:
        try:
            return await self.claim(key, content, polls)
        except UncertainClaim as error:
            return error

    async def _reserve_together(
        self,
        generation: int,
        items: Sequence[tuple[str, Content]],
        indices: list[int],
        answers: list[Claim | Reservation | UncertainClaim | None],
    ) -> list[int]:
        """Reserve ``indices`` in one transaction in ``generation``'s table; the indices to be
        claimed alone instead (all of them, when the transaction was refused)."""
        now = self.clock.time()
        if self.generations.of(now) != generation or self.generations.near_end(now):
            return indices  # the boundary came meanwhile
        until = now + self.budgets.lease
        claims = [
            Claim(items[i][0], generation, secrets.token_hex(16), items[i][1].fingerprint, now,
                  until, near_end=False)
            for i in indices
        ]  # fmt: skip
        writes = [
            Write(c.key, Record(c.fingerprint, RecordState.RESERVED, now, until, c.owner))
            for c in claims
        ]
        try:
            async with self.clock.timeout(self.budgets.claim):
                etags = await self.tables.transact(self.generations.table(generation), writes)
        except TransactionRefused:
            return indices
        except (TimeoutError, RecordsUnavailable) as error:
            for index, claim in zip(indices, claims, strict=True):
                answers[index] = UncertainClaim(_reason(error), claim)
            return []
        for index, claim, etag in zip(indices, claims, etags, strict=True):
            answers[index] = Claim(
                claim.key, generation, claim.owner, claim.fingerprint, now, until, False,
                {generation: etag},
            )  # fmt: skip
        return []

    async def _recorded(
        self, key: str, generation: int, content: Content, owner: str, now: float
    ) -> tuple[Reservation | None, Stored | None]:
        """What is recorded of ``key`` for a claim in ``generation``: a commit in the next
        generation's table first (a repeat of an event published in this generation), then this
        generation's record. The verdict (None when nothing counts), and this generation's
        record (for a take-over)."""
        later = await self.tables.read(self.generations.table(generation + 1), key)
        if later is not None and later.record.owner != owner:
            found = verdict(later.record, content, now, self.window)
            if found is not None:
                return found, None
        current = await self.tables.read(self.generations.table(generation), key)
        if current is None or current.record.owner == owner:
            return None, current
        return verdict(current.record, content, now, self.window), current

    async def _hold(
        self, generation: int, key: str, mine: Record, content: Content, now: float
    ) -> tuple[str | None, Reservation | None]:
        """Reserve in the next generation's table as well (a claim near its generation's end):
        the etag, or None and what is recorded there instead."""
        table = self.generations.table(generation)
        try:
            return await self.tables.insert(table, key, mine), None
        except RecordExists:
            pass
        stored = await self.tables.read(table, key)
        if stored is None:
            return None, None
        if stored.record.owner == mine.owner:
            return stored.etag, None
        found = verdict(stored.record, content, now, self.window)
        if found is not None:
            return None, found
        try:
            return await self.tables.replace(table, key, mine, stored.etag), None
        except RecordChanged:
            return None, None

    async def _let_go(self, table: str, key: str, etag: str) -> None:
        with contextlib.suppress(RecordChanged):  # taken over, or gone: not ours to delete
            await self.tables.delete(table, key, etag)

    # -- settling a claim ------------------------------------------------------------------------

    async def commit(self, claim: Claim, *, linger: bool = True, together: bool = True) -> None:
        """The claimed event is on the queue: record it, in the next generation's table (and,
        for a publish that crossed into a new generation, the one after it too). An uncertain
        claim also writes its own generation's table, where its reservation may be missing.
        ``together``: a single insert is written with others of its partition (False: alone)."""
        try:
            async with self.clock.timeout(self.budgets.claim):
                await self._commit(claim, linger, together)
        except (TimeoutError, RecordsUnavailable) as error:
            _not_committed(error)

    async def commit_many(self, claims: Sequence[Claim]) -> None:
        """``commit`` each claim: those that are one insert each (nearly all), in one
        transaction per table and partition at once, without a task, a timeout and a future
        per claim; the others, and those of a refused transaction, as ``commit`` writes them."""
        if not claims:
            return
        now = self.clock.time()
        groups: dict[tuple[str, str], list[Claim]] = {}
        alone: list[Claim] = []
        for claim in claims:
            table = self._one_insert(claim, now)
            if table is not None:
                groups.setdefault((table, partition_of(claim.key)), []).append(claim)
            else:
                alone.append(claim)
        writing = [
            self._commit_together(table, group[start : start + MAX_TRANSACTION], now)
            for (table, _), group in groups.items()
            for start in range(0, len(group), MAX_TRANSACTION)
        ]
        writing += [self.commit(claim, linger=False) for claim in alone]
        await asyncio.gather(*writing)

    async def _commit_together(self, table: str, claims: list[Claim], now: float) -> None:
        if len(claims) == 1:
            return await self.commit(claims[0], linger=False)
        writes = [
            Write(c.key, Record(c.fingerprint, RecordState.COMMITTED, now, None, c.owner))
            for c in claims
        ]
        try:
            async with self.clock.timeout(self.budgets.claim):
                await self.tables.transact(table, writes)
            return
        except TransactionRefused:
            pass  # each alone: it may find its own record, or another's
        except (TimeoutError, RecordsUnavailable) as error:
            for _ in claims:
                _not_committed(error)
            return
        await asyncio.gather(*(self.commit(c, linger=False, together=False) for c in claims))

    def _one_insert(self, claim: Claim, now: float) -> str | None:
        """The table of a commit that is one insert (nearly all: a certain claim committed in
        the generation it was made, into the next one's table, where it holds nothing), which
        may be written with others; None for any other commit."""
        first = claim.generation + 1 if claim.certain else claim.generation
        if first == self.generations.of(now) + 1 and first not in claim.held:
            return self.generations.table(first)
        return None

    async def _commit(self, claim: Claim, linger: bool, together: bool = True) -> None:
        now = self.clock.time()
        committed = Record(claim.fingerprint, RecordState.COMMITTED, now, None, claim.owner)
        first = claim.generation + 1 if claim.certain else claim.generation
        last = self.generations.of(now) + 1
        table = self._one_insert(claim, now) if together else None
        if table is not None:  # written with others
            try:
                await self._commits.write(table, Write(claim.key, committed), linger)
                return
            except TransactionRefused:
                pass  # written alone, below: it may find its own record, or another's
        for generation in range(first, last + 1):
            table = self.generations.table(generation)
            etag = claim.held.get(generation)
            if not await self._write_commit(table, claim.key, committed, etag, now):
                # another publish holds the identity (this one went on without a known
                # claim): its records are its own to settle
                return

    async def _write_commit(
        self, table: str, key: str, committed: Record, etag: str | None, now: float
    ) -> bool:
        """Write the commit: over this claim's own record, into an empty place, or over a
        record that no longer counts; never over another publish's record that does (False)."""
        if etag is not None:
            try:
                await self.tables.replace(table, key, committed, etag)
                return True
            except RecordChanged:
                pass
        for _ in range(3):
            try:
                await self.tables.insert(table, key, committed)
                return True
            except RecordExists:
                pass
            stored = await self.tables.read(table, key)
            if stored is None:
                continue
            if stored.record.owner != committed.owner and counts(stored.record, now, self.window):
                log.warning("a commit found another publish's record of its identity: left as is")
                return False
            try:
                await self.tables.replace(table, key, committed, stored.etag)
                return True
            except RecordChanged:
                continue
        return False

    async def release(self, claim: Claim, *, patient: bool = False) -> None:
        """The claimed event was not published (or may not have been): take the claim back, so
        that a retry publishes at once. Only this claim's own records are removed. Within one
        budget; ``patient`` (nobody waits for it: the answer was given) until the claim's lease
        would lapse anyway."""
        budget = self.budgets.claim
        if patient:
            budget = max(budget, claim.at + self.budgets.lease - self.clock.time())
        try:
            async with self.clock.timeout(budget):
                if claim.certain:
                    for generation, etag in claim.held.items():
                        await self._let_go(self.generations.table(generation), claim.key, etag)
                    return
                generations = [claim.generation] + ([claim.generation + 1] * claim.near_end)
                for generation in generations:
                    table = self.generations.table(generation)
                    stored = await self.tables.read(table, claim.key)
                    if stored is not None and stored.record.owner == claim.owner:
                        await self._let_go(table, claim.key, stored.etag)
        except (TimeoutError, RecordsUnavailable) as error:
            log.warning(
                "the claim of an unpublished event was not taken back (%s): it lapses at its lease",
                _reason(error),
            )

    def stale(self, claim: Claim) -> bool:
        """Whether more than one budget has passed since the claim was made."""
        return self.clock.time() - claim.at > self.budgets.claim

    def send_cutoff(self, claim: Claim) -> float:
        """Seconds from now until a send of this claim still unanswered is given up."""
        return claim.at + self.budgets.send_cutoff - self.clock.time()

    # -- maintenance -----------------------------------------------------------------------------

    async def drop_expired_tables(self) -> list[str]:
        """Drop every generation's table older than the previous generation; their names."""
        names = await self.tables.tables(self.generations.prefix)
        expired = self.generations.expired(names, self.clock.time())
        for name in expired:
            await self.tables.drop(name)
        return expired

    def flush(self) -> None:
        """Write the commits lingering for others to join them now (on shutdown)."""
        self._commits.flush()

    async def close(self) -> None:
        self._commits.flush()
        await self.tables.close()


_Group = list[tuple[Write, "asyncio.Future[str]"]]


class GroupedWrites:
    """Writes of one table and partition made together, in one transaction: each waits for
    others to join it for at most ``linger`` seconds (None: only those of the same moment, the
    event loop's turn), and a group is written at once when it is full (``MAX_TRANSACTION``).
    Everyone in a group learns the same outcome: its etag, TransactionRefused (then each is
    written again alone, by its caller), or RecordsUnavailable. A group's write is given up
    after ``budget_seconds`` on ``clock``, as each of its writes alone would be by its caller:
    a write that nobody waits for any more is not left to land at any later time."""

    def __init__(
        self, tables: RecordTables, linger: float | None, *, clock: Clock, budget_seconds: float
    ) -> None:
        self._tables = tables
        self._linger = linger
        self._clock = clock
        self._budget = budget_seconds
        self._open: dict[tuple[str, str], _Group] = {}
        self._writing: set[asyncio.Future[None]] = set()

    async def write(self, table: str, write: Write, linger: bool = True) -> str:
        place = (table, partition_of(write.key))
        loop = asyncio.get_running_loop()
        group = self._open.get(place)
        if group is None:
            group = self._open[place] = []
            if linger and self._linger is not None:
                loop.call_later(self._linger, self._close, place, group)
            else:
                loop.call_soon(self._close, place, group)
        future: asyncio.Future[str] = loop.create_future()
        group.append((write, future))
        if len(group) >= MAX_TRANSACTION:
            self._close(place, group)
        return await future

    def flush(self) -> None:
        """Write every open group now, without waiting out its linger (on shutdown)."""
        for place, group in list(self._open.items()):
            self._close(place, group)

    def _close(self, place: tuple[str, str], group: _Group) -> None:
        if self._open.get(place) is group:
            del self._open[place]
            writing = asyncio.ensure_future(self._write(place[0], group))
            self._writing.add(writing)
            writing.add_done_callback(self._writing.discard)

    async def _write(self, table: str, group: _Group) -> None:
        waiting = [(write, future) for write, future in group if not future.done()]
        if not waiting:
            return
        try:
            async with self._clock.timeout(self._budget):
                if len(waiting) == 1:
                    write = waiting[0][0]
                    try:
                        etags = [await self._tables.insert(table, write.key, write.record)]
                    except RecordExists:
                        raise TransactionRefused(0) from None
                else:
                    etags = await self._tables.transact(table, [write for write, _ in waiting])
        except Exception as error:
            told: Exception = error
            if isinstance(error, TimeoutError):
                told = error = RecordsUnavailable(f"no answer within {self._budget:g} s")
            elif not isinstance(error, TransactionRefused | RecordsUnavailable):
                told = RecordsUnavailable(_first_line(error))
            for _, future in waiting:
                if not future.done():
                    future.set_exception(told)
            if told is not error:
                raise
            return
        for (_, future), etag in zip(waiting, etags, strict=True):
            if not future.done():
                future.set_result(etag)


def _not_committed(error: BaseException) -> None:
    log.warning(
        "the record of a published event was not committed (%s): its reservation lapses "
        "at its lease, and a repeat after that is published again",
        _reason(error),
    )


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, RecordsUnavailable) else "no answer in time"


def _chunks(items: Sequence[tuple[str, object]]) -> list[list[int]]:
    """The indices of ``items`` by their key's partition, in runs of at most MAX_TRANSACTION:
    the groups one transaction each can hold."""
    groups: dict[str, list[int]] = {}
    for index, (key, _) in enumerate(items):
        groups.setdefault(partition_of(key), []).append(index)
    return [
        indices[start : start + MAX_TRANSACTION]
        for indices in groups.values()
        for start in range(0, len(indices), MAX_TRANSACTION)
    ]
