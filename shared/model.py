"""The product's values: who publishes, what a resource's policy allows, how its rules were found,
and the event. Frozen dataclasses with no behaviour beyond reading themselves.

This module imports nothing of the project and no third-party package: the core (authorization,
the pipeline) and every adapter build on it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: The XACML attribute that names a rule's action (``publish``, ``subscribe``, ...).
ACTION_ID = "urn:oasis:names:tc:xacml:1.0:action:action-id"
DATA = "data"
DATA_BASE64 = "data_base64"


@dataclass(frozen=True, slots=True)
class Publisher:
    """The verified caller: who issued the token, for whom, and with which scopes."""

    issuer: str
    subject: str | None
    scopes: frozenset[str]
    #: ``urn:altinn:org``: the service owner's code, such as ``ttd``.
    org: str | None = None
    #: ``urn:altinn:orgNumber``: the organisation number of an exchanged Altinn token.
    org_number: str | None = None
    #: The organisation number in Maskinporten's ``consumer`` claim (``0192:<orgno>``).
    consumer_org_number: str | None = None
    #: Every ``urn:``-typed string claim, passed to authorization as the Altinn PEP does.
    urn_claims: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def label(self) -> str:
        """A stable, non-secret name: the org code, else the org number, else the subject."""
        return self.org or self.org_number or self.consumer_org_number or self.subject or "?"


@dataclass(frozen=True, slots=True)
class Attribute:
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One flattened rule: all ``subject`` attributes together may do ``action`` on ``resource``."""

    subject: tuple[Attribute, ...]
    action: Attribute
    resource: tuple[Attribute, ...]


#: A resource's rules; None when the registry does not know the resource.
Rules = tuple[PolicyRule, ...] | None


class CacheOutcome(Enum):
    HIT = "hit"  # answered from a fresh entry
    MISS = "miss"  # answered by a registry call this request waited for
    STALE = "stale"  # the registry failed; answered from an expired entry


@dataclass(frozen=True, slots=True)
class Lookup:
    """A resource's rules, and how they were found."""

    rules: Rules
    outcome: CacheOutcome


class Replayed:
    """The outcome of publishing an event published before with the same content: 200,
    nothing queued (idempotent publish)."""

    __slots__ = ()


REPLAYED = Replayed()


class Reservation(Enum):
    """What the record of an event's identity says when a publish claims it."""

    NEW = "new"  # nothing that counts is recorded: publish it
    REPLAY = "replay"  # the same content was published: answer 200, publish nothing
    CONFLICT = "conflict"  # other content was published (or is being) under this identity: 409
    IN_FLIGHT = "in-flight"  # the same content is being published right now: 409, retry


class RecordState(Enum):
    RESERVED = "reserved"  # a publish of the identity is under way (until the lease lapses)
    COMMITTED = "committed"  # the identity's event is on the queue


@dataclass(frozen=True, slots=True)
class Record:
    """What is recorded of one event identity (shared/idempotency.py decides what it means)."""

    #: The content's fingerprint (shared/idempotency.py: a marked digest, or an older form).
    fingerprint: str
    state: RecordState
    #: When the claim was made (reserved) or the event was found stored (committed), in seconds
    #: since the epoch.
    at: float
    #: A reservation's lease: when its publish is over whatever happened to it. None in
    #: records written before leases were recorded.
    until: float | None = None
    #: The claim that wrote it (a random id), so a publish knows its own record again.
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as a store holds it: with the etag a conditional write needs."""

    record: Record
    etag: str


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """A valid event. ``members`` is the event as received, minus attributes sent as ``null``."""

    members: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.members["id"])

    @property
    def source(self) -> str:
        return str(self.members["source"])

    @property
    def type(self) -> str:
        return str(self.members["type"])

    def attribute(self, name: str) -> Any:
        """An attribute's value as received, or None when it is not set."""
        return None if name in (DATA, DATA_BASE64) else self.members.get(name)


@dataclass(frozen=True, slots=True)
class StoredData:
    """An event's data as the claim check stores it (shared/claimcheck.py): its exact bytes."""

    content: bytes
    #: The blob's Content-Type: the event's datacontenttype, else what its data is.
    content_type: str
    #: The member the bytes came from and go back to: "data" or "data_base64".
    form: str


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """An event whose data goes to a blob before its message goes to the queue."""

    #: The blob's name in the claim check's container (the queued ``dataref`` names its URL).
    name: str
    data: StoredData
