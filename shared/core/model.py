"""The product's values: who publishes, what a resource's policy allows, how its rules were found,
what a publish ended in, and what is recorded of an event's identity. Frozen dataclasses with no
behaviour beyond reading themselves (the event itself is the CloudEvents layer's:
shared/cloudevents/event.py).

This module imports nothing of the project and no third-party package: the rest of the core and
every adapter build on it, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

#: The XACML attribute that names a rule's action (``publish``, ``subscribe``, ...).
ACTION_ID = "urn:oasis:names:tc:xacml:1.0:action:action-id"


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
    def organisation(self) -> str | None:
        """The organisation the token speaks for: its org code, else its organisation number
        (Altinn's claim, else Maskinporten's ``consumer``)."""
        return self.org or self.org_number or self.consumer_org_number

    @property
    def label(self) -> str:
        """A short, non-secret name (the log line, the lookup budget): the organisation, else
        the subject."""
        return self.organisation or self.subject or "?"

    @property
    def identity(self) -> str:
        """The publisher of idempotent publish: the organisation, its code in lower case
        (``TTD`` and ``ttd`` are one, as authorization compares them), else issuer and subject
        (the same subject at two issuers is two publishers)."""
        if self.org:
            return self.org.lower()
        return self.organisation or f"{self.issuer}\x1f{self.subject or ''}"


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


@dataclass(frozen=True, slots=True)
class Published:
    """A publish that ended well: the event is on the queue (200), sent by this request or,
    ``replayed``, by an earlier one with the same content (nothing more queued)."""

    replayed: bool = False


PUBLISHED = Published()
REPLAYED = Published(replayed=True)


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
    """What is recorded of one event identity (shared/core/idempotency.py decides what it means)."""

    #: The content's fingerprint (shared/core/idempotency.py: a marked digest, or an older form).
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
class StoredData:
    """An event's data as the claim check stores it (shared/core/claimcheck.py): its exact bytes."""

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
